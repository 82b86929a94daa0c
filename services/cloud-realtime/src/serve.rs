//! The HTTP accept loop of cloud-realtime: HTTP/1.1 connections served by hyper directly, so a
//! websocket upgrade hands back the plain `TcpStream` (see `http::upgrade`). The fan-out writes
//! event frames to that stream from the thread that received them; through the generic
//! upgraded-connection type (what `axum::serve` yields) every write would need the socket's
//! own task. Shutdown behaves as `cloud_common::server::serve`: stop accepting, let in-flight
//! requests finish within the drain bound; upgraded sockets are closed by their owners.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use cloud_common::server::Shutdown;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    drain: Duration,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "Listening.");
    }
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let stop = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stop.wait() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_ok()
    {
        tracing::info!("In-flight requests drained.");
    } else {
        tracing::warn!(
            seconds = drain.as_secs_f64(),
            "Drain bound reached; dropping remaining connections."
        );
    }
    Ok(())
}
