//! Serving with graceful shutdown: on SIGTERM/SIGINT readiness flips to 503 at once, the
//! listener is closed (new connections are refused), in-flight requests get up to the drain
//! bound to finish, then the caller closes its pools and the process exits 0.
//!
//! Every connection is bounded ([`ServerLimits`]): a request head must be complete within the
//! header timeout of its first byte, a keep-alive connection without a request is closed after
//! the idle timeout, a response the client stops reading is cut after the body timeout, and at
//! most `max_connections` are open — one more is answered 503 and closed. Connections are
//! served by hyper directly (HTTP/1.1, upgrades allowed); the socket is wrapped only to note
//! when bytes move, so the deadlines follow what the client actually does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use crate::limits::ServerLimits;

/// The process-wide "we are stopping" signal. Cloned into everything that must react:
/// readiness, websocket loops, background workers.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    pub async fn wait(&self) {
        self.0.cancelled().await;
    }

    pub fn token(&self) -> CancellationToken {
        self.0.clone()
    }
}

/// Binds `0.0.0.0:port` (port 0 picks a free one; tests use that).
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
}

/// Triggers `shutdown` on the first SIGTERM or SIGINT.
pub fn trigger_on_signals(shutdown: Shutdown) {
    // The handlers are installed here, before the caller starts serving: installed inside the
    // task, a SIGTERM arriving before the task first ran would kill the process outright
    // (seen under load), skipping the drain.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, int) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    tokio::select! {
                        _ = int.recv() => tracing::info!("SIGINT received; shutting down."),
                        _ = term.recv() => tracing::info!("SIGTERM received; shutting down."),
                    }
                    shutdown.trigger();
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "Cannot listen for SIGTERM/SIGINT.");
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    shutdown.trigger();
                });
            }
        }
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.trigger();
    });
}

/// How a binary serves: the drain bound after SIGTERM and the per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub drain: Duration,
    pub limits: ServerLimits,
}

/// What a client past the connection cap reads before its socket is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 83\r\n\r\n{\"error\":\"unavailable\",\"message\":\"Too many open connections; retry in a moment.\"}";

/// Serves `router` until `shutdown` fires, then drains in-flight requests for at most
/// `options.drain`. Upgraded connections (websockets) are not tracked here: their owners watch
/// `shutdown`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    options: ServeOptions,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "Listening.");
    }
    let limits = options.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are answered by short-lived tasks; past this many at once, sockets are just dropped.
    let refusals = Arc::new(Semaphore::new(64));
    let mut refused_since_log = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused_since_log += 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                tracing::warn!(
                    refused = refused_since_log,
                    max_connections = limits.max_connections,
                    "Connection cap reached; refusing connections with 503."
                );
                refused_since_log = 0;
                last_refusal_log = Some(Instant::now());
            }
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(tcp).await;
                    drop(permit);
                });
            }
            continue;
        };
        let router = router.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            serve_connection(tcp, peer, router, limits, stop).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(options.drain, connections.wait())
        .await
        .is_ok()
    {
        tracing::info!("In-flight requests drained.");
    } else {
        tracing::warn!(
            seconds = options.drain.as_secs_f64(),
            "Drain bound reached; dropping remaining connections."
        );
    }
    Ok(())
}

/// Answers 503 and closes, reading (and discarding) what the client already sent for a moment
/// so the close does not turn into a reset that hides the answer.
async fn refuse(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.set_nodelay(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(BUSY_RESPONSE).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 1024];
        for _ in 0..8 {
            if tcp.read(&mut sink).await? == 0 {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServerLimits,
    stop: Shutdown,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
    });
    let in_service = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let guard = InFlight::enter(in_service.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
            Ok::<_, Infallible>(response.map(|body| Guarded {
                inner: body,
                guard: Some(guard),
            }))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    // The deadlines are kept by `Activity` below (hyper's own header timer cannot tell an idle
    // keep-alive connection from a slow head).
    http.keep_alive(true).header_read_timeout(None);
    let conn = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let next_check = match activity.check(&limits) {
            Ok(at) => at,
            Err(reason) => {
                tracing::debug!(%peer, reason, "Connection closed by its deadline.");
                return;
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "Connection ended with an error.");
                }
                return;
            }
            () = stop.wait(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(next_check.into()) => {}
        }
    }
}

/// What a connection has been doing, in milliseconds since it was opened (0 = never).
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// When the last response finished.
    idle_since: AtomicU64,
    /// When the first byte after the last response arrived (the next request head began).
    head_started: AtomicU64,
    /// Since when a write has been waiting for the client to read.
    write_blocked: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// `Ok(when to look again)`, or `Err(why the connection must close now)`.
    fn check(&self, limits: &ServerLimits) -> Result<Instant, &'static str> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4);
        let now = self.now();
        let mut next = now + ms(limits.header_timeout.min(limits.idle_timeout));
        let blocked = self.write_blocked.load(Ordering::Acquire);
        if blocked != 0 {
            let due = blocked + ms(limits.body_timeout);
            if now >= due {
                return Err("the client stopped reading the response");
            }
            next = next.min(due);
        }
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let head = self.head_started.load(Ordering::Acquire);
            let (due, reason) = if head != 0 {
                (
                    head + ms(limits.header_timeout),
                    "the request head did not arrive in time",
                )
            } else if self.served.load(Ordering::Acquire) == 0 {
                (ms(limits.header_timeout), "no request arrived")
            } else {
                (
                    self.idle_since.load(Ordering::Acquire) + ms(limits.idle_timeout),
                    "idle keep-alive connection",
                )
            };
            if now >= due {
                return Err(reason);
            }
            next = next.min(due);
        }
        Ok(self.at(next))
    }
}

/// Counts a request from its head to the end of its response body.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.served.fetch_add(1, Ordering::AcqRel);
        a.idle_since.store(a.now(), Ordering::Release);
        a.head_started.store(0, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that ends its request's [`InFlight`] when it is complete (or dropped).
struct Guarded {
    inner: Body,
    guard: Option<InFlight>,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting when a request head begins and when writes stall.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn note_write<T>(&self, polled: &Poll<T>) {
        let blocked = &self.activity.write_blocked;
        if polled.is_pending() {
            let _ = blocked.compare_exchange(
                0,
                self.activity.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        } else {
            blocked.store(0, Ordering::Release);
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let a = &self.activity;
            let _ =
                a.head_started
                    .compare_exchange(0, a.now(), Ordering::AcqRel, Ordering::Acquire);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.note_write(&polled);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The plain socket of an upgraded connection (and the bytes hyper had already read past the
/// upgrade request), for a websocket server that writes frames to the socket itself.
pub fn upgraded_tcp(
    upgraded: hyper::upgrade::Upgraded,
) -> Result<(TcpStream, Bytes), hyper::upgrade::Upgraded> {
    upgraded
        .downcast::<TokioIo<Watched>>()
        .map(|parts| (parts.io.into_inner().inner, parts.read_buf))
}
