//! Signup, login and logout pages.

use super::*;

// Signup ------------------------------------------------------------------------------------------

pub async fn signup_page(ctx: Ctx, ReturnTo(return_to): ReturnTo) -> Response {
    let filled = Filled::default();
    signup_form(&ctx, StatusCode::OK, &return_to, &filled, None)
}

/// What a refused form keeps: the email and the name typed.
#[derive(Default)]
struct Filled {
    email: String,
    display_name: String,
}

/// The signup form (going back to `return_to` afterwards), with `error` above it.
fn signup_form(
    ctx: &Ctx,
    status: StatusCode,
    return_to: &str,
    filled: &Filled,
    error: Option<String>,
) -> Response {
    ctx.page(
        status,
        &SignupPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error,
            return_query: return_query(return_to),
            return_to: return_to.to_owned(),
            email: filled.email.clone(),
            display_name: filled.display_name.clone(),
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
    form: Posted<SignupForm>,
) -> Response {
    signup_with_form(&state, &ip, form, false).await
}

/// The signup form. The portal's asks to check the inbox and never tells whether the address
/// had an account; the first system's `POST /v1/web/signup` form (`legacy`) signs the new
/// account in and redirects (302) to `return_to`, and says 409 for a taken address as the JSON
/// route does.
pub async fn signup_with_form(
    state: &AppState,
    ip: &ClientIp,
    Posted(ctx, form): Posted<SignupForm>,
    legacy: bool,
) -> Response {
    let return_to = safe_return(state, form.return_to.as_deref()).unwrap_or_default();
    let email = form.email.clone().unwrap_or_default();
    let filled = Filled {
        email: email.trim().to_owned(),
        display_name: form.display_name.clone().unwrap_or_default(),
    };
    let retry = |message: String, status: StatusCode| {
        signup_form(&ctx, status, &return_to, &filled, Some(message))
    };
    if crate::app::accounts::throttle(state, ip.0, Attempt::Signup, Some(&email)).is_err() {
        return retry(TOO_MANY.into(), StatusCode::TOO_MANY_REQUESTS);
    }
    let hides = state.config.signup_hides_accounts();
    let new = crate::app::accounts::SignupInput {
        email: form.email.as_deref(),
        display_name: form.display_name.as_deref(),
        password: form.password.as_deref(),
    };
    let outcome = if legacy && !hides {
        // A development server without SMTP: the first system's form signs in at once and
        // says when the address is taken.
        crate::app::accounts::register(state, new)
            .await
            .map(|r| crate::app::accounts::Signup::Created(Box::new(r)))
    } else {
        crate::app::accounts::sign_up(state, new).await
    };
    match outcome.map_err(ApiError::from) {
        Ok(crate::app::accounts::Signup::Created(registered)) if legacy && !hides => {
            return start_session(
                state,
                &ctx,
                &registered.user,
                return_to,
                StatusCode::FOUND,
                AMR_PASSWORD,
            )
            .await;
        }
        Ok(_) => {}
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
    } else if state.config.dev_auto_verify_emails {
        "Your account is ready (development server: CHATONS_DEV_AUTO_VERIFY_EMAILS counts addresses as confirmed). You can sign in now.".to_owned()
    } else {
        "This server sends no mail: the confirmation link was written to its log. Open it, then sign in.".to_owned()
    };
    ctx.notice(
        StatusCode::OK,
        "Check your email",
        &message,
        Some((&login, "Sign in")),
    )
}

// Login / logout ----------------------------------------------------------------------------------

pub async fn login_page(ctx: Ctx, ReturnTo(return_to): ReturnTo) -> Response {
    login_form(&ctx, StatusCode::OK, &return_to, "", None)
}

/// The login form (going back to `return_to` afterwards) for `email`, with `error` above it.
fn login_form(
    ctx: &Ctx,
    status: StatusCode,
    return_to: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    ctx.page(
        status,
        &LoginPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            notice: None,
            error: error.map(str::to_owned),
            return_query: return_query(return_to),
            return_to: return_to.to_owned(),
            email: email.to_owned(),
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
    form: Posted<LoginForm>,
) -> Response {
    login_with_form(&state, &ip, form, StatusCode::SEE_OTHER).await
}

/// The login form (the portal's, or the first system's `POST /v1/web/login` form): CSRF-checked,
/// throttled; success starts a portal session and redirects with `redirect` (303 for the
/// portal, 302 as the first system answered).
pub async fn login_with_form(
    state: &AppState,
    ip: &ClientIp,
    Posted(ctx, form): Posted<LoginForm>,
    redirect: StatusCode,
) -> Response {
    let return_to = safe_return(state, form.return_to.as_deref()).unwrap_or_default();
    let email = form.email.as_deref().unwrap_or("").trim().to_lowercase();
    let password = form.password.as_deref().unwrap_or("");
    let retry = |message: &str, status: StatusCode| {
        login_form(&ctx, status, &return_to, &email, Some(message))
    };
    if email.is_empty() || password.is_empty() || password.len() > 1024 {
        return retry("Email and password are required.", StatusCode::BAD_REQUEST);
    }
    let user =
        match crate::app::accounts::sign_in_with_password(state, ip.0, &email, password).await {
            Ok(u) => u,
            Err(DomainError::RateLimited(_)) => {
                return retry(TOO_MANY, StatusCode::TOO_MANY_REQUESTS);
            }
            Err(e) => return ok_or_page(&ctx, e),
        };
    let Some(user) = user else {
        return retry("Invalid email or password.", StatusCode::UNAUTHORIZED);
    };
    match crate::app::second_factor::required(state, &user.id).await {
        Ok(true) => return code_form(state, &ctx, &user.id, &return_to, None, StatusCode::OK),
        Ok(false) => {}
        Err(e) => return ok_or_page(&ctx, e),
    }
    start_session(state, &ctx, &user, return_to, redirect, AMR_PASSWORD).await
}

#[derive(Template)]
#[template(path = "portal/two_factor.html")]
struct TwoFactorPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    ticket: String,
    return_to: String,
}

/// The second step of a sign-in with two-step sign-in on (a fresh ticket for `user`).
fn code_form(
    state: &AppState,
    ctx: &Ctx,
    user: &UserId,
    return_to: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    ctx.page(
        status,
        &TwoFactorPage {
            signed_in: ctx.signed_in(),
            csrf_token: ctx.csrf.clone(),
            error: error.map(str::to_owned),
            ticket: crate::app::second_factor::ticket(state, user),
            return_to: return_to.to_owned(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct TwoFactorForm {
    ticket: Option<String>,
    code: Option<String>,
    return_to: Option<String>,
}

/// `POST /cloud/login/two-factor`: the code checks out → signed in (`pwd otp mfa`).
pub async fn two_factor_submit(
    State(state): State<AppState>,
    ip: ClientIp,
    Posted(ctx, form): Posted<TwoFactorForm>,
) -> Response {
    let return_to = safe_return(&state, form.return_to.as_deref()).unwrap_or_default();
    let ticket = form.ticket.as_deref().unwrap_or("");
    let code = form.code.as_deref().unwrap_or("");
    let again = |message: &str, status: StatusCode| match crate::app::second_factor::ticket_user(
        &state, ticket,
    ) {
        Some(user) => code_form(&state, &ctx, &user, &return_to, Some(message), status),
        None => login_form(&ctx, status, &return_to, "", Some(message)),
    };
    match crate::app::second_factor::complete(&state, ip.0, ticket, code).await {
        Ok(user) => {
            let redirect = StatusCode::SEE_OTHER;
            start_session(
                &state,
                &ctx,
                &user,
                return_to,
                redirect,
                AMR_PASSWORD_AND_OTP,
            )
            .await
        }
        Err(DomainError::Unauthorized(_)) => {
            again("Wrong or already used code.", StatusCode::UNAUTHORIZED)
        }
        Err(DomainError::RateLimited(_)) => again(TOO_MANY, StatusCode::TOO_MANY_REQUESTS),
        Err(DomainError::InvalidToken(message)) => {
            login_form(&ctx, StatusCode::BAD_REQUEST, &return_to, "", Some(message))
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

/// Starts a portal session for `user` (ending this browser's previous one) and redirects to
/// `return_to` (default: the account page) with the session cookie.
pub(super) async fn start_session(
    state: &AppState,
    ctx: &Ctx,
    user: &User,
    return_to: String,
    redirect: StatusCode,
    amr: &str,
) -> Response {
    let ttl = state.config.portal_session_ttl;
    let previous = ctx.caller.as_ref().map(|c| &c.session.family_id);
    let issued = match accounts::start_portal_session(state, &user.id, previous, amr).await {
        Ok(i) => i,
        Err(e) => return ok_or_page(ctx, e),
    };
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

pub async fn logout(State(state): State<AppState>, form: Posted<Empty>) -> Response {
    let Posted(ctx, Empty {}) = form;
    if let Some(caller) = &ctx.caller {
        if let Err(e) = accounts::sign_out(&state, &caller.session.family_id).await {
            return ok_or_page(&ctx, e);
        }
    }
    web::redirect(
        "/cloud/login",
        true,
        vec![web::clear_cookie(web::SESSION_COOKIE, ctx.https)],
    )
}
