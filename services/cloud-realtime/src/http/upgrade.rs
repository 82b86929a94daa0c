//! The websocket opening handshake (RFC 6455 §4.2) and taking the connection's `TcpStream` back
//! from hyper once the `101` is out.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use cloud_common::ApiError;
use hyper::upgrade::OnUpgrade;
use sha1::{Digest, Sha1};
use tokio::net::TcpStream;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A checked upgrade request: answer it with [`Handshake::response`], then await
/// [`Handshake::stream`].
pub struct Handshake {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `Sec-WebSocket-Accept` for a client key.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

impl Handshake {
    /// Checks the request is a websocket upgrade this server can take.
    pub fn check(
        method: &Method,
        headers: &HeaderMap,
        on_upgrade: Option<OnUpgrade>,
    ) -> Result<Self, ApiError> {
        let refuse =
            |why: &str| ApiError::bad_request(format!("Expected a websocket upgrade: {why}"));
        if method != Method::GET {
            return Err(refuse("the method must be GET"));
        }
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(refuse("Connection header did not include 'upgrade'"));
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(refuse("Upgrade header did not include 'websocket'"));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(refuse("Sec-WebSocket-Version must be 13"));
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .map(HeaderValue::as_bytes)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| refuse("Sec-WebSocket-Key header missing"))?;
        let on_upgrade = on_upgrade.ok_or_else(|| refuse("the connection cannot be upgraded"))?;
        let accept =
            HeaderValue::from_str(&accept_key(key)).map_err(|_| refuse("bad Sec-WebSocket-Key"))?;
        Ok(Self { accept, on_upgrade })
    }

    pub fn response(&self) -> Response {
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, self.accept.clone()),
            ],
        )
            .into_response()
    }

    /// The connection's stream once hyper let go of it, with any bytes it had already read
    /// past the request (the client's first frames).
    pub async fn stream(self) -> std::io::Result<(TcpStream, Bytes)> {
        let upgraded = self.on_upgrade.await.map_err(std::io::Error::other)?;
        cloud_common::server::upgraded_tcp(upgraded).map_err(|_| {
            std::io::Error::other(
                "the upgraded connection is not a plain TCP stream (served outside cloud_common::server)",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn refuses_requests_that_are_not_upgrades() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        // Valid headers, but no connection to upgrade (not served by hyper).
        assert!(Handshake::check(&Method::GET, &h, None).is_err());
        assert!(Handshake::check(&Method::POST, &h, None).is_err());
        let mut v12 = h.clone();
        v12.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("12"),
        );
        assert!(Handshake::check(&Method::GET, &v12, None).is_err());
        let mut plain = h.clone();
        plain.remove(header::UPGRADE);
        assert!(Handshake::check(&Method::GET, &plain, None).is_err());
        assert!(has_token(&h, header::CONNECTION, "upgrade"));
    }
}
