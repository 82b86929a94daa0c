//! Issuing, checking, rotating and revoking opaque session tokens. Shared by the JSON account
//! API and the OIDC issuer (token endpoint, revocation, end-session) so every token in the
//! system follows one set of rules: random 32-byte values, stored only as SHA-256, access tokens
//! short-lived, refresh tokens rotating with re-use detection per family.

use std::time::Duration;

use crate::crypto::{SecretBox, new_token, token_hash};
use crate::domain::*;
use crate::store::{Rotation, Store};

pub const ACCESS_PREFIX: &str = "access-";
pub const REFRESH_PREFIX: &str = "refresh-";

/// Token lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// Tokens as handed to the client: the only moment the raw values exist.
#[derive(Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub session: Session,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("session", &self.session.id)
            .finish_non_exhaustive()
    }
}

/// `t + d`, capped at ten years so an absurd configured TTL cannot overflow the calendar.
fn add(t: Timestamp, d: Duration) -> Timestamp {
    let cap = chrono::Duration::days(3650);
    let d = chrono::Duration::from_std(d).unwrap_or(cap).min(cap);
    t.checked_add_signed(d).unwrap_or(t)
}

/// What a new session is for.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub user: UserId,
    /// OAuth client the tokens are issued to (`OIDC_CLIENT_ID` for the JSON API).
    pub client_id: String,
    pub scope: String,
    pub active_org: Option<OrgId>,
    /// Whether a refresh token is issued (OIDC: only with `offline_access`).
    pub with_refresh: bool,
    /// When the user last authenticated (OIDC `auth_time`, `max_age`).
    pub auth_time: Timestamp,
    /// How (see [`Session::amr`]).
    pub amr: String,
}

fn build(policy: SessionPolicy, req: &SessionRequest, family: FamilyId) -> IssuedTokens {
    let now = now();
    let access = new_token(ACCESS_PREFIX);
    let refresh = req.with_refresh.then(|| new_token(REFRESH_PREFIX));
    let session = Session {
        id: SessionId::generate(),
        family_id: family,
        user_id: req.user.clone(),
        client_id: req.client_id.clone(),
        scope: req.scope.clone(),
        access_token_hash: token_hash(&access),
        refresh_token_hash: refresh.as_deref().map(token_hash),
        active_organization_id: req.active_org.clone(),
        auth_time: req.auth_time,
        expires_at: add(now, policy.access_ttl),
        refresh_expires_at: refresh.as_ref().map(|_| add(now, policy.refresh_ttl)),
        rotated_at: None,
        revoked_at: None,
        created_at: now,
        amr: req.amr.clone(),
    };
    IssuedTokens {
        access_token: access,
        refresh_token: refresh,
        session,
    }
}

/// Issues a new session family (login, signup, authorization-code exchange).
pub async fn issue_session(
    store: &dyn Store,
    policy: SessionPolicy,
    req: &SessionRequest,
) -> Result<IssuedTokens, StoreError> {
    let issued = build(policy, req, FamilyId::generate());
    store.insert_session(&issued.session).await?;
    Ok(issued)
}

/// What a refresh attempt led to.
#[derive(Debug)]
pub enum Refreshed {
    /// Rotated now, or presented again within the grace window (the same pair again).
    Issued(Box<IssuedTokens>),
    /// Presented again after the window: the family is revoked (someone else has a copy).
    Reused,
    Invalid,
}

/// The successor pair of a refresh token: derived from it under the server key, so the same
/// token always names the same successor (see [`SecretBox::derive_token`]).
fn successor(secrets: &SecretBox, policy: SessionPolicy, refresh_token: &str) -> IssuedTokens {
    let access = secrets.derive_token(ACCESS_PREFIX, "refresh-successor-access", refresh_token);
    let refresh = secrets.derive_token(REFRESH_PREFIX, "refresh-successor-refresh", refresh_token);
    let mut issued = build(
        policy,
        &SessionRequest {
            user: UserId::default(),
            client_id: String::new(),
            scope: String::new(),
            active_org: None,
            with_refresh: true,
            auth_time: now(),
            amr: String::new(),
        },
        FamilyId::default(),
    );
    issued.session.access_token_hash = token_hash(&access);
    issued.session.refresh_token_hash = Some(token_hash(&refresh));
    issued.access_token = access;
    issued.refresh_token = Some(refresh);
    issued
}

/// Rotates a refresh token: the old pair stops refreshing, a new pair of the same family (same
/// user, client, scope, active organization and auth time) is returned. The same token presented
/// again within `grace` of its rotation returns that same pair (the desktop refreshes from
/// several code paths at once, and a client whose answer was lost can retry); later it revokes
/// the whole family.
pub async fn rotate_refresh(
    store: &dyn Store,
    secrets: &SecretBox,
    policy: SessionPolicy,
    refresh_token: &str,
    grace: Duration,
) -> Result<Refreshed, StoreError> {
    let hash = token_hash(refresh_token);
    // The store copies user, client, scope, organization and auth time from the old session.
    let template = successor(secrets, policy, refresh_token);
    let tokens = |session: Box<Session>| {
        Refreshed::Issued(Box::new(IssuedTokens {
            access_token: template.access_token.clone(),
            refresh_token: template.refresh_token.clone(),
            session: *session,
        }))
    };
    match store
        .rotate_refresh(Rotation {
            refresh_hash: &hash,
            next: template.session.clone(),
            now: now(),
            grace,
        })
        .await?
    {
        RotateOutcome::Rotated(session) | RotateOutcome::Repeated(session) => Ok(tokens(session)),
        RotateOutcome::Reused => Ok(Refreshed::Reused),
        RotateOutcome::Invalid => Ok(Refreshed::Invalid),
    }
}

pub async fn revoke_family(store: &dyn Store, family: &FamilyId) -> Result<(), StoreError> {
    store.revoke_family(family, now()).await
}

/// The live session and its user for a presented access token. A disabled user's tokens
/// authenticate nothing (disabling also revokes them; this covers any issued meanwhile).
pub async fn authenticate(
    store: &dyn Store,
    access_token: &str,
) -> Result<Option<(Session, User)>, StoreError> {
    let Some(session) = store
        .session_by_access_hash(&token_hash(access_token), now())
        .await?
    else {
        return Ok(None);
    };
    Ok(store
        .user(&session.user_id)
        .await?
        .filter(|user| user.disabled_at.is_none())
        .map(|user| (session, user)))
}
