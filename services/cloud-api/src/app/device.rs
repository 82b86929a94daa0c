//! Device login (RFC 8628): a client without a browser of its own starts a grant, the user
//! approves or denies its short code on the portal, and the device's polls end in tokens.
//!
//! User codes are short enough to type, so every lookup and decision spends a token of the
//! caller's per-account and per-IP buckets: guessing someone's live code is bounded by those,
//! not by the code's length alone.

use std::net::IpAddr;

use crate::AppState;
use crate::crypto::{new_token, token_hash};
use crate::domain::*;
use crate::issuer::clients::Client;
use crate::issuer::device::{
    Decision, DeviceGrant, PollOutcome, display_user_code, new_user_code, normalize_user_code,
};
use crate::sessions::{IssuedTokens, SessionRequest};
use crate::web::caller::Caller;

use super::tokens;

/// What a client asks for when it names no scope: sign-in, profile, and staying signed in.
pub const DEFAULT_SCOPE: &str = "openid profile email offline_access";

/// A started grant, as the device authorization response carries it (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub struct Started {
    pub device_code: String,
    /// Grouped for reading out (`BCDF-GHJK`).
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// Why a device grant cannot go on, in RFC 8628 §3.5 terms.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("this client may not use the device authorization grant")]
    UnauthorizedClient,
    #[error("the user has not answered yet")]
    AuthorizationPending,
    #[error("polling too often; wait the interval, now {0} s")]
    SlowDown(i32),
    #[error("the user denied the request")]
    AccessDenied,
    #[error("the device code expired; start again")]
    ExpiredToken,
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        Self::Domain(e.into())
    }
}

/// Starts a grant for `client` with `scope` (default [`DEFAULT_SCOPE`]).
#[tracing::instrument(skip_all, fields(client = %client.id))]
pub async fn start(
    state: &AppState,
    client: &Client,
    scope: Option<&str>,
) -> Result<Started, DeviceError> {
    if !client.device_grant {
        return Err(DeviceError::UnauthorizedClient);
    }
    let scope = scope
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SCOPE);
    if scope.len() > 512 || scope.chars().any(char::is_control) {
        return Err(DomainError::invalid("scope is too long or malformed").into());
    }
    let scope = scope.split_whitespace().collect::<Vec<_>>().join(" ");
    let ttl = state.config.device_code_ttl;
    let interval = state.config.device_poll_interval;
    // A user code colliding with a live one is drawn again; three collisions in a row would
    // mean the table holds billions of live grants.
    for _ in 0..3 {
        let device_code = new_token("device-");
        let user_code = new_user_code();
        let grant = DeviceGrant {
            device_code_hash: token_hash(&device_code),
            user_code_hash: token_hash(&user_code),
            client_id: client.id.clone(),
            scope: scope.clone(),
            interval_secs: interval as i32,
            state: DeviceGrantState::Pending,
            user_id: None,
            auth_time: None,
            amr: None,
            last_polled_at: None,
            expires_at: now() + chrono::Duration::seconds(ttl.as_secs() as i64),
        };
        match state.oidc.devices.insert(&grant).await {
            Ok(()) => {
                let user_code = display_user_code(&user_code);
                let page = state
                    .config
                    .web_url
                    .join("/cloud/device")
                    .map_err(|e| DomainError::Internal(e.to_string()))?;
                let mut complete = page.clone();
                complete
                    .query_pairs_mut()
                    .append_pair("user_code", &user_code);
                return Ok(Started {
                    device_code,
                    user_code,
                    verification_uri: page.to_string(),
                    verification_uri_complete: complete.to_string(),
                    expires_in: ttl.as_secs(),
                    interval,
                });
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Internal("no free user code after three draws".into()).into())
}

/// A pending grant as the verification page shows it.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub user_code: String,
    pub client_label: String,
    pub scopes: Vec<String>,
    pub minutes_left: i64,
}

/// The pending grant `typed` names, for the signed-in `caller` (rate limited).
#[tracing::instrument(skip_all)]
pub async fn pending(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    typed: &str,
) -> DomainResult<Option<PendingLogin>> {
    spend_attempt(state, caller, ip)?;
    let Some(code) = normalize_user_code(typed) else {
        return Ok(None);
    };
    let now = now();
    let Some(grant) = state
        .oidc
        .devices
        .pending_by_user_code(&token_hash(&code), now)
        .await?
    else {
        return Ok(None);
    };
    let client_label = state
        .oidc
        .client(&grant.client_id)
        .map(|c| c.label.clone())
        .unwrap_or_else(|| grant.client_id.clone());
    Ok(Some(PendingLogin {
        user_code: display_user_code(&code),
        client_label,
        scopes: grant.scope.split_whitespace().map(str::to_owned).collect(),
        minutes_left: ((grant.expires_at - now).num_seconds() + 59) / 60,
    }))
}

/// The signed-in `caller` approves (or denies) the grant `typed` names; `NotFound` when no
/// pending grant has that code (rate limited like [`pending`]).
#[tracing::instrument(skip_all, fields(approve))]
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    typed: &str,
    approve: bool,
) -> DomainResult<()> {
    spend_attempt(state, caller, ip)?;
    let code = normalize_user_code(typed).ok_or(DomainError::NotFound("device login"))?;
    let decision = Decision {
        user: caller.user.id.clone(),
        auth_time: caller.session.auth_time,
        amr: caller.session.amr.clone(),
        approve,
    };
    if state
        .oidc
        .devices
        .decide(&token_hash(&code), &decision, now())
        .await?
    {
        Ok(())
    } else {
        Err(DomainError::NotFound("device login"))
    }
}

/// One attempt of the caller's and the client IP's device-code buckets.
fn spend_attempt(state: &AppState, caller: &Caller, ip: IpAddr) -> DomainResult<()> {
    let user = Some(caller.user.id.as_str());
    super::accounts::throttle_account(state, ip, super::accounts::Attempt::DeviceCode, user)
}

/// The device's poll with `device_code`: tokens once the user approved, else why not yet.
#[tracing::instrument(skip_all, fields(client = %client.id))]
pub async fn redeem(
    state: &AppState,
    client: &Client,
    device_code: &str,
) -> Result<(User, IssuedTokens), DeviceError> {
    if !client.device_grant {
        return Err(DeviceError::UnauthorizedClient);
    }
    let now = now();
    let outcome = state
        .oidc
        .devices
        .poll(&token_hash(device_code), &client.id, now)
        .await?;
    let grant = match outcome {
        PollOutcome::Approved(grant) => grant,
        PollOutcome::Pending => return Err(DeviceError::AuthorizationPending),
        PollOutcome::SlowDown(interval) => return Err(DeviceError::SlowDown(interval)),
        PollOutcome::Denied => return Err(DeviceError::AccessDenied),
        PollOutcome::Expired => return Err(DeviceError::ExpiredToken),
        PollOutcome::Unknown => return Err(DeviceError::InvalidGrant("unknown device code")),
        PollOutcome::AlreadyRedeemed => {
            return Err(DeviceError::InvalidGrant("device code already used"));
        }
    };
    let Some(user) = grant.user_id.as_ref().map(|id| tokens::user(state, id)) else {
        return Err(DeviceError::InvalidGrant("the grant names no user"));
    };
    let Some(user) = user.await? else {
        return Err(DeviceError::InvalidGrant("the user no longer exists"));
    };
    let request = SessionRequest {
        user: user.id.clone(),
        client_id: client.id.clone(),
        with_refresh: grant
            .scope
            .split_whitespace()
            .any(|s| s == "offline_access"),
        scope: grant.scope,
        active_org: None,
        auth_time: grant.auth_time.unwrap_or(now),
        amr: grant.amr.unwrap_or_else(|| AMR_PASSWORD.to_owned()),
    };
    let issued = tokens::issue(state, &request).await?;
    Ok((user, issued))
}
