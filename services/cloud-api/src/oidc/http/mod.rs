//! HTTP handlers of the issuer. Errors before the client and redirect URI are validated are shown
//! as a page (never redirected: the redirect URI is not trusted yet); later errors go back to the
//! client as `error`/`error_description`/`state`/`iss` query parameters (RFC 6749 §4.1.2.1,
//! RFC 9207). Token-endpoint errors are RFC 6749 §5.2 JSON.

use askama::Template;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cloud_common::ApiError;
use cloud_common::auth::bearer;
use cloud_common::extract::{ApiForm, ApiQuery};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use url::Url;

use crate::AppState;
use crate::app::{accounts, tokens};
use crate::crypto::{new_token, token_hash};
use crate::domain::{Session, User, now};
use crate::issuer::claims::{IdTokenInput, id_token_claims};
use crate::issuer::clients::{Client, DESKTOP_CALLBACK};
use crate::issuer::codes::AuthCode;
use crate::issuer::{DEVICE_CODE_GRANT, PORTAL_CLIENT, pkce};
use crate::sessions::{IssuedTokens, Refreshed, SessionRequest};
use crate::web;
use crate::web::client_ip::ClientIp;

use super::token_request::{TokenRequest, oauth_error, parse_token_request};

mod authorize;
mod desktop;
mod device;
mod pages;
mod second_step;
mod session;
mod token;

pub use authorize::*;
pub use desktop::*;
pub use device::*;
use pages::*;
use second_step::*;
pub use session::*;
pub use token::*;

// Discovery and keys --------------------------------------------------------------------------

pub async fn discovery(State(state): State<AppState>) -> Response {
    cacheable(Json(state.oidc.discovery()).into_response())
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    cacheable(Json(state.oidc.jwks()).into_response())
}

fn cacheable(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// Credentials in a response must not be cached (RFC 6749 §5.1).
fn no_store(mut r: Response) -> Response {
    let headers = r.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}
