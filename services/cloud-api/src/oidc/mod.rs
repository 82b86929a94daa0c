//! The OpenID Connect issuer: discovery, JWKS, authorization code flow with PKCE S256, token
//! endpoint (form-encoded RFC 6749, plus the desktop's JSON body), device authorization (RFC 8628), userinfo, revocation
//! (RFC 7009), end-session, and the desktop's legacy helpers.
//!
//! Tokens themselves (opaque access/refresh pairs with rotation and family revocation) come
//! from [`crate::sessions`], so the JSON account API and the issuer follow one set of rules.

mod http;
pub mod token_request;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

/// The issuer's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(http::discovery))
        .route("/oidc/jwks.json", get(http::jwks))
        .route(
            "/oidc/authorize",
            get(http::authorize_page).post(http::authorize_submit),
        )
        .route("/oidc/token", post(http::token))
        .route("/oidc/device/authorize", post(http::device_authorize))
        .route("/oidc/userinfo", get(http::userinfo).post(http::userinfo))
        .route("/oidc/revoke", post(http::revoke))
        .route("/oidc/logout", get(http::logout).post(http::logout_confirm))
        .route("/desktop/auth", get(http::desktop_auth))
        .route("/v1/auth/desktop/exchange", post(http::desktop_exchange))
        .route("/static/portal.css", get(crate::web::stylesheet))
        .route("/static/passkeys.js", get(crate::web::passkeys_script))
}
