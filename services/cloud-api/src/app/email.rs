//! Email verification and forgot/reset password (used by the JSON routes and the portal pages).
//!
//! Tokens are 32 random bytes, stored only as SHA-256, single use, with the configured TTLs
//! (`CHATONS_CLOUD_EMAIL_VERIFICATION_TTL_SECONDS`, `CHATONS_CLOUD_PASSWORD_RESET_TTL_SECONDS`).
//! A reset deletes every reset token of the user and revokes all their sessions (the first
//! system kept both). Forgot-password answers the same, at once, whether or not the account
//! exists: the lookup and the mail happen after the answer.

use std::net::IpAddr;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::crypto::{new_token, token_hash};
use crate::domain::rules;
use crate::domain::*;
use crate::mail::templates;
use crate::store::{EmailToken, EmailTokenKind};
use crate::views::OkBody;

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ForgotBody {
    #[schema(required = true, nullable = false, format = Email, max_length = 254)]
    pub email: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ResetBody {
    /// The token of the reset link.
    #[schema(required = true, nullable = false, max_length = 200)]
    pub token: Option<String>,
    #[schema(required = true, nullable = false, min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct VerifyBody {
    /// The token of the verification link.
    #[schema(required = true, nullable = false, max_length = 200)]
    pub token: Option<String>,
}

fn expiry(ttl: std::time::Duration) -> Timestamp {
    now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1))
}

/// Mails `user` the link to `path` with a new single-use token of `kind`, valid for `ttl`
/// (stored as its hash); `write` makes the mail from the link and the ttl. A token that could
/// not be stored is logged and nothing is sent.
async fn mail_token_link(
    state: &AppState,
    user: &User,
    kind: EmailTokenKind,
    path: &str,
    write: impl FnOnce(&str, std::time::Duration) -> crate::mail::Mail,
) {
    let (ttl, prefix, what) = match kind {
        EmailTokenKind::Verification => (
            state.config.email_verification_ttl,
            "verify-",
            "an email verification",
        ),
        EmailTokenKind::PasswordReset => (
            state.config.password_reset_ttl,
            "reset-",
            "a password reset",
        ),
    };
    let token = new_token(prefix);
    let stored = state
        .store
        .insert_email_token(&EmailToken {
            kind,
            hash: token_hash(&token),
            user: user.id.clone(),
            expires_at: expiry(ttl),
        })
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "Could not store {what} token.");
        return;
    }
    let url = templates::link(&state.config.web_url, path, &token);
    state.mailer.send(write(&url, ttl)).await;
}

/// Creates a verification token for `user` and queues the mail with its link. Failures are
/// logged: signup never fails because of mail.
pub async fn send_verification(state: &AppState, user: &User) {
    mail_token_link(
        state,
        user,
        EmailTokenKind::Verification,
        "/cloud/verify-email",
        |url, ttl| {
            let hours = (ttl.as_secs() / 3600).max(1);
            templates::verification(&user.email, &user.display_name, url, hours)
        },
    )
    .await;
}

/// Someone signed up with an address that already has an account: tell its owner (the page
/// answers exactly as for a new account).
pub async fn send_already_registered(state: &AppState, user: &User) {
    let login = templates::page_url(&state.config.web_url, "/cloud/login");
    let forgot = templates::page_url(&state.config.web_url, "/cloud/forgot-password");
    state
        .mailer
        .send(templates::already_registered(
            &user.email,
            &user.display_name,
            &login,
            &forgot,
        ))
        .await;
}

/// Queues a reset mail when `email` has an account; does nothing otherwise.
pub async fn forgot_password(state: &AppState, email: &str) {
    let email = crate::domain::rules::normalize_email(email)
        .unwrap_or_else(|_| email.trim().to_lowercase());
    let user = match state.store.user_by_email(&email).await {
        Ok(Some(u)) => u,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "Forgot-password lookup failed.");
            return;
        }
    };
    let path = "/cloud/reset-password";
    mail_token_link(
        state,
        &user,
        EmailTokenKind::PasswordReset,
        path,
        |url, ttl| {
            let minutes = (ttl.as_secs() / 60).max(1);
            templates::password_reset(&user.email, &user.display_name, url, minutes)
        },
    )
    .await;
}

/// Starts [`forgot_password`] in the background so the caller answers in the same time whether
/// or not the account exists.
fn forgot_password_detached(state: &AppState, email: String) {
    let state = state.clone();
    tokio::spawn(async move { forgot_password(&state, &email).await });
}

/// Sets a new password with a reset token: single use, revokes every session and every other
/// reset token of the user.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    password: &str,
) -> Result<User, DomainError> {
    rules::validate_password(password)?;
    let hash = state
        .hasher
        .hash(password)
        .await
        .map_err(DomainError::from)?;
    let user = state
        .store
        .reset_password_with_token(&token_hash(token), &hash, now())
        .await?
        .ok_or(DomainError::InvalidToken(
            "Invalid or expired password reset token",
        ))?;
    let user = state
        .store
        .user(&user)
        .await?
        .ok_or(DomainError::InvalidToken(
            "Invalid or expired password reset token",
        ))?;
    state
        .mailer
        .send(templates::password_changed(&user.email, &user.display_name))
        .await;
    Ok(user)
}

/// Consumes a verification token and marks the address verified.
pub async fn verify_email(state: &AppState, token: &str) -> Result<UserId, DomainError> {
    state
        .store
        .verify_email_token(&token_hash(token), now())
        .await?
        .ok_or(DomainError::InvalidToken(
            "Invalid or expired email verification token",
        ))
}

/// Per-IP and per-address throttle for forgot-password (`forgot:` keys).
fn throttle_forgot(state: &AppState, ip: IpAddr, email: &str) -> Result<(), DomainError> {
    state
        .limiters
        .per_ip
        .check(&format!("forgot:{ip}"))
        .map_err(|w| DomainError::RateLimited(w.as_secs().max(1)))?;
    state
        .limiters
        .per_account
        .check(&format!("forgot:{}", email.trim().to_lowercase()))
        .map_err(|w| DomainError::RateLimited(w.as_secs().max(1)))?;
    Ok(())
}

/// `{email}` → always `{"ok": true}` (after the throttle), whether or not the address has an
/// account: the lookup and the mail happen after the answer.
pub async fn forgot(state: &AppState, ip: IpAddr, body: ForgotBody) -> Result<OkBody, DomainError> {
    let email = rules::trimmed(body.email.as_deref())
        .ok_or_else(|| DomainError::invalid("email is required"))?;
    throttle_forgot(state, ip, &email)?;
    forgot_password_detached(state, email);
    Ok(OkBody { ok: true })
}

/// `{token, password}` → [`reset_password`].
pub async fn reset(state: &AppState, body: ResetBody) -> Result<OkBody, DomainError> {
    let missing = || DomainError::invalid("token and password are required");
    let token = rules::trimmed(body.token.as_deref()).ok_or_else(missing)?;
    let password = body.password.as_deref().filter(|p| !p.is_empty());
    reset_password(state, &token, password.ok_or_else(missing)?).await?;
    Ok(OkBody { ok: true })
}

/// `{token}` → [`verify_email`].
pub async fn verify(state: &AppState, body: VerifyBody) -> Result<OkBody, DomainError> {
    let token = rules::trimmed(body.token.as_deref())
        .ok_or_else(|| DomainError::invalid("token is required"))?;
    verify_email(state, &token).await?;
    Ok(OkBody { ok: true })
}
