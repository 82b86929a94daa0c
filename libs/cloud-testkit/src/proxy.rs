//! A TCP forwarder a test can cut and restore, to show how a service behaves when its database
//! or Redis becomes unreachable and comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn rewrite_url(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("url");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(self.addr.port())).expect("port");
        u.to_string()
    }
}

/// Resolves the `host:port` of a URL (e.g. the database URL) to a socket address.
pub fn target_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).expect("url");
    let host = u.host_str().expect("host");
    let port = u.port_or_known_default().or(match u.scheme() {
        "postgres" | "postgresql" => Some(5432),
        "redis" => Some(6379),
        _ => None,
    });
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port.expect("port")))
        .expect("resolve")
        .next()
        .expect("address")
}
