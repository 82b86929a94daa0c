//! Network egress of a `public` sandbox: the only way out is an HTTP proxy, run by the worker
//! on a Unix socket bound into the sandbox, that dials public addresses only (the guard the
//! provider client uses). The sandbox's own network namespace has nothing but loopback, so
//! cluster services, the node, cloud metadata endpoints and the worker's own ports stay out of
//! reach whatever the script does; tools that honour `HTTP(S)_PROXY` (curl, git, pip, npm…)
//! reach the internet.
//!
//! Inside the sandbox, [`forward`] (the worker binary's `sandbox-forward` mode) listens on
//! `127.0.0.1:3128` and relays each connection to the socket, then runs the script.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::sandbox::ProxyMount;
use crate::provider::egress;

/// Longest request head the proxy reads before deciding.
const MAX_HEAD: usize = 16 * 1024;
/// Simultaneous connections one sandbox may hold open.
const MAX_CONNECTIONS: usize = 64;

/// One call's proxy: listening while it lives, stopped and removed on drop.
pub struct ProxyHandle {
    socket: PathBuf,
    helper: PathBuf,
    stop: CancellationToken,
}

impl ProxyHandle {
    pub fn start(dir: &Path, helper: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join(format!("{}.sock", uuid::Uuid::new_v4().simple()));
        let listener = UnixListener::bind(&socket)?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    continue;
                };
                let token = token.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = token.cancelled() => {}
                        () = serve(stream) => {}
                    }
                    drop(permit);
                });
            }
        });
        Ok(Self {
            socket,
            helper: helper.to_path_buf(),
            stop,
        })
    }

    pub fn mount(&self) -> ProxyMount<'_> {
        ProxyMount {
            host_socket: &self.socket,
            helper: &self.helper,
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve(mut client: UnixStream) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(pos) = find_head_end(&head) {
            break pos;
        }
        if head.len() > MAX_HEAD {
            return reply(&mut client, "431 Request Header Fields Too Large").await;
        }
        match tokio::time::timeout(Duration::from_secs(30), client.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => head.extend_from_slice(&chunk[..n]),
        }
    };
    let (head_bytes, rest) = head.split_at(end);
    let text = String::from_utf8_lossy(head_bytes).into_owned();
    let Some(request) = parse_request(&text) else {
        return reply(&mut client, "400 Bad Request").await;
    };
    let upstream = match dial(&request.host, request.port).await {
        Ok(s) => s,
        Err(Dial::Forbidden) => return reply(&mut client, "403 Forbidden").await,
        Err(Dial::Failed) => return reply(&mut client, "502 Bad Gateway").await,
    };
    let mut upstream = upstream;
    if request.connect {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        if !rest.is_empty() && upstream.write_all(rest).await.is_err() {
            return;
        }
    } else {
        let mut forwarded = request.origin_head.into_bytes();
        forwarded.extend_from_slice(rest);
        if upstream.write_all(&forwarded).await.is_err() {
            return;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

async fn reply(client: &mut UnixStream, status: &str) {
    let _ = client
        .write_all(
            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

#[derive(Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    pub connect: bool,
    pub host: String,
    pub port: u16,
    /// For plain HTTP: the head rewritten to origin form, proxy headers dropped.
    pub origin_head: String,
}

/// `CONNECT host:port HTTP/1.1`, or `METHOD http://host[:port]/path HTTP/1.1` + headers.
pub fn parse_request(head: &str) -> Option<ProxyRequest> {
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(target, 443)?;
        return Some(ProxyRequest {
            connect: true,
            host,
            port,
            origin_head: String::new(),
        });
    }
    let url = url::Url::parse(target).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = url.port_or_known_default()?;
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut origin = format!("{method} {path} {version}\r\n");
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("proxy-") {
            continue;
        }
        origin.push_str(line);
        origin.push_str("\r\n");
    }
    // The head ended with a blank line, which the split already re-added.
    while origin.ends_with("\r\n\r\n\r\n") {
        origin.truncate(origin.len() - 2);
    }
    Some(ProxyRequest {
        connect: false,
        host,
        port,
        origin_head: origin,
    })
}

fn split_host_port(target: &str, default: u16) -> Option<(String, u16)> {
    if let Some(rest) = target.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = tail
            .strip_prefix(':')
            .map_or(Some(default), |p| p.parse().ok())?;
        return Some((host.to_owned(), port));
    }
    match target.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((target.to_owned(), default)),
    }
}

enum Dial {
    Forbidden,
    Failed,
}

/// Connects only when every address the host names is public.
async fn dial(host: &str, port: u16) -> Result<TcpStream, Dial> {
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::lookup_host((host, port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        _ => return Err(Dial::Failed),
    };
    if addrs.is_empty() || addrs.iter().any(|a| !egress::is_public(a.ip())) {
        return Err(Dial::Forbidden);
    }
    match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addrs[..])).await {
        Ok(Ok(s)) => Ok(s),
        _ => Err(Dial::Failed),
    }
}

/// Inside the sandbox: relay `listen` to the Unix `socket`, run `command`, exit with its code.
pub fn forward(listen: &str, socket: &str, command: &[String]) -> std::process::ExitCode {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("sandbox-forward: cannot start");
        return std::process::ExitCode::from(125);
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sandbox-forward: cannot listen on {listen}: {e}");
                return std::process::ExitCode::from(125);
            }
        };
        let socket = socket.to_owned();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let socket = socket.clone();
                tokio::spawn(async move {
                    if let Ok(mut unix) = UnixStream::connect(&socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
        });
        let Some((program, args)) = command.split_first() else {
            return std::process::ExitCode::from(125);
        };
        match tokio::process::Command::new(program)
            .args(args)
            .status()
            .await
        {
            Ok(status) => std::process::ExitCode::from(
                status
                    .code()
                    .and_then(|c| u8::try_from(c).ok())
                    .unwrap_or(128),
            ),
            Err(e) => {
                eprintln!("sandbox-forward: cannot run {program}: {e}");
                std::process::ExitCode::from(127)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_and_absolute_requests() {
        assert_eq!(
            parse_request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            Some(ProxyRequest {
                connect: true,
                host: "example.com".into(),
                port: 443,
                origin_head: String::new()
            })
        );
        let r = parse_request(
            "GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nProxy-Connection: keep-alive\r\n\r\n",
        )
        .unwrap();
        assert!(!r.connect);
        assert_eq!(r.port, 80);
        assert_eq!(
            r.origin_head,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
        );
        assert!(parse_request("GET /relative HTTP/1.1\r\n\r\n").is_none());
        assert!(parse_request("GET ftp://x/ HTTP/1.1\r\n\r\n").is_none());
        assert_eq!(
            split_host_port("[::1]:8080", 443),
            Some(("::1".into(), 8080))
        );
    }

    #[tokio::test]
    async fn private_destinations_are_refused() {
        assert!(matches!(dial("127.0.0.1", 80).await, Err(Dial::Forbidden)));
        assert!(matches!(dial("10.1.2.3", 443).await, Err(Dial::Forbidden)));
        assert!(matches!(dial("localhost", 443).await, Err(Dial::Forbidden)));
    }
}
