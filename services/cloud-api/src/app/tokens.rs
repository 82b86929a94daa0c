//! Sessions behind the issuer's endpoints and the JSON API: authenticating an access token,
//! issuing, rotating and revoking tokens (the token rules themselves are in `crate::sessions`).

use crate::AppState;
use crate::crypto::token_hash;
use crate::domain::*;
use crate::sessions::{self, IssuedTokens, Refreshed, SessionPolicy, SessionRequest};

/// The lifetimes of API sessions (the desktop's and the OIDC clients').
pub fn api_policy(state: &AppState) -> SessionPolicy {
    SessionPolicy {
        access_ttl: state.config.access_token_ttl,
        refresh_ttl: state.config.refresh_token_ttl,
    }
}

/// The live session and its user for a presented access token.
pub async fn authenticate(
    state: &AppState,
    access_token: &str,
) -> Result<Option<(Session, User)>, DomainError> {
    Ok(sessions::authenticate(state.store.as_ref(), access_token).await?)
}

/// A new API session (see [`api_policy`]).
pub async fn issue(
    state: &AppState,
    request: &SessionRequest,
) -> Result<IssuedTokens, DomainError> {
    Ok(sessions::issue_session(state.store.as_ref(), api_policy(state), request).await?)
}

/// The user a session or an authorization code was issued to, if it still exists and is not
/// disabled (a disabled user's codes, device grants and refresh tokens redeem nothing).
pub async fn user(state: &AppState, id: &UserId) -> Result<Option<User>, DomainError> {
    Ok(state
        .store
        .user(id)
        .await?
        .filter(|u| u.disabled_at.is_none()))
}

/// The session a refresh token belongs to (rotated or not), before any rotation.
pub async fn refresh_session(
    state: &AppState,
    refresh_token: &str,
) -> Result<Option<Session>, DomainError> {
    Ok(state
        .store
        .session_by_refresh_hash(&token_hash(refresh_token))
        .await?)
}

/// Rotates a refresh token (see [`sessions::rotate_refresh`]).
pub async fn rotate(state: &AppState, refresh_token: &str) -> Result<Refreshed, DomainError> {
    Ok(sessions::rotate_refresh(
        state.store.as_ref(),
        &state.secrets,
        api_policy(state),
        refresh_token,
        state.config.refresh_reuse_grace,
    )
    .await?)
}

/// RFC 7009: revokes an access token (its session) or a refresh token (its whole family), when
/// it was issued to `client`. Unknown tokens and other clients' tokens change nothing.
pub async fn revoke(state: &AppState, client: &str, token: &str) -> Result<(), DomainError> {
    let hash = token_hash(token);
    let now = now();
    if let Some(session) = state.store.session_by_access_hash(&hash, now).await? {
        if session.client_id == client {
            state.store.revoke_session(&session.id, now).await?;
        }
    } else if let Some(session) = state.store.session_by_refresh_hash(&hash).await?
        && session.client_id == client
    {
        sessions::revoke_family(state.store.as_ref(), &session.family_id).await?;
    }
    Ok(())
}
