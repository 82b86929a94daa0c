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
use chrono::{DateTime, Utc};
use cloud_common::ApiError;
use cloud_common::auth::bearer;
use cloud_common::extract::{ApiForm, ApiQuery};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use url::Url;

use crate::AppState;
use crate::crypto::{new_token, token_hash};
use crate::domain::{Session, User, now};
use crate::issuer::claims::{IdTokenInput, id_token_claims};
use crate::issuer::clients::{Client, DESKTOP_CALLBACK};
use crate::issuer::codes::AuthCode;
use crate::issuer::{PORTAL_CLIENT, pkce};
use crate::sessions::{self, IssuedTokens, Refreshed, SessionPolicy, SessionRequest};
use crate::web;
use crate::web::client_ip::ClientIp;

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

// Authorization endpoint -----------------------------------------------------------------------

/// The authorization request, as query parameters (GET) or hidden form fields (POST).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    base_url: Option<String>,
}

impl AuthorizeParams {
    /// The parameters to carry through the login form, as hidden fields.
    fn hidden(&self) -> Vec<(String, String)> {
        let fields = [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("prompt", &self.prompt),
            ("max_age", &self.max_age),
            ("base_url", &self.base_url),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
            .collect()
    }
}

/// A request whose client and redirect URI are trusted: further errors may be redirected.
struct Validated<'a> {
    client: &'a Client,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    nonce: Option<String>,
    challenge: String,
    prompt: Vec<String>,
    max_age: Option<i64>,
    base_url: Option<String>,
}

enum Invalid {
    /// Shown as a page: the redirect URI cannot be trusted.
    Page(&'static str, String),
    /// Sent back to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

fn validate<'a>(state: &'a AppState, p: &AuthorizeParams) -> Result<Validated<'a>, Invalid> {
    let client_id = p.client_id.as_deref().unwrap_or("");
    let client = state.oidc.client(client_id).ok_or_else(|| {
        Invalid::Page(
            "Unknown application",
            format!("No application is registered as {client_id:?}."),
        )
    })?;
    let redirect_uri = match p.redirect_uri.as_deref() {
        None if client.id == state.config.client_id => DESKTOP_CALLBACK.to_owned(),
        None => {
            return Err(Invalid::Page(
                "Invalid request",
                "redirect_uri is required.".into(),
            ));
        }
        Some(uri) if client.accepts_redirect(uri) => uri.to_owned(),
        Some(_) => {
            return Err(Invalid::Page(
                "Invalid redirect",
                "The redirect_uri is not registered for this application.".into(),
            ));
        }
    };
    let back = |error: &'static str, description: String| Invalid::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: p.state.clone(),
        error,
        description,
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    let challenge = pkce::check_challenge(
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    )
    .map_err(|e| back("invalid_request", e.to_string()))?;
    let prompt: Vec<String> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if prompt
        .iter()
        .any(|v| !matches!(v.as_str(), "none" | "login" | "consent" | "select_account"))
    {
        return Err(back("invalid_request", "unsupported prompt value".into()));
    }
    if prompt.iter().any(|v| v == "none") && prompt.len() > 1 {
        return Err(back(
            "invalid_request",
            "prompt=none cannot be combined".into(),
        ));
    }
    let max_age = match p.max_age.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
            back(
                "invalid_request",
                "max_age must be a non-negative integer".into(),
            )
        })?),
    };
    let scope = p
        .scope
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "openid profile email offline_access".to_owned());
    if scope.len() > 512
        || p.state.as_deref().map(str::len).unwrap_or(0) > 1024
        || p.nonce.as_deref().map(str::len).unwrap_or(0) > 512
    {
        return Err(back(
            "invalid_request",
            "scope, state or nonce is too long".into(),
        ));
    }
    Ok(Validated {
        client,
        redirect_uri,
        state: p.state.clone(),
        scope,
        nonce: p.nonce.clone(),
        challenge,
        prompt,
        max_age,
        base_url: p.base_url.clone(),
    })
}

fn https(state: &AppState) -> bool {
    state.config.web_url.scheme() == "https"
}

/// CSP `form-action` source that lets the login form's answer redirect to the client.
fn form_action_source(redirect_uri: &str) -> Vec<String> {
    match Url::parse(redirect_uri) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            vec![u.origin().ascii_serialization()]
        }
        Ok(u) => vec![format!("{}:", u.scheme())],
        Err(_) => Vec::new(),
    }
}

fn client_label(client: &Client, state: &AppState) -> String {
    if client.id == state.config.client_id {
        "Chatons desktop".to_owned()
    } else {
        client.id.clone()
    }
}

#[derive(Template)]
#[template(path = "oidc/login.html")]
struct LoginPage {
    client_label: String,
    error: Option<String>,
    csrf_token: String,
    hidden: Vec<(String, String)>,
    email: String,
}

#[derive(Template)]
#[template(path = "oidc/consent.html")]
struct ConsentPage {
    client_label: String,
    name: String,
    email: String,
    offline: bool,
    csrf_token: String,
    hidden: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "oidc/message.html")]
pub(crate) struct MessagePage {
    pub title: String,
    pub message: String,
    pub is_error: bool,
}

fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "Template rendering failed.");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
    })
}

fn message_page(state: &AppState, status: StatusCode, title: &str, message: String) -> Response {
    let page = MessagePage {
        title: title.to_owned(),
        message,
        is_error: status.is_client_error() || status.is_server_error(),
    };
    web::html(status, render(&page), &[], https(state))
}

fn invalid_response(state: &AppState, invalid: Invalid, after_post: bool) -> Response {
    match invalid {
        Invalid::Page(title, message) => {
            message_page(state, StatusCode::BAD_REQUEST, title, message)
        }
        Invalid::Redirect {
            redirect_uri,
            state: st,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", error.to_owned()),
                ("error_description", description),
            ];
            if let Some(s) = st {
                pairs.push(("state", s));
            }
            pairs.push(("iss", state.oidc.issuer.clone()));
            web::redirect(&with_query(&redirect_uri, &pairs), after_post, Vec::new())
        }
    }
}

fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    match Url::parse(base) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// The browser's portal session, if any.
async fn portal_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, ApiError> {
    let Some(token) = web::cookie(headers, web::SESSION_COOKIE) else {
        return Ok(None);
    };
    let found = sessions::authenticate(state.store.as_ref(), token).await?;
    Ok(found.filter(|(s, _)| s.client_id == PORTAL_CLIENT))
}

fn needs_login(v: &Validated<'_>, session: Option<&Session>, now: DateTime<Utc>) -> bool {
    let Some(session) = session else { return true };
    if v.prompt
        .iter()
        .any(|p| p == "login" || p == "select_account")
    {
        return true;
    }
    matches!(v.max_age, Some(max) if (now - session.auth_time).num_seconds() > max)
}

#[tracing::instrument(skip_all)]
pub async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<AuthorizeParams>,
) -> Response {
    let v = match validate(&state, &params) {
        Ok(v) => v,
        Err(invalid) => return invalid_response(&state, invalid, false),
    };
    let session = match portal_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = now();
    if needs_login(&v, session.as_ref().map(|(s, _)| s), now) {
        if v.prompt.iter().any(|p| p == "none") {
            return invalid_response(
                &state,
                redirect_error(&v, "login_required", "the user is not signed in"),
                false,
            );
        }
        return login_form(
            &state,
            &headers,
            &params,
            &v,
            None,
            String::new(),
            StatusCode::OK,
        );
    }
    let Some((session, user)) = session else {
        return login_form(
            &state,
            &headers,
            &params,
            &v,
            None,
            String::new(),
            StatusCode::OK,
        );
    };
    if v.prompt.iter().any(|p| p == "consent") {
        return consent_form(&state, &headers, &params, &v, &user, Vec::new());
    }
    issue_code(&state, &v, &user, session.auth_time, Vec::new(), false).await
}

fn redirect_error(v: &Validated<'_>, error: &'static str, description: &str) -> Invalid {
    Invalid::Redirect {
        redirect_uri: v.redirect_uri.clone(),
        state: v.state.clone(),
        error,
        description: description.to_owned(),
    }
}

fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    params: &AuthorizeParams,
    v: &Validated<'_>,
    error: Option<String>,
    email: String,
    status: StatusCode,
) -> Response {
    let (csrf, set_cookie) = web::csrf_token(headers, https(state));
    let page = LoginPage {
        client_label: client_label(v.client, state),
        error,
        csrf_token: csrf,
        hidden: params.hidden(),
        email,
    };
    let mut response = web::html(
        status,
        render(&page),
        &form_action_source(&v.redirect_uri),
        https(state),
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn consent_form(
    state: &AppState,
    headers: &HeaderMap,
    params: &AuthorizeParams,
    v: &Validated<'_>,
    user: &User,
    extra_cookies: Vec<HeaderValue>,
) -> Response {
    let (csrf, set_cookie) = web::csrf_token(headers, https(state));
    let page = ConsentPage {
        client_label: client_label(v.client, state),
        name: user.display_name.clone(),
        email: user.email.clone(),
        offline: v.scope.split_whitespace().any(|s| s == "offline_access"),
        csrf_token: csrf,
        hidden: params.hidden(),
    };
    let mut response = web::html(
        StatusCode::OK,
        render(&page),
        &form_action_source(&v.redirect_uri),
        https(state),
    );
    for c in extra_cookies.into_iter().chain(set_cookie) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The login / consent form: hidden authorization parameters plus what the user entered.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    csrf_token: Option<String>,
    action: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn authorize_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiForm(form): ApiForm<AuthorizeForm>,
) -> Response {
    if !web::csrf_ok(&headers, form.csrf_token.as_deref()) {
        return message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Please try again",
            "This form expired or was not sent by Chatons Cloud. Go back and submit it again."
                .into(),
        );
    }
    let v = match validate(&state, &form.params) {
        Ok(v) => v,
        Err(invalid) => return invalid_response(&state, invalid, true),
    };
    match form.action.as_deref().unwrap_or("login") {
        "deny" => invalid_response(
            &state,
            redirect_error(&v, "access_denied", "the user declined"),
            true,
        ),
        "approve" => match portal_session(&state, &headers).await {
            Ok(Some((session, user))) => {
                issue_code(&state, &v, &user, session.auth_time, Vec::new(), true).await
            }
            Ok(None) => login_form(
                &state,
                &headers,
                &form.params,
                &v,
                None,
                String::new(),
                StatusCode::OK,
            ),
            Err(e) => e.into_response(),
        },
        "login" => login(&state, &ip, &headers, &form, &v).await,
        _ => message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "Unknown action.".into(),
        ),
    }
}

async fn login(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    form: &AuthorizeForm,
    v: &Validated<'_>,
) -> Response {
    let email = form.email.as_deref().unwrap_or("").trim().to_lowercase();
    let password = form.password.as_deref().unwrap_or("");
    let retry = |message: &str, status: StatusCode| {
        login_form(
            state,
            headers,
            &form.params,
            v,
            Some(message.to_owned()),
            email.clone(),
            status,
        )
    };
    if state
        .limiters
        .per_ip
        .check(&format!("login:{}", ip.0))
        .is_err()
        || (!email.is_empty()
            && state
                .limiters
                .per_account
                .check(&format!("login:{email}"))
                .is_err())
    {
        return retry(
            "Too many attempts. Wait a minute and try again.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    if email.is_empty() || password.is_empty() || password.len() > 1024 {
        return retry("Email and password are required.", StatusCode::BAD_REQUEST);
    }
    let user = match crate::app::accounts::sign_in_with_password(state, &email, password).await {
        Ok(u) => u,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(user) = user else {
        return retry("Invalid email or password.", StatusCode::UNAUTHORIZED);
    };
    let now = now();
    let portal = SessionPolicy {
        access_ttl: state.config.portal_session_ttl,
        refresh_ttl: state.config.portal_session_ttl,
    };
    let request = SessionRequest {
        user: user.id.clone(),
        client_id: PORTAL_CLIENT.to_owned(),
        scope: "portal".to_owned(),
        active_org: None,
        with_refresh: false,
        auth_time: now,
    };
    let issued = match sessions::issue_session(state.store.as_ref(), portal, &request).await {
        Ok(i) => i,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let cookie = web::set_cookie(
        web::SESSION_COOKIE,
        &issued.access_token,
        state.config.portal_session_ttl.as_secs() as i64,
        https(state),
    );
    if v.prompt.iter().any(|p| p == "consent") {
        return consent_form(state, headers, &form.params, v, &user, vec![cookie]);
    }
    issue_code(state, v, &user, now, vec![cookie], true).await
}

async fn issue_code(
    state: &AppState,
    v: &Validated<'_>,
    user: &User,
    auth_time: DateTime<Utc>,
    cookies: Vec<HeaderValue>,
    after_post: bool,
) -> Response {
    let code = new_token("");
    let now = now();
    let ttl = chrono::Duration::from_std(state.config.auth_code_ttl)
        .unwrap_or(chrono::Duration::minutes(5));
    let record = AuthCode {
        code_hash: token_hash(&code),
        client_id: v.client.id.clone(),
        redirect_uri: v.redirect_uri.clone(),
        user_id: user.id.clone(),
        scope: v.scope.clone(),
        nonce: v.nonce.clone(),
        code_challenge: v.challenge.clone(),
        auth_time,
        expires_at: now + ttl,
        consumed_at: None,
        family_id: None,
    };
    if let Err(e) = state.oidc.codes.insert(&record).await {
        return ApiError::from(e).into_response();
    }
    let mut pairs = vec![("code", code)];
    if let Some(s) = &v.state {
        pairs.push(("state", s.clone()));
    }
    pairs.push(("iss", state.oidc.issuer.clone()));
    if let Some(b) = &v.base_url {
        pairs.push(("base_url", b.clone()));
    }
    web::redirect(&with_query(&v.redirect_uri, &pairs), after_post, cookies)
}

// Token endpoint -------------------------------------------------------------------------------

/// Form-encoded (RFC 6749) or the desktop's camelCase JSON.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    #[serde(alias = "grantType")]
    grant_type: Option<String>,
    code: Option<String>,
    #[serde(alias = "redirectUri")]
    redirect_uri: Option<String>,
    #[serde(alias = "codeVerifier")]
    code_verifier: Option<String>,
    #[serde(alias = "refreshToken")]
    refresh_token: Option<String>,
    #[serde(alias = "clientId")]
    client_id: Option<String>,
    #[serde(alias = "clientSecret")]
    client_secret: Option<String>,
}

/// An RFC 6749 §5.2 error (`error_description`, and `message` for the common envelope).
fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> ApiError {
    let mut e = ApiError::new(status, error, description.to_owned())
        .with_field("error_description", description);
    if status == StatusCode::UNAUTHORIZED {
        e.www_authenticate = Some("Basic");
    }
    e
}

fn invalid_grant(description: &str) -> ApiError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Result<(TokenRequest, bool), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        let mut req: TokenRequest = cloud_common::extract::parse_json(body)?;
        req.grant_type
            .get_or_insert_with(|| "authorization_code".to_owned());
        Ok((req, true))
    } else {
        serde_urlencoded::from_bytes(body)
            .map(|r| (r, false))
            .map_err(|e| {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("invalid form body: {e}"),
                )
            })
    }
}

/// Identifies and authenticates the client (Basic, form secret, or none for public clients).
fn authenticate_client<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    req: &TokenRequest,
) -> Result<&'a Client, ApiError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let header_secret = headers
        .get("x-oidc-client-secret")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (client_id, secret) = match (&basic, req.client_id.as_deref()) {
        (Some((id, _)), Some(body_id)) if id != body_id => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id mismatch",
            ));
        }
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (id.to_owned(), req.client_secret.clone().or(header_secret)),
        (None, None) => {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication required",
            ));
        }
    };
    let client = state
        .oidc
        .client(&client_id)
        .ok_or_else(|| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client"))?;
    if let Some(expected) = &client.secret {
        let presented = secret.unwrap_or_default();
        let ok: bool = token_hash(&presented)
            .as_bytes()
            .ct_eq(token_hash(expected.expose()).as_bytes())
            .into();
        if !ok {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ));
        }
    }
    Ok(client)
}

/// The standard token response, plus `user`/`session`/`idToken` so the existing desktop (which
/// reads the first system's shape) keeps working.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    scope: String,
    user: Value,
    session: Value,
    #[serde(rename = "idToken", skip_serializing_if = "Option::is_none")]
    id_token_compat: Option<String>,
}

fn token_policy(state: &AppState) -> SessionPolicy {
    SessionPolicy {
        access_ttl: state.config.access_token_ttl,
        refresh_ttl: state.config.refresh_token_ttl,
    }
}

#[tracing::instrument(skip_all)]
pub async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_inner(&state, &ip, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    if let Err(wait) = state.limiters.token.check(&format!("token:{}", ip.0)) {
        return Err(ApiError::too_many_requests(wait.as_secs()));
    }
    let (req, _json) = parse_token_request(headers, body)?;
    let client = authenticate_client(state, headers, &req)?;
    match req.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(state, client, &req).await,
        Some("refresh_token") => refresh(state, client, &req).await,
        Some(_) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code and refresh_token are supported",
        )),
        None => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        )),
    }
}

async fn exchange_code(
    state: &AppState,
    client: &Client,
    req: &TokenRequest,
) -> Result<Response, ApiError> {
    let (Some(code), Some(redirect_uri)) = (req.code.as_deref(), req.redirect_uri.as_deref())
    else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code and redirect_uri are required",
        ));
    };
    let Some(verifier) = req.code_verifier.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code_verifier is required (PKCE)",
        ));
    };
    let hash = token_hash(code);
    let Some(record) = state.oidc.codes.get(&hash).await? else {
        return Err(invalid_grant("invalid or expired authorization code"));
    };
    let now = now();
    if record.consumed_at.is_some() {
        replay(state, &record).await?;
        return Err(invalid_grant("authorization code already used"));
    }
    if record.client_id != client.id || record.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "authorization code was issued to another client or redirect_uri",
        ));
    }
    if record.expires_at <= now {
        return Err(invalid_grant("authorization code expired"));
    }
    pkce::verify(verifier, &record.code_challenge).map_err(|e| invalid_grant(&e.to_string()))?;
    if !state.oidc.codes.consume(&hash, now).await? {
        replay(state, &record).await?;
        return Err(invalid_grant("authorization code already used"));
    }
    let Some(user) = state.store.user(&record.user_id).await? else {
        return Err(invalid_grant("the user no longer exists"));
    };
    let offline = record
        .scope
        .split_whitespace()
        .any(|s| s == "offline_access");
    let request = SessionRequest {
        user: user.id.clone(),
        client_id: client.id.clone(),
        scope: record.scope.clone(),
        active_org: None,
        with_refresh: offline,
        auth_time: record.auth_time,
    };
    let issued =
        sessions::issue_session(state.store.as_ref(), token_policy(state), &request).await?;
    state
        .oidc
        .codes
        .bind_family(&hash, &issued.session.family_id)
        .await?;
    token_response(state, &user, &issued, record.nonce.as_deref()).await
}

/// A code presented twice: revoke what its first exchange issued.
async fn replay(state: &AppState, record: &AuthCode) -> Result<(), ApiError> {
    tracing::warn!(client = %record.client_id, "Authorization code replayed; revoking the tokens it issued.");
    if let Some(family) = &record.family_id {
        sessions::revoke_family(state.store.as_ref(), family).await?;
    }
    Ok(())
}

async fn refresh(
    state: &AppState,
    client: &Client,
    req: &TokenRequest,
) -> Result<Response, ApiError> {
    let Some(refresh_token) = req.refresh_token.as_deref() else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is required",
        ));
    };
    // Every refusal happens before the rotation, so a refused request (wrong client, rate
    // limit, deleted user) leaves the presented token exactly as usable as before.
    let Some(current) = state
        .store
        .session_by_refresh_hash(&token_hash(refresh_token))
        .await?
    else {
        return Err(invalid_grant("invalid or expired refresh token"));
    };
    if current.client_id != client.id {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    if let Err(wait) = state
        .limiters
        .token
        .check(&format!("token-user:{}", current.user_id))
    {
        return Err(ApiError::too_many_requests(wait.as_secs()));
    }
    let Some(user) = state.store.user(&current.user_id).await? else {
        return Err(invalid_grant("the user no longer exists"));
    };
    match sessions::rotate_refresh(
        state.store.as_ref(),
        &state.secrets,
        token_policy(state),
        refresh_token,
        state.config.refresh_reuse_grace,
    )
    .await?
    {
        Refreshed::Issued(issued) => token_response(state, &user, &issued, None).await,
        Refreshed::Reused => Err(invalid_grant(
            "refresh token reused; the session was revoked",
        )),
        Refreshed::Invalid => Err(invalid_grant("invalid or expired refresh token")),
    }
}

async fn token_response(
    state: &AppState,
    user: &User,
    issued: &IssuedTokens,
    nonce: Option<&str>,
) -> Result<Response, ApiError> {
    let now = now();
    let session = &issued.session;
    let id_token = if session.scope.split_whitespace().any(|s| s == "openid") {
        let claims = id_token_claims(&IdTokenInput {
            issuer: &state.oidc.issuer,
            client_id: &session.client_id,
            subject: user.id.as_str(),
            email: &user.email,
            email_verified: user.email_verified_at.is_some(),
            name: &user.display_name,
            nonce,
            auth_time: session.auth_time,
            now,
            ttl_secs: state.config.id_token_ttl.as_secs() as i64,
            access_token: Some(&issued.access_token),
        });
        Some(
            state
                .oidc
                .signing
                .sign_jwt(&claims)
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    let plans = crate::app::access::plans(state).await?;
    let user_json =
        serde_json::to_value(crate::views::user_view(user, &plans, now)).unwrap_or(Value::Null);
    let body = TokenResponse {
        access_token: issued.access_token.clone(),
        token_type: "Bearer",
        expires_in: (session.expires_at - now).num_seconds().max(0),
        refresh_token: issued.refresh_token.clone(),
        id_token: id_token.clone(),
        scope: session.scope.clone(),
        user: user_json,
        session: json!({
            "accessToken": issued.access_token,
            "refreshToken": issued.refresh_token,
            "expiresAt": cloud_common::time::iso(session.expires_at),
            "refreshExpiresAt": session.refresh_expires_at.map(cloud_common::time::iso),
        }),
        id_token_compat: id_token,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

// Userinfo, revocation, logout -----------------------------------------------------------------

#[tracing::instrument(skip_all)]
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let token = bearer(&headers)
        .ok_or_else(|| oauth_bearer_error("invalid_request", "bearer token required"))?;
    let (session, user) = sessions::authenticate(state.store.as_ref(), token)
        .await?
        .filter(|(s, _)| s.client_id != PORTAL_CLIENT)
        .ok_or_else(|| {
            oauth_bearer_error("invalid_token", "the access token is invalid or expired")
        })?;
    let _ = session;
    Ok(Json(json!({
        "sub": user.id.as_str(),
        "email": user.email,
        "email_verified": user.email_verified_at.is_some(),
        "name": user.display_name,
        "preferred_username": user.email.split('@').next().unwrap_or(&user.email),
    })))
}

fn oauth_bearer_error(error: &'static str, description: &str) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, error, description.to_owned())
        .with_field("error_description", description);
    e.www_authenticate = Some("Bearer");
    e
}

#[derive(Debug, Default, Deserialize)]
pub struct RevokeRequest {
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// RFC 7009: revokes an access token (its session) or a refresh token (its whole family).
/// Unknown tokens are answered 200 like known ones, so the endpoint reveals nothing.
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiForm(req): ApiForm<RevokeRequest>,
) -> Result<Response, ApiError> {
    let as_token_req = TokenRequest {
        client_id: req.client_id.clone(),
        client_secret: req.client_secret.clone(),
        ..TokenRequest::default()
    };
    let client = authenticate_client(&state, &headers, &as_token_req)?;
    let Some(token) = req.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        ));
    };
    let hash = token_hash(token);
    let now = now();
    if let Some(session) = state.store.session_by_access_hash(&hash, now).await? {
        if session.client_id == client.id {
            state.store.revoke_session(&session.id, now).await?;
        }
    } else if let Some(session) = state.store.session_by_refresh_hash(&hash).await? {
        if session.client_id == client.id {
            sessions::revoke_family(state.store.as_ref(), &session.family_id).await?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// RP-initiated logout: ends the browser's portal session; redirects only to a registered
/// post-logout URI of the named client.
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<LogoutParams>,
) -> Response {
    if let Ok(Some((session, _))) = portal_session(&state, &headers).await {
        let _ = sessions::revoke_family(state.store.as_ref(), &session.family_id).await;
    }
    let clear = web::clear_cookie(web::SESSION_COOKIE, https(&state));
    let client_id = p
        .client_id
        .clone()
        .or_else(|| p.id_token_hint.as_deref().and_then(audience_of));
    if let Some(uri) = p.post_logout_redirect_uri.as_deref() {
        let allowed = client_id
            .as_deref()
            .and_then(|id| state.oidc.client(id))
            .is_some_and(|c| c.accepts_post_logout_redirect(uri));
        if !allowed {
            let mut r = message_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Invalid redirect",
                "You are signed out, but the post_logout_redirect_uri is not registered.".into(),
            );
            r.headers_mut().append(header::SET_COOKIE, clear);
            return r;
        }
        let mut pairs = Vec::new();
        if let Some(s) = p.state {
            pairs.push(("state", s));
        }
        return web::redirect(&with_query(uri, &pairs), false, vec![clear]);
    }
    let mut r = message_page(
        &state,
        StatusCode::OK,
        "Signed out",
        "You are signed out of Chatons Cloud.".into(),
    );
    r.headers_mut().append(header::SET_COOKIE, clear);
    r
}

/// The `aud` of an id_token hint (not verified: it only selects which client's registered
/// post-logout URIs apply, never grants anything).
fn audience_of(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    match &claims["aud"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

// Desktop helpers ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct DesktopAuthParams {
    state: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    base_url: Option<String>,
    prompt: Option<String>,
}

/// Legacy entry point: forwards to the authorization endpoint for the desktop client. The
/// desktop must send its own PKCE challenge (the first system derived it from `state`, which made
/// PKCE useless).
pub async fn desktop_auth(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<DesktopAuthParams>,
) -> Response {
    if p.code_challenge.as_deref().unwrap_or("").is_empty() {
        return message_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Update Chatons",
            "This sign-in link needs a PKCE code_challenge (S256). Update the desktop app and try again.".into(),
        );
    }
    let mut pairs = vec![
        ("response_type", "code".to_owned()),
        ("client_id", state.config.client_id.clone()),
        (
            "redirect_uri",
            p.redirect_uri
                .unwrap_or_else(|| DESKTOP_CALLBACK.to_owned()),
        ),
        ("scope", "openid profile email offline_access".to_owned()),
        ("code_challenge", p.code_challenge.unwrap_or_default()),
        (
            "code_challenge_method",
            p.code_challenge_method.unwrap_or_else(|| "S256".to_owned()),
        ),
    ];
    for (k, v) in [
        ("state", p.state),
        ("nonce", p.nonce),
        ("base_url", p.base_url),
        ("prompt", p.prompt),
    ] {
        if let Some(v) = v {
            pairs.push((k, v));
        }
    }
    web::redirect(
        &with_query(&state.oidc.endpoint("/oidc/authorize"), &pairs),
        false,
        Vec::new(),
    )
}

/// Legacy JSON exchange `{code, clientId, redirectUri, codeVerifier}`: the same checks as the
/// token endpoint's code grant, including the client.
pub async fn desktop_exchange(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut headers = headers;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match token_inner(&state, &ip, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
