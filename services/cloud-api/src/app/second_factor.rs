//! TOTP as a second factor: enrolment (a sealed secret, confirmed by a first code, then ten
//! recovery codes shown once), the check at every password sign-in of an enrolled user (portal,
//! authorization page, JSON login), and disabling with a fresh code.
//!
//! Every code attempt, right or wrong, spends a token of the account's and the client IP's
//! buckets; a code is accepted once (its time step is recorded atomically), a recovery code once.
//!
//! Between the password and the code, the browser holds a *ticket*: the user id and an expiry
//! under the server's MAC, so replicas need no shared state and a ticket cannot be forged or
//! stretched. A ticket alone signs nobody in.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use crate::AppState;
use crate::app::accounts::{self, Attempt};
use crate::crypto::token_hash;
use crate::domain::*;
use crate::mfa::{recovery, totp};

/// How long the second step of a sign-in may take.
const TICKET_SECS: i64 = 300;

/// A secret waiting for its first code: what the enrolment page shows.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// Base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://` (the QR code).
    pub uri: String,
}

/// What the security page shows about TOTP.
#[derive(Debug, Clone)]
pub enum TotpStatus {
    Off,
    Pending(Enrolment),
    On { recovery_codes_left: u64 },
}

fn bound_to(user: &UserId) -> String {
    format!("totp:{user}")
}

fn enrolment(state: &AppState, user: &User, secret: &str) -> DomainResult<Enrolment> {
    let raw = totp::base32_decode(secret)
        .ok_or_else(|| DomainError::Internal("a stored TOTP secret is not base32".into()))?;
    Ok(Enrolment {
        secret: secret.to_owned(),
        uri: totp::otpauth_uri(&issuer_label(state), &user.email, &raw),
    })
}

/// The issuer name apps show next to the code: the portal's host.
fn issuer_label(state: &AppState) -> String {
    match state.config.web_url.host_str() {
        Some(host) if host != "127.0.0.1" && host != "localhost" => {
            format!("Chatons Cloud ({host})")
        }
        _ => "Chatons Cloud".to_owned(),
    }
}

/// The secret of `user` in clear (base32), and whether it is confirmed.
async fn secret_of(state: &AppState, user: &UserId) -> DomainResult<Option<(String, bool)>> {
    let Some(record) = state.factors.totp(user).await? else {
        return Ok(None);
    };
    let secret = state
        .secrets
        .open(&record.sealed, &bound_to(user))
        .map_err(|e| DomainError::Internal(format!("opening a TOTP secret: {e}")))?;
    Ok(Some((secret, record.confirmed)))
}

pub async fn status(state: &AppState, user: &User) -> DomainResult<TotpStatus> {
    Ok(match secret_of(state, &user.id).await? {
        None => TotpStatus::Off,
        Some((secret, false)) => TotpStatus::Pending(enrolment(state, user, &secret)?),
        Some(_) => TotpStatus::On {
            recovery_codes_left: state.factors.recovery_codes_left(&user.id).await?,
        },
    })
}

/// Draws a new secret for `user` (replacing one not confirmed yet).
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn begin(state: &AppState, user: &User) -> DomainResult<Enrolment> {
    let secret = totp::base32(&totp::new_secret());
    let sealed = state
        .secrets
        .seal(&secret, &bound_to(&user.id))
        .map_err(|e| DomainError::Internal(format!("sealing a TOTP secret: {e}")))?;
    match state.factors.begin_totp(&user.id, &sealed).await {
        Ok(()) => enrolment(state, user, &secret),
        Err(StoreError::Conflict(_)) => Err(DomainError::Conflict(
            "two-step sign-in is already on; turn it off first".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Finishes enrolment with a code from the new secret; the recovery codes (shown once).
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn confirm(
    state: &AppState,
    user: &User,
    ip: IpAddr,
    code: &str,
) -> DomainResult<Vec<String>> {
    spend_attempt(state, &user.id, ip)?;
    let Some((secret, confirmed)) = secret_of(state, &user.id).await? else {
        return Err(DomainError::invalid("start the setup first"));
    };
    if confirmed {
        return Err(DomainError::Conflict(
            "two-step sign-in is already on".into(),
        ));
    }
    let step = step_of(&secret, code)?;
    let codes: Vec<String> = (0..recovery::COUNT).map(|_| recovery::new_code()).collect();
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| recovery::normalize(c))
        .map(|c| token_hash(&c))
        .collect();
    if !state.factors.confirm_totp(&user.id, step, &hashes).await? {
        return Err(DomainError::Conflict(
            "two-step sign-in is already on".into(),
        ));
    }
    tracing::info!("Two-step sign-in turned on.");
    Ok(codes)
}

/// Turns TOTP off, with a fresh code (or a recovery code) as proof.
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn disable(state: &AppState, user: &User, ip: IpAddr, code: &str) -> DomainResult<()> {
    check(state, user, ip, code).await?;
    state.factors.remove_totp(&user.id).await?;
    tracing::info!("Two-step sign-in turned off.");
    Ok(())
}

/// Whether a password sign-in of `user` needs a code too.
pub async fn required(state: &AppState, user: &UserId) -> DomainResult<bool> {
    Ok(state.factors.totp(user).await?.is_some_and(|r| r.confirmed))
}

/// Checks a code of `user`'s enrolled secret, or one of their recovery codes, and uses it up.
/// `Unauthorized` for a wrong or used code; `RateLimited` beyond the attempts allowed.
pub async fn check(state: &AppState, user: &User, ip: IpAddr, code: &str) -> DomainResult<()> {
    spend_attempt(state, &user.id, ip)?;
    let Some((secret, true)) = secret_of(state, &user.id).await? else {
        return Err(wrong_code());
    };
    if let Some(recovery) = recovery::normalize(code) {
        let used = state
            .factors
            .use_recovery_code(&user.id, &token_hash(&recovery), now())
            .await?;
        if used {
            tracing::info!(user = %user.id, "A recovery code was used.");
        }
        return used.then_some(()).ok_or_else(wrong_code);
    }
    let step = step_of(&secret, code)?;
    if state.factors.use_totp_step(&user.id, step).await? {
        Ok(())
    } else {
        Err(wrong_code())
    }
}

fn wrong_code() -> DomainError {
    DomainError::Unauthorized("wrong or used code")
}

fn step_of(secret: &str, code: &str) -> DomainResult<i64> {
    let raw = totp::base32_decode(secret)
        .ok_or_else(|| DomainError::Internal("a stored TOTP secret is not base32".into()))?;
    totp::matching_step(&raw, code, now()).ok_or_else(wrong_code)
}

fn spend_attempt(state: &AppState, user: &UserId, ip: IpAddr) -> DomainResult<()> {
    accounts::throttle_account(state, ip, Attempt::SecondFactor, Some(user.as_str()))
}

// Tickets ----------------------------------------------------------------------------------------

/// A ticket for `user`'s second step (see the module docs).
pub fn ticket(state: &AppState, user: &UserId) -> String {
    let body = format!("{user}.{}", now().timestamp() + TICKET_SECS);
    let mac = state
        .secrets
        .derive_token("", "second-factor-ticket", &body);
    format!("{body}.{mac}")
}

/// The user a ticket was issued for, if it is ours and unexpired.
pub fn ticket_user(state: &AppState, ticket: &str) -> Option<UserId> {
    let (body, mac) = ticket.rsplit_once('.')?;
    let expected = state.secrets.derive_token("", "second-factor-ticket", body);
    if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
        return None;
    }
    let (user, expires) = body.rsplit_once('.')?;
    (expires.parse::<i64>().ok()? > now().timestamp()).then(|| UserId(user.to_owned()))
}

/// The second step of a sign-in: the ticket's user, once `code` checks out.
#[tracing::instrument(skip_all)]
pub async fn complete(
    state: &AppState,
    ip: IpAddr,
    ticket: &str,
    code: &str,
) -> DomainResult<User> {
    let expired = || DomainError::InvalidToken("the sign-in took too long; start again");
    let user_id = ticket_user(state, ticket).ok_or_else(expired)?;
    let user = state.store.user(&user_id).await?.ok_or_else(expired)?;
    check(state, &user, ip, code).await?;
    Ok(user)
}
