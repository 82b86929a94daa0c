//! Bearer tokens and the internal service token.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Secret;
use crate::error::ApiError;

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, any
/// amount of white space), or `None`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The shared secret of the internal endpoints. Only its SHA-256 is kept, and presented tokens
/// are hashed and compared in constant time, so neither content nor length leaks through timing.
#[derive(Clone)]
pub struct ServiceToken(Option<[u8; 32]>);

impl ServiceToken {
    pub fn new(secret: Option<&Secret>) -> Self {
        Self(secret.map(|s| Sha256::digest(s.expose().as_bytes()).into()))
    }

    pub fn is_configured(&self) -> bool {
        self.0.is_some()
    }

    pub fn verify(&self, presented: &str) -> bool {
        match &self.0 {
            Some(expected) => {
                let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                bool::from(expected.ct_eq(&got))
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(***)")
    }
}

/// Extractor: the request carries the internal service token. Add it as the first argument of
/// every internal handler.
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

impl<S> FromRequestParts<S> for InternalCaller
where
    S: Send + Sync,
    ServiceToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = ServiceToken::from_ref(state);
        match bearer(&parts.headers) {
            Some(presented) if token.verify(presented) => Ok(InternalCaller),
            _ => Err(ApiError::unauthorized("Internal service token required")),
        }
    }
}

/// Extractor: the raw user bearer token (validated later by whoever owns users).
#[derive(Debug, Clone)]
pub struct BearerToken(pub Secret);

impl BearerToken {
    /// For routes where a missing token is not an error by itself.
    pub fn from_headers(headers: &HeaderMap) -> Option<Secret> {
        bearer(headers).map(Secret::new)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer(&parts.headers)
            .map(|t| BearerToken(Secret::new(t)))
            .ok_or_else(|| ApiError::unauthorized("Missing bearer token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn parses_bearer_leniently() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")), None);
        assert_eq!(bearer(&headers("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn service_token_compares_exactly() {
        let t = ServiceToken::new(Some(&Secret::new("s3cret")));
        assert!(t.verify("s3cret"));
        assert!(!t.verify("s3cre"));
        assert!(!t.verify("s3cret "));
        assert!(!ServiceToken::new(None).verify(""));
    }
}
