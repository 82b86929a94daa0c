//! The authorization page's second step for accounts with two-step sign-in on: after the
//! password, a code (or a recovery code) against the ticket the first step handed out.

use super::*;
use crate::app::second_factor;
use crate::domain::{AMR_PASSWORD_AND_OTP, DomainError, UserId};

#[derive(Template)]
#[template(path = "oidc/two_factor.html")]
struct TwoFactorPage {
    error: Option<String>,
    csrf_token: String,
    ticket: String,
    hidden: Vec<(String, String)>,
}

/// The code form for `user` (a fresh ticket), with `error` above it.
pub(super) fn code_form(
    state: &AppState,
    headers: &HeaderMap,
    params: &AuthorizeParams,
    v: &Validated<'_>,
    user: &UserId,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, set_cookie) = web::csrf_token(headers, https(state));
    let page = TwoFactorPage {
        error: error.map(str::to_owned),
        csrf_token: csrf,
        ticket: second_factor::ticket(state, user),
        hidden: params.hidden(),
    };
    form_page(state, status, &page, v, set_cookie)
}

/// `action=two_factor`: the code checks out → signed in (`pwd otp mfa`); otherwise the form
/// again, or the login form when the ticket is no longer good.
pub(super) async fn second_step(
    state: &AppState,
    ip: &ClientIp,
    headers: &HeaderMap,
    form: &AuthorizeForm,
    v: &Validated<'_>,
) -> Response {
    let ticket = form.ticket.as_deref().unwrap_or("");
    let code = form.code.as_deref().unwrap_or("");
    match second_factor::complete(state, ip.0, ticket, code).await {
        Ok(user) => signed_in(state, headers, form, v, &user, AMR_PASSWORD_AND_OTP).await,
        Err(e @ (DomainError::Unauthorized(_) | DomainError::RateLimited(_))) => {
            let (message, status) = match e {
                DomainError::RateLimited(_) => (
                    "Too many attempts. Wait a minute and try again.",
                    StatusCode::TOO_MANY_REQUESTS,
                ),
                _ => ("Wrong or already used code.", StatusCode::UNAUTHORIZED),
            };
            match second_factor::ticket_user(state, ticket) {
                Some(user) => code_form(
                    state,
                    headers,
                    form.params(),
                    v,
                    &user,
                    Some(message),
                    status,
                ),
                None => login_form(
                    state,
                    headers,
                    form.params(),
                    v,
                    Some(message.into()),
                    String::new(),
                    status,
                ),
            }
        }
        Err(DomainError::InvalidToken(message)) => login_form(
            state,
            headers,
            form.params(),
            v,
            Some(message.into()),
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}
