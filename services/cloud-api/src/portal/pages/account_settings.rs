//! Account settings pages: change password, change email (and the confirmation link's page),
//! sessions, delete the account. Each form calls the `app::self_service` function its JSON
//! route calls; a refused form shows its page again with the message.

use axum::Router;
use axum::routing::{get, post};

use super::*;
use crate::app::self_service::{self as service, *};

/// The routes of these pages (merged into `portal::router`).
pub fn settings_routes() -> Router<AppState> {
    Router::new()
        .route(PASSWORD, get(password_page).post(password_submit))
        .route(EMAIL, get(email_page).post(email_submit))
        .route(
            CONFIRM_EMAIL_PATH,
            get(confirm_email_page).post(confirm_email_submit),
        )
        .route(SESSIONS, get(sessions_page))
        .route("/cloud/account/sessions/revoke", post(session_revoke))
        .route(
            "/cloud/account/sessions/revoke-others",
            post(sessions_revoke_others),
        )
        .route(DELETE, get(delete_page).post(delete_submit))
        .route("/cloud/account/deleted", get(deleted_page))
}

const PASSWORD: &str = "/cloud/account/password";
const EMAIL: &str = "/cloud/account/email";
const SESSIONS: &str = "/cloud/account/sessions";
const DELETE: &str = "/cloud/account/delete";

/// `?notice=` of a page shown after a form's redirect.
#[derive(Debug, Default, Deserialize)]
pub struct SettingsQuery {
    notice: Option<String>,
}

/// A refused form's status and message (a failure of ours is the error page instead).
fn form_error(ctx: &Ctx, e: DomainError) -> Result<(StatusCode, String), EarlyAnswer> {
    if matches!(e, DomainError::RateLimited(_)) {
        return Ok((StatusCode::TOO_MANY_REQUESTS, TOO_MANY.to_owned()));
    }
    match ApiError::from(e) {
        e if e.status.is_client_error() => Ok((e.status, e.message.to_string())),
        e => Err(ok_or_page(ctx, e).into()),
    }
}

// Password ----------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/account_password.html")]
struct PasswordPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    totp_on: bool,
}

/// Whether the forms must ask for a code too (see `self_service`); when that cannot be told,
/// they ask (the server checks either way).
async fn totp_on(state: &AppState, caller: &Caller) -> bool {
    crate::app::second_factor::required(state, &caller.user.id)
        .await
        .unwrap_or(true)
}

async fn password_form(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (status, error) = status_and_error(error);
    let page = PasswordPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice,
        error,
        totp_on: totp_on(state, caller).await,
    };
    ctx.page(status, &page)
}

pub async fn password_page(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Query<SettingsQuery>,
) -> Page {
    let caller = ctx.caller_or_login(PASSWORD)?;
    let notices = [(
        "changed",
        "Your password was changed. Every other device was signed out.",
    )];
    let notice = notice_of(&notices, q.notice.as_deref());
    Ok(password_form(&state, &ctx, &caller, notice, None).await)
}

#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    current_password: Option<String>,
    new_password: Option<String>,
    totp_code: Option<String>,
}

pub async fn password_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Posted<PasswordForm>,
) -> Page {
    let (ctx, caller, form) = form.signed_in(PASSWORD)?;
    let body = ChangePasswordBody {
        current_password: form.current_password,
        new_password: form.new_password,
        totp_code: form.totp_code,
    };
    match service::change_password(&state, &caller, ip.0, body).await {
        Ok(_) => Ok(after_post(&format!("{PASSWORD}?notice=changed"))),
        Err(e) => {
            let error = Some(form_error(&ctx, e)?);
            Ok(password_form(&state, &ctx, &caller, None, error).await)
        }
    }
}

// Email -------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/account_email.html")]
struct EmailPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    email: String,
    new_email: String,
    totp_on: bool,
}

const EMAIL_SENT: &str = "If this address can be used, a confirmation link is on its way to it. Your address changes when you follow the link.";

pub async fn email_page(State(state): State<AppState>, ctx: Ctx, q: Query<SettingsQuery>) -> Page {
    let caller = ctx.caller_or_login(EMAIL)?;
    let notice = notice_of(&[("sent", EMAIL_SENT)], q.notice.as_deref());
    let page = EmailPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice,
        error: None,
        totp_on: totp_on(&state, &caller).await,
        email: caller.user.email,
        new_email: String::new(),
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailChangeForm {
    new_email: Option<String>,
    current_password: Option<String>,
    totp_code: Option<String>,
}

pub async fn email_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Posted<EmailChangeForm>,
) -> Page {
    let (ctx, caller, form) = form.signed_in(EMAIL)?;
    let typed = form.new_email.clone().unwrap_or_default();
    let body = ChangeEmailBody {
        new_email: form.new_email,
        current_password: form.current_password,
        totp_code: form.totp_code,
    };
    let Err(e) = service::request_email_change(&state, &caller, ip.0, body).await else {
        return Ok(after_post(&format!("{EMAIL}?notice=sent")));
    };
    let (status, error) = form_error(&ctx, e)?;
    let page = EmailPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: None,
        error: Some(error),
        totp_on: totp_on(&state, &caller).await,
        email: caller.user.email,
        new_email: typed,
    };
    Ok(ctx.page(status, &page))
}

#[derive(Template)]
#[template(path = "portal/account_confirm_email.html")]
struct ConfirmEmailPage {
    signed_in: bool,
    csrf_token: String,
    token: String,
}

/// Shows a button: the POST consumes the token, so mail scanners that open links do not.
pub async fn confirm_email_page(ctx: Ctx, Query(q): Query<TokenQuery>) -> Page {
    let Some(token) = q.token.filter(|t| !t.trim().is_empty()) else {
        return Ok(ctx.notice(
            StatusCode::BAD_REQUEST,
            "Invalid link",
            "This confirmation link is incomplete. Open the link from the mail again.",
            None,
        ));
    };
    let page = ConfirmEmailPage {
        signed_in: ctx.signed_in(),
        csrf_token: ctx.csrf.clone(),
        token,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

pub async fn confirm_email_submit(
    State(state): State<AppState>,
    form: Posted<TokenForm>,
) -> Response {
    let Posted(ctx, form) = form;
    let token = form.token.unwrap_or_default();
    let back = if ctx.signed_in() {
        ("/cloud/account", "Back to your account")
    } else {
        ("/cloud/login", "Sign in")
    };
    match service::confirm_email_change(&state, &token).await {
        Ok(new_email) => ctx.notice(
            StatusCode::OK,
            "Email changed",
            &format!("Your account now uses {new_email}. Sign in with this address from now on."),
            Some(back),
        ),
        Err(e @ DomainError::Conflict(_)) => ctx.notice(
            StatusCode::CONFLICT,
            "Address taken",
            &e.to_string(),
            Some(back),
        ),
        Err(e) => refused(
            &ctx,
            e,
            "Link expired",
            "This link is invalid, already used or expired. Ask for a new one from your account settings.",
            Some(back),
        ),
    }
}

// Sessions ----------------------------------------------------------------------------------------

struct SessionRow {
    id: String,
    client_id: String,
    client_label: String,
    auth_time: String,
    last_used_at: String,
    expires_at: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "portal/account_sessions.html")]
struct SessionsPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    sessions: Vec<SessionRow>,
}

/// An RFC 3339 time of the JSON view as the page shows it (`2026-12-04 18:30 UTC`).
fn shown_time(iso: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(iso)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| iso.to_owned())
}

pub async fn sessions_page(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Query<SettingsQuery>,
) -> Page {
    let caller = ctx.caller_or_login(SESSIONS)?;
    let notices = [
        ("revoked", "That session was signed out."),
        ("others", "Every other session was signed out."),
    ];
    let notice = notice_of(&notices, q.notice.as_deref());
    let listed = service::sessions(&state, &caller)
        .await
        .map_err(|e| ok_or_page(&ctx, e))?;
    let sessions = listed
        .sessions
        .into_iter()
        .map(|s| SessionRow {
            id: s.id,
            client_id: s.client_id,
            client_label: s.client_label,
            auth_time: shown_time(&s.auth_time),
            last_used_at: shown_time(&s.last_used_at),
            expires_at: shown_time(&s.expires_at),
            current: s.current,
        })
        .collect();
    let page = SessionsPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice,
        error: None,
        sessions,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionForm {
    session_id: Option<String>,
}

pub async fn session_revoke(State(state): State<AppState>, form: Posted<SessionForm>) -> Page {
    let (ctx, caller, form) = form.signed_in(SESSIONS)?;
    let id = form.session_id.unwrap_or_default();
    if let Err(e) = service::revoke_session(&state, &caller, &id).await {
        let (status, message) = form_error(&ctx, e)?;
        return Ok(ctx.notice(status, "Not possible", &message, Some((SESSIONS, "Back"))));
    }
    if id.trim() == caller.session.family_id.as_str() {
        // This browser's own session: it is signed out now.
        let clear = vec![web::clear_cookie(web::SESSION_COOKIE, ctx.https)];
        return Ok(web::redirect("/cloud/login", true, clear));
    }
    Ok(after_post(&format!("{SESSIONS}?notice=revoked")))
}

pub async fn sessions_revoke_others(State(state): State<AppState>, form: Posted<Empty>) -> Page {
    let (ctx, caller, Empty {}) = form.signed_in(SESSIONS)?;
    service::revoke_other_sessions(&state, &caller)
        .await
        .map_err(|e| ok_or_page(&ctx, e))?;
    Ok(after_post(&format!("{SESSIONS}?notice=others")))
}

// Delete the account ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/account_delete.html")]
struct DeletePage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    email: String,
    /// Organizations deleted with the account (personal, or no other member).
    deleted: Vec<String>,
    /// Organizations the user leaves.
    left: Vec<String>,
    /// Organizations whose last owner the user is, with other members: deletion is refused.
    blocking: Vec<String>,
    totp_on: bool,
}

async fn delete_form(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    error: Option<(StatusCode, String)>,
) -> Page {
    let preview = service::deletion_preview(state, caller)
        .await
        .map_err(|e| ok_or_page(ctx, e))?;
    let (status, error) = status_and_error(error);
    let page = DeletePage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        error,
        email: caller.user.email.clone(),
        deleted: preview.deleted,
        left: preview.left,
        blocking: preview.blocking,
        totp_on: totp_on(state, caller).await,
    };
    Ok(ctx.page(status, &page))
}

pub async fn delete_page(State(state): State<AppState>, ctx: Ctx) -> Page {
    let caller = ctx.caller_or_login(DELETE)?;
    delete_form(&state, &ctx, &caller, None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    email: Option<String>,
    password: Option<String>,
    totp_code: Option<String>,
}

pub async fn delete_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    form: Posted<DeleteForm>,
) -> Page {
    let (ctx, caller, form) = form.signed_in(DELETE)?;
    let body = DeleteAccountBody {
        email: form.email,
        password: form.password,
        totp_code: form.totp_code,
    };
    match service::delete_account(&state, &caller, ip.0, body).await {
        Ok(_) => {
            let clear = vec![web::clear_cookie(web::SESSION_COOKIE, ctx.https)];
            Ok(web::redirect("/cloud/account/deleted", true, clear))
        }
        Err(e) => {
            let error = form_error(&ctx, e)?;
            delete_form(&state, &ctx, &caller, Some(error)).await
        }
    }
}

pub async fn deleted_page(ctx: Ctx) -> Response {
    ctx.notice(
        StatusCode::OK,
        "Account deleted",
        "Your account and its personal organization were deleted, and every device was signed out.",
        Some(("/cloud/signup", "Create a new account")),
    )
}
