//! Page handlers. GET renders; POST checks CSRF, calls the shared logic and either redirects
//! (303) or re-renders the page with the error.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cloud_common::ApiError;
use serde::Deserialize;

use super::{Ctx, parse_form, return_query, safe_return, to_login};
use crate::AppState;
use crate::app::providers::{ModelInput, OrgListQuery};
use crate::app::{organizations as orgs, providers};
use crate::domain::*;
use crate::issuer::PORTAL_CLIENT;
use crate::mail::templates as mails;
use crate::sessions::{self, SessionPolicy, SessionRequest};
use crate::web;
use crate::web::caller::Caller;
use crate::web::client_ip::ClientIp;

// Templates ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/notice.html")]
pub(crate) struct NoticePage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub title: String,
    pub message: String,
    pub is_error: bool,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    return_to: String,
    return_query: String,
    email: String,
    display_name: String,
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    return_to: String,
    return_query: String,
    email: String,
}

#[derive(Template)]
#[template(path = "portal/forgot.html")]
struct ForgotPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/reset.html")]
struct ResetPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    token: String,
}

#[derive(Template)]
#[template(path = "portal/verify.html")]
struct VerifyPage {
    signed_in: bool,
    csrf_token: String,
    token: String,
}

struct OrgRow {
    id: String,
    name: String,
    slug: String,
    role: String,
    personal: bool,
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    name: String,
    email: String,
    verified: bool,
    orgs: Vec<OrgRow>,
}

struct MemberRow {
    display_name: String,
    email: String,
    role: String,
}

struct InviteRow {
    email: String,
    role: String,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "portal/organizations.html")]
struct OrgsPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    orgs: Vec<OrgRow>,
    selected_id: String,
    selected: Option<OrgRow>,
    can_manage: bool,
    members: Vec<MemberRow>,
    invites: Vec<InviteRow>,
}

struct ProviderRow {
    id: String,
    label: String,
    kind: String,
    base_url: String,
    models: String,
    default_model: Option<String>,
    secret_set: bool,
}

#[derive(Template)]
#[template(path = "portal/providers.html")]
struct ProvidersPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    orgs: Vec<OrgRow>,
    org_id: String,
    can_manage: bool,
    providers: Vec<ProviderRow>,
}

#[derive(Template)]
#[template(path = "portal/provider_edit.html")]
struct ProviderEditPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    id: String,
    org_id: String,
    kind: String,
    label: String,
    base_url: String,
    models: String,
    default_model: String,
    secret_set: bool,
}

#[derive(Template)]
#[template(path = "portal/accept_invite.html")]
struct AcceptPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
    token: String,
}

#[derive(Template)]
#[template(path = "portal/desktop.html")]
struct DesktopPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
}

// Helpers -----------------------------------------------------------------------------------------

fn ok_or_page(ctx: &Ctx, e: ApiError) -> Response {
    if e.status.is_server_error() {
        tracing::error!(error = %e.message, "Portal request failed.");
        return ctx.notice(
            e.status,
            "Something went wrong",
            "Please try again in a moment.",
            None,
        );
    }
    ctx.notice(
        e.status,
        "Not possible",
        &e.message,
        Some(("/cloud/account", "Back to your account")),
    )
}

fn org_rows(memberships: &[(Organization, Role)]) -> Vec<OrgRow> {
    memberships
        .iter()
        .map(|(o, r)| OrgRow {
            id: o.id.0.clone(),
            name: o.name.clone(),
            slug: o.slug.clone(),
            role: r.as_str().to_owned(),
            personal: o.is_personal,
        })
        .collect()
}

fn lines(raw: Option<&str>) -> Vec<ModelInput> {
    raw.unwrap_or("")
        .split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|id| ModelInput {
            id: Some(id.to_owned()),
            label: None,
        })
        .collect()
}

fn after_post(location: &str) -> Response {
    web::redirect(location, true, Vec::new())
}

fn throttled(state: &AppState, ip: &ClientIp, what: &str, email: &str) -> bool {
    state
        .limiters
        .per_ip
        .check(&format!("{what}:{}", ip.0))
        .is_err()
        || (!email.is_empty()
            && state
                .limiters
                .per_account
                .check(&format!("{what}:{}", email.trim().to_lowercase()))
                .is_err())
}

const TOO_MANY: &str = "Too many attempts. Wait a minute and try again.";

// Account -----------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn known_notice(key: Option<&str>) -> Option<String> {
    match key? {
        "verified" => Some("Your email is confirmed.".into()),
        "resent" => Some("A new confirmation link is on its way.".into()),
        "welcome" => Some("You are signed in.".into()),
        _ => None,
    }
}

pub async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = &ctx.caller else {
        return to_login("/cloud/account");
    };
    let memberships = match state.store.memberships_of(&caller.user.id).await {
        Ok(m) => m,
        Err(e) => return ok_or_page(&ctx, e.into()),
    };
    let page = AccountPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: known_notice(q.notice.as_deref()),
        name: caller.user.display_name.clone(),
        email: caller.user.email.clone(),
        verified: caller.user.email_verified_at.is_some(),
        orgs: org_rows(&memberships),
    };
    ctx.page(StatusCode::OK, &page)
}

// Signup ------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct ReturnQuery {
    return_to: Option<String>,
}

pub async fn signup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let return_to = safe_return(&state, q.return_to.as_deref()).unwrap_or_default();
    ctx.page(
        StatusCode::OK,
        &SignupPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error: None,
            return_query: return_query(&return_to),
            return_to,
            email: String::new(),
            display_name: String::new(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct SignupForm {
    email: Option<String>,
    /// `displayName` is the first system's field name (its forms still post it).
    #[serde(alias = "displayName")]
    display_name: Option<String>,
    password: Option<String>,
    return_to: Option<String>,
}

/// Creates the account and asks to check the inbox. An address that already has an account
/// gets the same answer (after the same password-hashing work) and its owner gets a mail.
pub async fn signup_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signup_with_form(&state, &ip, &headers, &body, false).await
}

/// The signup form. The portal's asks to check the inbox and never tells whether the address
/// had an account; the first system's `POST /v1/web/signup` form (`legacy`) signs the new
/// account in and redirects (302) to `return_to`, and says 409 for a taken address as the JSON
/// route does.
pub async fn signup_with_form(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    body: &[u8],
    legacy: bool,
) -> Response {
    let ctx = Ctx::load(state, headers).await;
    let form: SignupForm = match parse_form(headers, body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    let return_to = safe_return(state, form.return_to.as_deref()).unwrap_or_default();
    let email = form.email.clone().unwrap_or_default();
    let retry = |message: String, status: StatusCode| {
        ctx.page(
            status,
            &SignupPage {
                signed_in: ctx.signed_in(),
                csrf_token: ctx.csrf.clone(),
                error: Some(message),
                return_query: return_query(&return_to),
                return_to: return_to.clone(),
                email: email.trim().to_owned(),
                display_name: form.display_name.clone().unwrap_or_default(),
            },
        )
    };
    if throttled(state, ip, "signup", &email) {
        return retry(TOO_MANY.into(), StatusCode::TOO_MANY_REQUESTS);
    }
    match crate::app::accounts::register(
        state,
        form.email.as_deref(),
        form.display_name.as_deref(),
        form.password.as_deref(),
    )
    .await
    {
        Ok(registered) if legacy => {
            return start_session(state, &ctx, &registered.user, return_to, StatusCode::FOUND)
                .await;
        }
        Ok(_) => {}
        Err(e) if e.status == StatusCode::CONFLICT && legacy => {
            return retry(e.message.to_string(), e.status);
        }
        Err(e) if e.status == StatusCode::CONFLICT => {
            // Same work and answer as a new account; the owner learns about the attempt.
            let _ = state
                .hasher
                .hash(form.password.as_deref().unwrap_or(""))
                .await;
            if let Ok(Some(owner)) = state
                .store
                .user_by_email(&email.trim().to_lowercase())
                .await
            {
                crate::app::email::send_already_registered(state, &owner).await;
            }
        }
        Err(e) if e.status.is_client_error() => {
            return retry(e.message.to_string(), e.status);
        }
        Err(e) => return ok_or_page(&ctx, e),
    }
    let login = format!("/cloud/login{}", return_query(&return_to));
    let message = if state.config.smtp.is_some() {
        format!(
            "We sent a confirmation link to {}. Open it, then sign in.",
            email.trim()
        )
    } else {
        "Your account is ready (this server sends no mail: the address counts as confirmed). You can sign in now.".to_owned()
    };
    ctx.notice(
        StatusCode::OK,
        "Check your email",
        &message,
        Some((&login, "Sign in")),
    )
}

// Login / logout ----------------------------------------------------------------------------------

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let return_to = safe_return(&state, q.return_to.as_deref()).unwrap_or_default();
    ctx.page(
        StatusCode::OK,
        &LoginPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            notice: None,
            error: None,
            return_query: return_query(&return_to),
            return_to,
            email: String::new(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    email: Option<String>,
    password: Option<String>,
    return_to: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    login_with_form(&state, &ip, &headers, &body, StatusCode::SEE_OTHER).await
}

/// The login form (the portal's, or the first system's `POST /v1/web/login` form): CSRF-checked,
/// throttled; success starts a portal session and redirects with `redirect` (303 for the
/// portal, 302 as the first system answered).
pub async fn login_with_form(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    body: &[u8],
    redirect: StatusCode,
) -> Response {
    let ctx = Ctx::load(state, headers).await;
    let form: LoginForm = match parse_form(headers, body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    let return_to = safe_return(state, form.return_to.as_deref()).unwrap_or_default();
    let email = form.email.as_deref().unwrap_or("").trim().to_lowercase();
    let password = form.password.as_deref().unwrap_or("");
    let retry = |message: &str, status: StatusCode| {
        ctx.page(
            status,
            &LoginPage {
                signed_in: ctx.signed_in(),
                csrf_token: ctx.csrf.clone(),
                notice: None,
                error: Some(message.to_owned()),
                return_query: return_query(&return_to),
                return_to: return_to.clone(),
                email: email.clone(),
            },
        )
    };
    if throttled(state, ip, "login", &email) {
        return retry(TOO_MANY, StatusCode::TOO_MANY_REQUESTS);
    }
    if email.is_empty() || password.is_empty() || password.len() > 1024 {
        return retry("Email and password are required.", StatusCode::BAD_REQUEST);
    }
    let user = match crate::app::accounts::sign_in_with_password(state, &email, password).await {
        Ok(u) => u,
        Err(e) => return ok_or_page(&ctx, e.into()),
    };
    let Some(user) = user else {
        return retry("Invalid email or password.", StatusCode::UNAUTHORIZED);
    };
    start_session(state, &ctx, &user, return_to, redirect).await
}

/// Starts a portal session for `user` (ending this browser's previous one) and redirects to
/// `return_to` (default: the account page) with the session cookie.
async fn start_session(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    return_to: String,
    redirect: StatusCode,
) -> Response {
    let ttl = state.config.portal_session_ttl;
    let issued = match sessions::issue_session(
        state.store.as_ref(),
        SessionPolicy {
            access_ttl: ttl,
            refresh_ttl: ttl,
        },
        &SessionRequest {
            user: user.id.clone(),
            client_id: PORTAL_CLIENT.to_owned(),
            scope: "portal".to_owned(),
            active_org: None,
            with_refresh: false,
            auth_time: now(),
        },
    )
    .await
    {
        Ok(i) => i,
        Err(e) => return ok_or_page(ctx, e.into()),
    };
    // A previous portal session of this browser ends with the new one.
    if let Some(old) = &ctx.caller {
        let _ = sessions::revoke_family(state.store.as_ref(), &old.session.family_id).await;
    }
    let cookie = web::set_cookie(
        web::SESSION_COOKIE,
        &issued.access_token,
        ttl.as_secs() as i64,
        ctx.https,
    );
    let target = if return_to.is_empty() {
        "/cloud/account?notice=welcome".to_owned()
    } else {
        return_to
    };
    let mut response = web::redirect(&target, true, vec![cookie]);
    *response.status_mut() = redirect;
    response
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    #[derive(Default, Deserialize)]
    struct Empty {}
    if let Err(r) = parse_form::<Empty>(&headers, &body) {
        return r.respond(&ctx);
    }
    if let Some(caller) = &ctx.caller {
        if let Err(e) =
            sessions::revoke_family(state.store.as_ref(), &caller.session.family_id).await
        {
            return ok_or_page(&ctx, e.into());
        }
    }
    web::redirect(
        "/cloud/login",
        true,
        vec![web::clear_cookie(web::SESSION_COOKIE, ctx.https)],
    )
}

// Email verification ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Shows a button (the token is consumed by the POST, so mail scanners that open links do not
/// burn it).
pub async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(token) = q.token.filter(|t| !t.trim().is_empty()) else {
        return ctx.notice(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            "This confirmation link is incomplete. Open the link from the mail again.",
            None,
        );
    };
    ctx.page(
        StatusCode::OK,
        &VerifyPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            token,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    token: Option<String>,
    password: Option<String>,
}

pub async fn verify_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let form: TokenForm = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    match crate::app::email::verify_email(&state, form.token.as_deref().unwrap_or("").trim()).await {
        Ok(_) if ctx.signed_in() => after_post("/cloud/account?notice=verified"),
        Ok(_) => ctx.notice(
            StatusCode::OK,
            "Email confirmed",
            "Your email is confirmed. You can sign in.",
            Some(("/cloud/login", "Sign in")),
        ),
        Err(e) if e.status.is_client_error() => ctx.notice(
            StatusCode::BAD_REQUEST,
            "Link expired",
            "This confirmation link is invalid, already used or expired. Sign in and ask for a new one.",
            Some(("/cloud/login", "Sign in")),
        ),
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn verify_resend(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    #[derive(Default, Deserialize)]
    struct Empty {}
    if let Err(r) = parse_form::<Empty>(&headers, &body) {
        return r.respond(&ctx);
    }
    let Some(caller) = &ctx.caller else {
        return to_login("/cloud/account");
    };
    let key = format!("resend:{}", caller.user.id);
    if state.limiters.per_account.check(&key).is_err() {
        return ctx.notice(
            StatusCode::TOO_MANY_REQUESTS,
            "Slow down",
            TOO_MANY,
            Some(("/cloud/account", "Back")),
        );
    }
    if caller.user.email_verified_at.is_none() {
        crate::app::email::send_verification(&state, &caller.user).await;
    }
    after_post("/cloud/account?notice=resent")
}

// Forgot / reset password -------------------------------------------------------------------------

pub async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    ctx.page(
        StatusCode::OK,
        &ForgotPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error: None,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailForm {
    email: Option<String>,
}

const FORGOT_SENT: &str = "If this address has an account, a link to choose a new password is on its way. It works once and expires soon.";

pub async fn forgot_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let form: EmailForm = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    let email = form.email.unwrap_or_default().trim().to_owned();
    let retry = |message: &str, status| {
        ctx.page(
            status,
            &ForgotPage {
                signed_in: ctx.signed_in(),
                csrf_token: ctx.csrf.clone(),
                error: Some(message.to_owned()),
            },
        )
    };
    if email.is_empty() {
        return retry("Enter your email.", StatusCode::BAD_REQUEST);
    }
    if crate::app::email::throttle_forgot(&state, &ip, &email).is_err() {
        return retry(TOO_MANY, StatusCode::TOO_MANY_REQUESTS);
    }
    crate::app::email::forgot_password_detached(&state, email);
    ctx.notice(
        StatusCode::OK,
        "Check your email",
        FORGOT_SENT,
        Some(("/cloud/login", "Back to sign in")),
    )
}

pub async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(token) = q.token.filter(|t| !t.trim().is_empty()) else {
        return ctx.notice(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            "This reset link is incomplete. Ask for a new one.",
            Some(("/cloud/forgot-password", "Forgot password")),
        );
    };
    ctx.page(
        StatusCode::OK,
        &ResetPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error: None,
            token,
        },
    )
}

pub async fn reset_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let form: TokenForm = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    let token = form.token.unwrap_or_default().trim().to_owned();
    let password = form.password.unwrap_or_default();
    match crate::app::email::reset_password(&state, &token, &password).await {
        Ok(_) => web::redirect(
            "/cloud/reset-password/done",
            true,
            vec![web::clear_cookie(web::SESSION_COOKIE, ctx.https)],
        ),
        Err(e) if e.code == "invalid_token" => ctx.notice(
            StatusCode::BAD_REQUEST,
            "Link expired",
            "This reset link is invalid, already used or expired. Ask for a new one.",
            Some(("/cloud/forgot-password", "Forgot password")),
        ),
        Err(e) if e.status.is_client_error() => ctx.page(
            e.status,
            &ResetPage {
                signed_in: ctx.signed_in(),
                csrf_token: ctx.csrf.clone(),
                error: Some(e.message.to_string()),
                token,
            },
        ),
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn reset_done(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    ctx.notice(
        StatusCode::OK,
        "Password changed",
        "Your password was changed and every device was signed out. Sign in with the new password.",
        Some(("/cloud/login", "Sign in")),
    )
}

// Organizations -----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct OrgQuery {
    org: Option<String>,
    notice: Option<String>,
}

async fn render_orgs(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<&str>,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let memberships = match state.store.memberships_of(&caller.user.id).await {
        Ok(m) => m,
        Err(e) => return ok_or_page(ctx, e.into()),
    };
    let rows = org_rows(&memberships);
    let selected = org
        .and_then(|id| memberships.iter().find(|(o, _)| o.id.0 == id))
        .or_else(|| memberships.iter().find(|(o, _)| !o.is_personal))
        .or_else(|| memberships.first());
    let mut members = Vec::new();
    let mut invites = Vec::new();
    let mut can_manage = false;
    if let Some((o, role)) = selected {
        can_manage = role.can_manage();
        let q = || OrgListQuery {
            organization_id: Some(o.id.0.clone()),
            limit: Some("200".into()),
            cursor: None,
        };
        match orgs::members(state, caller, q()).await {
            Ok(list) => {
                members = list
                    .members
                    .into_iter()
                    .map(|m| MemberRow {
                        display_name: m.display_name,
                        email: m.email,
                        role: m.role,
                    })
                    .collect();
            }
            Err(e) => return ok_or_page(ctx, e),
        }
        if can_manage {
            if let Ok(list) = orgs::invites(state, caller, q()).await {
                invites = list
                    .invites
                    .into_iter()
                    .map(|i| InviteRow {
                        email: i.email,
                        role: i.role,
                        expires_at: i.expires_at.chars().take(10).collect(),
                    })
                    .collect();
            }
        }
    }
    let selected_row = selected
        .map(|s| org_rows(std::slice::from_ref(s)))
        .and_then(|mut v| v.pop());
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    ctx.page(
        status,
        &OrgsPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            notice,
            error,
            selected_id: selected_row
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_default(),
            orgs: rows,
            selected: selected_row,
            can_manage,
            members,
            invites,
        },
    )
}

fn org_notice(key: Option<&str>) -> Option<String> {
    match key? {
        "created" => Some("Organization created.".into()),
        "renamed" => Some("Organization renamed.".into()),
        "invited" => Some("Invitation sent.".into()),
        "joined" => Some("You joined the organization.".into()),
        _ => None,
    }
}

pub async fn orgs_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OrgQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/organizations");
    };
    render_orgs(
        &state,
        &ctx,
        &caller,
        q.org.as_deref(),
        org_notice(q.notice.as_deref()),
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct OrgForm {
    organization_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

async fn org_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Ctx, Caller, OrgForm), Response> {
    let ctx = Ctx::load(state, headers).await;
    let form: OrgForm = parse_form(headers, body).map_err(|r| r.respond(&ctx))?;
    let Some(caller) = ctx.caller.clone() else {
        return Err(to_login("/cloud/organizations"));
    };
    Ok((ctx, caller, form))
}

pub async fn org_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match org_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = orgs::CreateOrganizationBody {
        name: form.name,
        slug: None,
    };
    match orgs::create(&state, &caller, body).await {
        Ok(created) => after_post(&format!(
            "/cloud/organizations?org={}&notice=created",
            created.organization.id
        )),
        Err(e) if e.status.is_client_error() => {
            render_orgs(
                &state,
                &ctx,
                &caller,
                None,
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn org_rename(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match org_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = form.organization_id.clone();
    let body = orgs::UpdateOrganizationBody {
        organization_id: form.organization_id,
        name: form.name,
        slug: None,
        plan: None,
    };
    match orgs::update(&state, &caller, body).await {
        Ok(updated) => after_post(&format!(
            "/cloud/organizations?org={}&notice=renamed",
            updated.organization.id
        )),
        Err(e) if e.status.is_client_error() => {
            render_orgs(
                &state,
                &ctx,
                &caller,
                org.as_deref(),
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn org_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match org_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = form.organization_id.clone();
    let body = orgs::CreateInviteBody {
        organization_id: form.organization_id,
        email: form.email,
        role: form.role,
    };
    match orgs::create_invite(&state, &caller, body).await {
        Ok(created) => {
            let org_name = match state
                .store
                .organization(&OrgId(created.invite.organization_id.clone()))
                .await
            {
                Ok(Some(o)) => o.name,
                _ => "an organization".to_owned(),
            };
            state
                .mailer
                .send(mails::invite(
                    &created.invite.email,
                    &caller.user.display_name,
                    &org_name,
                    &created.accept_url,
                ))
                .await;
            after_post(&format!(
                "/cloud/organizations?org={}&notice=invited",
                created.invite.organization_id
            ))
        }
        Err(e) if e.status.is_client_error() => {
            render_orgs(
                &state,
                &ctx,
                &caller,
                org.as_deref(),
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn accept_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let token = q.token.unwrap_or_default();
    let Some(caller) = &ctx.caller else {
        let back = format!(
            "/cloud/accept-invite?{}",
            serde_urlencoded::to_string([("token", token.as_str())]).unwrap_or_default()
        );
        return to_login(&back);
    };
    ctx.page(
        StatusCode::OK,
        &AcceptPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            email: caller.user.email.clone(),
            token,
        },
    )
}

pub async fn accept_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let form: TokenForm = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/organizations");
    };
    let body = orgs::AcceptInviteBody { token: form.token };
    match orgs::accept_invite(&state, &caller, body).await {
        Ok(accepted) => after_post(&format!(
            "/cloud/organizations?org={}&notice=joined",
            accepted.organization.id
        )),
        Err(e) if e.status.is_client_error() => ctx.notice(
            StatusCode::BAD_REQUEST,
            "Invitation not valid",
            "This invitation is invalid, expired, already used, or addressed to another email.",
            Some(("/cloud/account", "Back to your account")),
        ),
        Err(e) => ok_or_page(&ctx, e),
    }
}

// Providers ---------------------------------------------------------------------------------------

async fn render_providers(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<&str>,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let memberships = match state.store.memberships_of(&caller.user.id).await {
        Ok(m) => m,
        Err(e) => return ok_or_page(ctx, e.into()),
    };
    let selected = org
        .and_then(|id| memberships.iter().find(|(o, _)| o.id.0 == id))
        .or_else(|| memberships.first());
    let Some((o, role)) = selected else {
        return ok_or_page(ctx, ApiError::not_found("No organization"));
    };
    let list = match providers::list(
        state,
        caller,
        OrgListQuery {
            organization_id: Some(o.id.0.clone()),
            limit: Some("200".into()),
            cursor: None,
        },
    )
    .await
    {
        Ok(l) => l.providers,
        Err(e) => return ok_or_page(ctx, e),
    };
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    ctx.page(
        status,
        &ProvidersPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            notice,
            error,
            orgs: org_rows(&memberships),
            org_id: o.id.0.clone(),
            can_manage: role.can_manage(),
            providers: list
                .into_iter()
                .map(|p| ProviderRow {
                    id: p.id,
                    label: p.label,
                    kind: p.kind,
                    base_url: p.base_url,
                    models: p
                        .models
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    default_model: p.default_model,
                    secret_set: p.secret_hint == "set",
                })
                .collect(),
        },
    )
}

fn provider_notice(key: Option<&str>) -> Option<String> {
    match key? {
        "added" => Some("Provider added.".into()),
        "saved" => Some("Provider saved.".into()),
        "deleted" => Some("Provider deleted.".into()),
        _ => None,
    }
}

pub async fn providers_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OrgQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/providers");
    };
    render_providers(
        &state,
        &ctx,
        &caller,
        q.org.as_deref(),
        provider_notice(q.notice.as_deref()),
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ProviderForm {
    organization_id: Option<String>,
    kind: Option<String>,
    label: Option<String>,
    base_url: Option<String>,
    secret: Option<String>,
    models: Option<String>,
    default_model: Option<String>,
}

async fn provider_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Ctx, Caller, ProviderForm), Response> {
    let ctx = Ctx::load(state, headers).await;
    let form: ProviderForm = parse_form(headers, body).map_err(|r| r.respond(&ctx))?;
    let Some(caller) = ctx.caller.clone() else {
        return Err(to_login("/cloud/providers"));
    };
    Ok((ctx, caller, form))
}

pub async fn provider_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match provider_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = form.organization_id.clone();
    let body = providers::CreateProviderBody {
        organization_id: form.organization_id,
        kind: form.kind,
        label: form.label,
        secret: form.secret,
        base_url: form.base_url,
        credential_type: None,
        models: Some(lines(form.models.as_deref())),
        default_model: form.default_model,
    };
    match providers::create(&state, &caller, body).await {
        Ok(created) => after_post(&format!(
            "/cloud/providers?org={}&notice=added",
            created.provider.organization_id
        )),
        Err(e) if e.status.is_client_error() => {
            render_providers(
                &state,
                &ctx,
                &caller,
                org.as_deref(),
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

/// The provider if the caller may see it (through the JSON list of its organization).
async fn find_provider(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Option<crate::views::ProviderView> {
    let provider = state
        .store
        .provider(&ProviderId(id.to_owned()))
        .await
        .ok()??;
    providers::list(
        state,
        caller,
        OrgListQuery {
            organization_id: Some(provider.organization_id.0.clone()),
            limit: Some("200".into()),
            cursor: None,
        },
    )
    .await
    .ok()?
    .providers
    .into_iter()
    .find(|p| p.id == id)
}

fn edit_page(
    ctx: &Ctx,
    p: &crate::views::ProviderView,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    ctx.page(
        status,
        &ProviderEditPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            error,
            id: p.id.clone(),
            org_id: p.organization_id.clone(),
            kind: p.kind.clone(),
            label: p.label.clone(),
            base_url: p.base_url.clone(),
            models: p
                .models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            default_model: p.default_model.clone().unwrap_or_default(),
            secret_set: p.secret_hint == "set",
        },
    )
}

pub async fn provider_edit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/providers");
    };
    match find_provider(&state, &caller, &id).await {
        Some(p) => edit_page(&ctx, &p, None),
        None => ctx.notice(
            StatusCode::NOT_FOUND,
            "Not found",
            "Provider not found.",
            Some(("/cloud/providers", "Providers")),
        ),
    }
}

pub async fn provider_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match provider_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = providers::UpdateProviderBody {
        label: form.label,
        secret: form.secret.filter(|s| !s.trim().is_empty()),
        base_url: form.base_url,
        credential_type: None,
        models: Some(lines(form.models.as_deref())),
        default_model: form.default_model,
    };
    match providers::update(&state, &caller, id.clone(), body).await {
        Ok(updated) => after_post(&format!(
            "/cloud/providers?org={}&notice=saved",
            updated.provider.organization_id
        )),
        Err(e) if e.status.is_client_error() => match find_provider(&state, &caller, &id).await {
            Some(p) => edit_page(&ctx, &p, Some((e.status, e.message.to_string()))),
            None => ok_or_page(&ctx, e),
        },
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn provider_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (ctx, caller, _form) = match provider_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = find_provider(&state, &caller, &id)
        .await
        .map(|p| p.organization_id);
    match providers::delete(&state, &caller, id).await {
        Ok(_) => after_post(&format!(
            "/cloud/providers?org={}&notice=deleted",
            org.unwrap_or_default()
        )),
        Err(e) => ok_or_page(&ctx, e),
    }
}

// Desktop hand-off --------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct DesktopQuery {
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    redirect_uri: Option<String>,
    nonce: Option<String>,
}

/// With the app's PKCE parameters: continue the authorization (`/desktop/auth` → the OIDC
/// authorization endpoint, which signs in if needed and returns a code to the app). Without:
/// explain how to start from the app.
pub async fn desktop(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DesktopQuery>,
) -> Response {
    if q.code_challenge.as_deref().is_some_and(|c| !c.is_empty()) {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("state", q.state),
            ("code_challenge", q.code_challenge),
            ("code_challenge_method", q.code_challenge_method),
            ("redirect_uri", q.redirect_uri),
            ("nonce", q.nonce),
        ] {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        return web::redirect(&format!("/desktop/auth?{query}"), false, Vec::new());
    }
    let ctx = Ctx::load(&state, &headers).await;
    ctx.page(
        StatusCode::OK,
        &DesktopPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            email: ctx
                .caller
                .as_ref()
                .map(|c| c.user.email.clone())
                .unwrap_or_default(),
        },
    )
}
