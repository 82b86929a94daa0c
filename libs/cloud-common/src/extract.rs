//! Extractors whose rejections are the JSON error envelope: malformed or wrongly typed bodies
//! and query strings are a 400 naming the problem, an oversized body a 413 — never a 500.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::http::BodyLimit;

/// Reads the body up to the configured limit and parses it as JSON. An empty body is `{}`, as
/// in the first system, so callers that POST nothing to "no parameters" routes keep working.
/// The content type is not checked, for the same reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON from bytes with the same error mapping as [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // serde skips the values a type has no field for without checking them: a string there
    // could hold invalid UTF-8 or a lone surrogate and the body would still be accepted. The
    // whole document is validated first (this also bounds nesting, at serde_json's 128 levels).
    // Every body of the three services is an object: serde would read a struct from an array
    // too (`[]` as a struct whose fields all have defaults).
    let document: serde_json::Value = serde_json::from_slice(bytes).map_err(json_error)?;
    if !document.is_object() {
        return Err(ApiError::bad_request(
            "Invalid JSON body: the body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error_free(de)
}

fn serde_path_to_error_free<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, ApiError> {
    let value = T::deserialize(&mut *de).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(value)
}

fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("Malformed JSON body: {e}"),
        Category::Data => format!("Invalid JSON body: {e}"),
        Category::Io => format!("Unreadable JSON body: {e}"),
    };
    ApiError::bad_request(message)
}

/// A `application/x-www-form-urlencoded` body, parsed with the same error mapping.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiForm<T>(pub T);

impl<S, T> FromRequest<S> for ApiForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse_form(&bytes).map(ApiForm)
    }
}

/// Parses an `application/x-www-form-urlencoded` body with the same error mapping as
/// [`ApiForm`] (a 400 naming the problem).
pub fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid form body: {e}")))
}

/// Reads a whole body, mapping an oversized one to 413 with the limit in the message.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map(|l| l.0)
        .unwrap_or(crate::http::DEFAULT_BODY_LIMIT);
    Bytes::from_request(req, state)
        .await
        .map_err(|e| body_error(e, limit))
}

fn body_error(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(limit)
    } else if crate::limits::is_body_timeout(&e) {
        ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body did not arrive in time.",
        )
    } else {
        ApiError::bad_request(format!("Unreadable request body: {}", e.body_text()))
    }
}

/// Query string parameters; unknown parameters are ignored, wrong types are a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("Invalid query string: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[allow(dead_code)]
        n: u32,
    }

    #[test]
    fn malformed_and_mistyped_json_are_bad_requests() {
        let e = parse_json::<Body>(b"{").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("Malformed JSON"));
        let e = parse_json::<Body>(br#"{"n":"x"}"#).unwrap_err();
        assert!(e.message.starts_with("Invalid JSON"));
        let e = parse_json::<Body>(b"null").unwrap_err();
        assert_eq!(e.status, 400);
        let e = parse_json::<Body>(br#"{"n":1} trailing"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(parse_json::<Body>(br#"{"n":1}"#).is_ok());
    }

    /// serde alone accepted these: the bad string sits in a field the type skips, and a
    /// struct whose fields have defaults reads from an empty array.
    #[test]
    fn skipped_fields_are_validated_and_the_root_is_an_object() {
        #[derive(serde::Deserialize, Debug)]
        struct Opt {
            #[allow(dead_code)]
            #[serde(default)]
            n: Option<u32>,
        }
        for body in [
            &b"{\"other\":\"\xff\xfe\"}"[..],
            br#"{"other":"\ud800"}"#,
            b"{\"other\":\"\xc0\xaf\"}",
            b"[]",
            b"[1]",
        ] {
            let e = parse_json::<Opt>(body).unwrap_err();
            assert_eq!(e.status, 400, "{body:?}");
        }
        assert!(parse_json::<Opt>(br#"{"other":"\ud83d\ude00"}"#).is_ok());
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        #[derive(serde::Deserialize)]
        struct Opt {
            n: Option<u32>,
        }
        assert!(parse_json::<Opt>(b"  ").unwrap().n.is_none());
    }
}
