//! `/docs`: the API reference, rendered in the browser by the vendored Redoc bundle
//! (`assets/redoc.standalone.js`, npm `redoc` 2.5.4, served from the binary at
//! `/assets/redoc.standalone.js`; no CDN). The page has no inline script: Redoc reads the
//! document from its `spec-url` attribute (`/openapi.json`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::Response;

use crate::AppState;
use crate::web;

const PAGE: &str = include_str!("../../templates/docs.html");
const REDOC: &[u8] = include_bytes!("../../assets/redoc.standalone.js");

/// What the docs page may load: its own script and stylesheet, the document from this origin.
/// Redoc (styled-components) adds its styles as `<style>` elements at run time, hence
/// `style-src 'unsafe-inline'` here; `script-src` stays `'self'` (no inline script, no eval)
/// and its search index runs in a `blob:` worker.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

pub async fn page(State(state): State<AppState>) -> Response {
    let https = state.config.public_url.scheme() == "https";
    let mut r = web::html(StatusCode::OK, PAGE.to_owned(), &[], https);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// The Redoc bundle: JavaScript, cached for a day (its URL does not change with its content,
/// so not `immutable`).
pub async fn redoc() -> Response {
    web::asset(
        REDOC,
        "text/javascript; charset=utf-8",
        "public, max-age=86400",
    )
}
