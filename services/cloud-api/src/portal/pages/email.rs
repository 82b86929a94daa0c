//! Email verification and forgot/reset password pages.

use super::*;

// Email verification ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    pub(super) token: Option<String>,
}

/// The token of a mailed link, or the notice (400, `message`, `link`) that the link is
/// incomplete.
fn link_token(
    ctx: &Ctx,
    token: Option<String>,
    message: &str,
    link: Option<(&str, &str)>,
) -> Result<String, EarlyAnswer> {
    token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        ctx.notice(StatusCode::BAD_REQUEST, "Invalid link", message, link)
            .into()
    })
}

/// Shows a button (the token is consumed by the POST, so mail scanners that open links do not
/// burn it).
pub async fn verify_page(ctx: Ctx, Query(q): Query<TokenQuery>) -> Page {
    let incomplete = "This confirmation link is incomplete. Open the link from the mail again.";
    let token = link_token(&ctx, q.token, incomplete, None)?;
    Ok(ctx.page(
        StatusCode::OK,
        &VerifyPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            token,
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    pub(super) token: Option<String>,
    pub(super) password: Option<String>,
}

pub async fn verify_submit(State(state): State<AppState>, form: Posted<TokenForm>) -> Response {
    let Posted(ctx, form) = form;
    let token = form.token.as_deref().unwrap_or("").trim();
    match crate::app::email::verify_email(&state, token).await {
        Ok(_) if ctx.signed_in() => after_post("/cloud/account?notice=verified"),
        Ok(_) => ctx.notice(
            StatusCode::OK,
            "Email confirmed",
            "Your email is confirmed. You can sign in.",
            Some(("/cloud/login", "Sign in")),
        ),
        Err(e) => refused(
            &ctx,
            e,
            "Link expired",
            "This confirmation link is invalid, already used or expired. Sign in and ask for a new one.",
            Some(("/cloud/login", "Sign in")),
        ),
    }
}

/// A form with no field but its CSRF token.
#[derive(Default, Deserialize)]
pub struct Empty {}

pub async fn verify_resend(State(state): State<AppState>, form: Posted<Empty>) -> Page {
    let back = "/cloud/account";
    let (ctx, caller, Empty {}) = form.signed_in(back)?;
    let key = format!("resend:{}", caller.user.id);
    if state.limiters.per_account.check(&key).is_err() {
        return Ok(ctx.notice(
            StatusCode::TOO_MANY_REQUESTS,
            "Slow down",
            TOO_MANY,
            Some((back, "Back")),
        ));
    }
    if caller.user.email_verified_at.is_none() {
        crate::app::email::send_verification(&state, &caller.user).await;
    }
    Ok(after_post("/cloud/account?notice=resent"))
}

// Forgot / reset password -------------------------------------------------------------------------

/// The forgot-password form, with `error` above it.
fn forgot_form(ctx: &Ctx, status: StatusCode, error: Option<&str>) -> Response {
    ctx.page(
        status,
        &ForgotPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error: error.map(str::to_owned),
        },
    )
}

pub async fn forgot_page(ctx: Ctx) -> Response {
    forgot_form(&ctx, StatusCode::OK, None)
}

#[derive(Debug, Default, Deserialize)]
pub struct EmailForm {
    email: Option<String>,
}

pub(super) const FORGOT_SENT: &str = "If this address has an account, a link to choose a new password is on its way. It works once and expires soon.";

pub async fn forgot_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    Posted(ctx, form): Posted<EmailForm>,
) -> Response {
    let body = crate::app::email::ForgotBody { email: form.email };
    match crate::app::email::forgot(&state, ip.0, body).await {
        Ok(_) => {}
        Err(DomainError::RateLimited(_)) => {
            return forgot_form(&ctx, StatusCode::TOO_MANY_REQUESTS, Some(TOO_MANY));
        }
        Err(_) => return forgot_form(&ctx, StatusCode::BAD_REQUEST, Some("Enter your email.")),
    }
    ctx.notice(
        StatusCode::OK,
        "Check your email",
        FORGOT_SENT,
        Some(("/cloud/login", "Back to sign in")),
    )
}

const FORGOT_LINK: Option<(&str, &str)> = Some(("/cloud/forgot-password", "Forgot password"));

/// The reset-password form for `token`, with `error` above it.
fn reset_form(ctx: &Ctx, status: StatusCode, token: String, error: Option<String>) -> Response {
    ctx.page(
        status,
        &ResetPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error,
            token,
        },
    )
}

pub async fn reset_page(ctx: Ctx, Query(q): Query<TokenQuery>) -> Page {
    let incomplete = "This reset link is incomplete. Ask for a new one.";
    let token = link_token(&ctx, q.token, incomplete, FORGOT_LINK)?;
    Ok(reset_form(&ctx, StatusCode::OK, token, None))
}

pub async fn reset_submit(State(state): State<AppState>, form: Posted<TokenForm>) -> Response {
    let Posted(ctx, form) = form;
    let token = form.token.unwrap_or_default().trim().to_owned();
    let password = form.password.unwrap_or_default();
    match crate::app::email::reset_password(&state, &token, &password)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => web::redirect(
            "/cloud/reset-password/done",
            true,
            vec![web::clear_cookie(web::SESSION_COOKIE, ctx.https)],
        ),
        Err(e) if e.code == "invalid_token" => ctx.notice(
            StatusCode::BAD_REQUEST,
            "Link expired",
            "This reset link is invalid, already used or expired. Ask for a new one.",
            FORGOT_LINK,
        ),
        Err(e) if e.status.is_client_error() => {
            reset_form(&ctx, e.status, token, Some(e.message.to_string()))
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn reset_done(ctx: Ctx) -> Response {
    ctx.notice(
        StatusCode::OK,
        "Password changed",
        "Your password was changed and every device was signed out. Sign in with the new password.",
        Some(("/cloud/login", "Sign in")),
    )
}
