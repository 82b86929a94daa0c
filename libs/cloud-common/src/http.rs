//! The middleware stack every service router is finished with, in one place so the three
//! binaries behave the same at the edge: request ids, tracing spans, panic capture, metrics,
//! CORS from an allow-list, the body limit and JSON 404/405 answers (and JSON for the plain-text
//! rejections of axum's own extractors).

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::metrics::Metrics;

pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The body limit in force for a request, so a 413 can say what the limit was.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub body_limit: usize,
    /// A request body must be complete this long after its head ([`crate::limits`]).
    pub body_timeout: Duration,
    /// Exact origins allowed to call with credentials. Never reflected from the request.
    pub cors_origins: Vec<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: crate::limits::ServerLimits::default().body_timeout,
            cors_origins: Vec::new(),
        }
    }
}

/// Adds the standard fallbacks and layers to a service's router (state already applied).
pub fn finish(router: Router, options: &HttpOptions, metrics: Metrics) -> Router {
    let limit = options.body_limit;
    let body_timeout = options.body_timeout;
    let mut router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(plain_errors_as_json))
        .layer(middleware::from_fn(
            move |mut req: Request, next: Next| async move {
                req.extensions_mut().insert(BodyLimit(limit));
                let req = req.map(|body| {
                    axum::body::Body::new(crate::limits::DeadlineBody::new(body, body_timeout))
                });
                next.run(req).await
            },
        ))
        .layer(middleware::from_fn_with_state(
            metrics,
            crate::metrics::track_http,
        ));
    if let Some(cors) = cors_layer(&options.cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, REQUEST_ID])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}

/// axum's extractors reject in plain text (a path segment that is not UTF-8 answers
/// `Invalid URL: Invalid UTF-8 in ...`); every error a client reads is the JSON envelope, so a
/// plain-text error becomes `{"error","message"}` with the same status and text. HTML pages
/// (the portal's errors) and JSON are left alone.
async fn plain_errors_as_json(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        400..=499 => "invalid_request",
        _ => "internal",
    };
    let message = if text.is_empty() || status.is_server_error() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut json = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "No route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "Method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}
