//! Bounds on what one HTTP client may hold: how long a request head, an idle keep-alive
//! connection and a request body may take, and how many connections are open at once. Without
//! them a client that trickles headers, never sends its body or simply keeps sockets open ties
//! up a service for as long as it likes (the hostile review held cloud-api's sockets for minutes
//! and stopped it with a few hundred). The connection-level bounds are applied by
//! [`crate::server::serve_with`]; the body deadline by the middleware stack ([`crate::http::finish`]),
//! so an in-process router gets it too.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::config::Reader;

pub const HEADER_TIMEOUT_VAR: &str = "CHATONS_HTTP_HEADER_TIMEOUT_SECONDS";
pub const IDLE_TIMEOUT_VAR: &str = "CHATONS_HTTP_IDLE_TIMEOUT_SECONDS";
pub const BODY_TIMEOUT_VAR: &str = "CHATONS_HTTP_BODY_TIMEOUT_SECONDS";
pub const MAX_CONNECTIONS_VAR: &str = "CHATONS_HTTP_MAX_CONNECTIONS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

impl ServerLimits {
    pub fn read(r: &mut Reader<'_>) -> Self {
        let d = Self::default();
        Self {
            header_timeout: r.seconds(HEADER_TIMEOUT_VAR, d.header_timeout.as_secs()),
            idle_timeout: r.seconds(IDLE_TIMEOUT_VAR, d.idle_timeout.as_secs()),
            body_timeout: r.seconds(BODY_TIMEOUT_VAR, d.body_timeout.as_secs()),
            max_connections: r.int_in(MAX_CONNECTIONS_VAR, d.max_connections as u64, 1, 1_000_000)
                as usize,
        }
    }
}

/// The error a request body yields once its deadline has passed; [`crate::extract::read_body`]
/// turns it into a 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// A request body that must be complete by a deadline set when its head arrived. The deadline
/// is for the whole body, not per chunk, so a client dribbling one byte at a time cannot stretch
/// it.
pub struct DeadlineBody {
    inner: Body,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    pub fn new(inner: Body, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` (or one of its causes) is a [`BodyTimedOut`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use http_body_util_free::collect;

    /// Collects a body without the http-body-util crate (not a dependency here).
    mod http_body_util_free {
        use std::future::poll_fn;
        use std::pin::Pin;

        pub async fn collect<B>(mut body: B) -> Result<Vec<u8>, B::Error>
        where
            B: http_body::Body<Data = bytes::Bytes> + Unpin,
        {
            let mut out = Vec::new();
            while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                if let Ok(data) = frame?.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(out)
        }
    }

    #[test]
    fn limits_have_defaults_and_ranges() {
        let env = Env::from_pairs([(HEADER_TIMEOUT_VAR, "3"), (MAX_CONNECTIONS_VAR, "0")]);
        let mut r = Reader::new(&env);
        let limits = ServerLimits::read(&mut r);
        assert_eq!(limits.header_timeout, Duration::from_secs(3));
        assert_eq!(limits.idle_timeout, Duration::from_secs(120));
        assert_eq!(r.finish().unwrap_err().names(), vec![MAX_CONNECTIONS_VAR]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_finish_in_time_fails_with_a_timeout() {
        let (mut tx, rx) = futures_channel_free::pair();
        let body = DeadlineBody::new(Body::from_stream(rx), Duration::from_secs(5));
        let reader = tokio::spawn(collect(body));
        tx.send(b"par".to_vec()).await;
        tokio::time::sleep(Duration::from_secs(6)).await;
        let err = reader.await.unwrap().unwrap_err();
        assert!(is_body_timeout(&err), "{err}");

        let done = DeadlineBody::new(Body::from("whole"), Duration::from_secs(5));
        assert_eq!(collect(done).await.unwrap(), b"whole");
    }

    /// A body stream fed by hand.
    mod futures_channel_free {
        use tokio::sync::mpsc;

        pub struct Tx(mpsc::Sender<Result<Vec<u8>, std::io::Error>>);

        impl Tx {
            pub async fn send(&mut self, chunk: Vec<u8>) {
                self.0.send(Ok(chunk)).await.unwrap();
            }
        }

        pub fn pair() -> (
            Tx,
            impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>>,
        ) {
            let (tx, mut rx) = mpsc::channel(4);
            let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            (Tx(tx), stream)
        }
    }
}
