//! Email verification and forgot/reset password pages.

use super::*;

// Email verification ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    pub(super) token: Option<String>,
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
    pub(super) token: Option<String>,
    pub(super) password: Option<String>,
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

pub(super) const FORGOT_SENT: &str = "If this address has an account, a link to choose a new password is on its way. It works once and expires soon.";

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
