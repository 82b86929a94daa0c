//! The web portal: server-rendered pages (askama, `templates/portal/`): the root page (`/` for
//! browsers, routed by `crate::dispatch`), signup, login,
//! logout, email verification, forgot/reset password, organizations (create, rename, invite,
//! accept), provider settings, the account page and its settings (password, email, sessions,
//! account deletion: `pages::account_settings`), the desktop hand-off and the device login
//! (RFC 8628) verification page.
//!
//! Pages work without JavaScript. Every POST carries the CSRF double-submit token
//! (`web::csrf_ok`); a missing or wrong token answers 400 and changes nothing. The portal
//! session is the `chatons_cloud_session` cookie (a session of client `chatons-portal`, the same
//! one the OIDC login page issues). Business rules are not repeated here: pages call the same
//! application functions (`crate::app`) as the JSON API.

pub(crate) mod pages;

use std::convert::Infallible;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::issuer::PORTAL_CLIENT;
use crate::sessions;
use crate::web;
use crate::web::caller::{Caller, apply_admin_list};

/// The portal's pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cloud", get(pages::account))
        .route("/cloud/account", get(pages::account))
        .route("/cloud/account/security", get(pages::security_page))
        .route(
            "/cloud/account/security/totp/begin",
            post(pages::totp_begin),
        )
        .route(
            "/cloud/account/security/totp/confirm",
            post(pages::totp_confirm),
        )
        .route(
            "/cloud/account/security/totp/disable",
            post(pages::totp_disable),
        )
        .route(
            "/cloud/account/security/passkeys/options",
            post(pages::passkey_options),
        )
        .route(
            "/cloud/account/security/passkeys",
            post(pages::passkey_register),
        )
        .route(
            "/cloud/account/security/passkeys/{id}/delete",
            post(pages::passkey_delete),
        )
        .route(
            "/cloud/login/passkey/options",
            post(pages::passkey_sign_in_options),
        )
        .route("/cloud/login/passkey", post(pages::passkey_sign_in))
        .merge(pages::settings_routes())
        .route(
            "/cloud/signup",
            get(pages::signup_page).post(pages::signup_submit),
        )
        .route(
            "/cloud/login",
            get(pages::login_page).post(pages::login_submit),
        )
        .route("/cloud/login/two-factor", post(pages::two_factor_submit))
        .route("/cloud/logout", post(pages::logout))
        .route(
            "/cloud/verify-email",
            get(pages::verify_page).post(pages::verify_submit),
        )
        .route("/cloud/verify-email/resend", post(pages::verify_resend))
        .route("/cloud/reset-password/done", get(pages::reset_done))
        .route(
            "/cloud/forgot-password",
            get(pages::forgot_page).post(pages::forgot_submit),
        )
        .route(
            "/cloud/reset-password",
            get(pages::reset_page).post(pages::reset_submit),
        )
        .route(
            "/cloud/organizations",
            get(pages::orgs_page).post(pages::org_create),
        )
        .route("/cloud/organizations/rename", post(pages::org_rename))
        .route("/cloud/organizations/invite", post(pages::org_invite))
        .route(
            "/cloud/accept-invite",
            get(pages::accept_page).post(pages::accept_submit),
        )
        .route(
            "/cloud/providers",
            get(pages::providers_page).post(pages::provider_create),
        )
        .route(
            "/cloud/providers/{id}",
            get(pages::provider_edit_page).post(pages::provider_update),
        )
        .route("/cloud/providers/{id}/delete", post(pages::provider_delete))
        .route("/cloud/desktop", get(pages::desktop))
        .route(
            "/cloud/device",
            get(pages::device_page).post(pages::device_submit),
        )
        .merge(pages::admin_routes())
}

/// Per-request page context: the CSRF token (and its cookie when new) and the signed-in user.
pub(crate) struct Ctx {
    pub https: bool,
    pub csrf: String,
    set_csrf: Option<HeaderValue>,
    pub caller: Option<Caller>,
}

impl Ctx {
    pub async fn load(state: &AppState, headers: &HeaderMap) -> Self {
        let https = state.config.web_url.scheme() == "https";
        let (csrf, set_csrf) = web::csrf_token(headers, https);
        let caller = portal_caller(state, headers).await;
        Self {
            https,
            csrf,
            set_csrf,
            caller,
        }
    }

    pub fn signed_in(&self) -> bool {
        self.caller.is_some()
    }

    /// Renders `t` with the security headers (and the CSRF cookie when new).
    pub fn page(&self, status: StatusCode, t: &impl Template) -> Response {
        let body = t.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "Template rendering failed.");
            "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
        });
        let mut r = web::html(status, body, &[], self.https);
        if let Some(c) = &self.set_csrf {
            r.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        r
    }

    pub fn notice(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        link: Option<(&str, &str)>,
    ) -> Response {
        self.page(
            status,
            &pages::NoticePage {
                signed_in: self.signed_in(),
                csrf_token: self.csrf.clone(),
                title: title.to_owned(),
                message: message.to_owned(),
                is_error: status.is_client_error() || status.is_server_error(),
                link: link.map(|(h, l)| (h.to_owned(), l.to_owned())),
            },
        )
    }
}

/// Every portal page starts from its context.
impl FromRequestParts<AppState> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Ctx::load(state, &parts.headers).await)
    }
}

/// A response that ends a page early (the login redirect, a notice), boxed so that the
/// `Result`s carrying it stay small; `?` turns it back into the page's answer.
pub(crate) struct EarlyAnswer(Box<Response>);

impl From<Response> for EarlyAnswer {
    fn from(r: Response) -> Self {
        EarlyAnswer(Box::new(r))
    }
}

impl From<EarlyAnswer> for Response {
    fn from(e: EarlyAnswer) -> Self {
        *e.0
    }
}

impl Ctx {
    /// The signed-in user, or the redirect to the login page (which comes back to `back`).
    pub fn caller_or_login(&self, back: &str) -> Result<Caller, EarlyAnswer> {
        self.caller.clone().ok_or_else(|| to_login(back).into())
    }
}

/// A form POST: the page context and the fields, CSRF-checked (see [`parse_form`]). A refused
/// form is answered with the page that says why.
pub(crate) struct Posted<T>(pub Ctx, pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ctx = Ctx::load(state, &headers).await;
        match parse_form(&headers, &body) {
            Ok(form) => Ok(Posted(ctx, form)),
            Err(r) => Err(r.respond(&ctx)),
        }
    }
}

/// A JSON POST from the portal's script (`static/passkeys.js`): the page context and the body,
/// CSRF-checked with the page's token in `x-csrf-token` (a header no cross-site form can send).
/// Refusals are JSON errors, which the script shows.
pub(crate) struct ScriptPost<T>(pub Ctx, pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ScriptPost<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if !web::csrf_ok(&headers, token) {
            let refused = cloud_common::ApiError::bad_request(
                "This page has expired: reload it and try again.",
            )
            .with_code("csrf_failed");
            return Err(refused.into_response());
        }
        let body: T =
            cloud_common::extract::parse_json(&body).map_err(IntoResponse::into_response)?;
        let ctx = Ctx::load(state, &headers).await;
        Ok(ScriptPost(ctx, body))
    }
}

impl<T: DeserializeOwned + Default> Posted<T> {
    /// The form of a signed-in user (else the login page, which comes back to `back`).
    pub fn signed_in(self, back: &str) -> Result<(Ctx, Caller, T), EarlyAnswer> {
        let Posted(ctx, form) = self;
        let caller = ctx.caller_or_login(back)?;
        Ok((ctx, caller, form))
    }
}

/// The signed-in user of the portal cookie (portal sessions only: a desktop access token in a
/// cookie is not a browser login).
pub(crate) async fn portal_caller(state: &AppState, headers: &HeaderMap) -> Option<Caller> {
    let token = web::cookie(headers, web::SESSION_COOKIE)?;
    match sessions::authenticate(state.store.as_ref(), token).await {
        Ok(Some((session, mut user))) if session.client_id == PORTAL_CLIENT => {
            apply_admin_list(&state.config.admin_emails, &mut user);
            Some(Caller { user, session })
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "Portal session lookup failed.");
            None
        }
    }
}

/// A form body: the fields plus `csrf_token`, checked against the cookie.
pub(crate) fn parse_form<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, FormRejected> {
    #[derive(serde::Deserialize)]
    struct Csrf {
        csrf_token: Option<String>,
    }
    let csrf: Csrf = serde_urlencoded::from_bytes(body).map_err(|_| FormRejected::Malformed)?;
    if !web::csrf_ok(headers, csrf.csrf_token.as_deref()) {
        return Err(FormRejected::Csrf);
    }
    serde_urlencoded::from_bytes(body).map_err(|_| FormRejected::Malformed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormRejected {
    Csrf,
    Malformed,
}

impl FormRejected {
    pub fn respond(self, ctx: &Ctx) -> Response {
        match self {
            FormRejected::Csrf => ctx.notice(
                StatusCode::BAD_REQUEST,
                "Form expired",
                "This form was not sent by this site or has expired. Go back, reload the page and try again.",
                None,
            ),
            FormRejected::Malformed => ctx.notice(
                StatusCode::BAD_REQUEST,
                "Invalid form",
                "The form could not be read.",
                None,
            ),
        }
    }
}

/// The page's `return_to` query parameter when it is a [`safe_return`] place, else empty.
pub(crate) struct ReturnTo(pub String);

impl FromRequestParts<AppState> for ReturnTo {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        #[derive(serde::Deserialize)]
        struct Query {
            return_to: Option<String>,
        }
        let query = parts.uri.query().unwrap_or("");
        let raw = serde_urlencoded::from_str::<Query>(query).ok();
        let raw = raw.and_then(|q| q.return_to);
        Ok(ReturnTo(
            safe_return(state, raw.as_deref()).unwrap_or_default(),
        ))
    }
}

/// A same-site place to go back to: a local path (`/…`, not `//…`) or an absolute URL on the
/// web or issuer origin. Anything else → `None`. Control and space characters are refused
/// outright: browsers drop tabs and newlines from URLs, so `/\t/evil.example/` would be read
/// as `//evil.example/`, another site. A path is also resolved against the web URL (as a browser
/// would) and must stay on its origin.
pub(crate) fn safe_return(state: &AppState, raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    if raw.is_empty()
        || raw.len() > 4096
        || raw.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return None;
    }
    let web = &state.config.web_url;
    if raw.starts_with('/') {
        if raw.starts_with("//") || raw.contains('\\') {
            return None;
        }
        let resolved = web.join(raw).ok()?;
        return (resolved.origin() == web.origin()).then(|| raw.to_owned());
    }
    let url = url::Url::parse(raw).ok()?;
    let origin = url.origin();
    let allowed = [
        web.origin(),
        state.config.public_url.origin(),
        url::Url::parse(&state.oidc.issuer).ok()?.origin(),
    ];
    allowed
        .iter()
        .any(|o| *o == origin && (url.scheme() == "http" || url.scheme() == "https"))
        .then(|| url.to_string())
}

/// `?return_to=…` for links that keep the place to go back to.
pub(crate) fn return_query(return_to: &str) -> String {
    if return_to.is_empty() {
        String::new()
    } else {
        format!(
            "?{}",
            serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default()
        )
    }
}

/// Sends the browser to the login page, then back to `back`.
pub(crate) fn to_login(back: &str) -> Response {
    web::redirect(
        &format!("/cloud/login{}", return_query(back)),
        false,
        Vec::new(),
    )
}
