//! Passkeys (WebAuthn, through `webauthn-rs`): registration by a signed-in user, sign-in without
//! a password (discoverable credentials: the browser says whose key it is), list and removal.
//!
//! The relying party is the portal: its host is the RP ID and its origin the only one accepted,
//! so a passkey works only on this deployment's pages. Browsers refuse IP addresses as RP IDs:
//! on a server whose web URL is an IP, passkeys are unavailable (and say so).
//!
//! Each ceremony's server half (challenge, expectations) is stored for two minutes and taken
//! once by its answer, so an answer cannot be replayed, on any replica.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::*;

use crate::AppState;
use crate::crypto::new_token;
use crate::domain::*;
use crate::mfa::{Ceremony, PasskeyRecord};

/// How long a ceremony may take (the browser's own timeout is shorter).
const CEREMONY_SECS: i64 = 120;
/// A user's passkeys are listed on one page and offered as exclusions at registration.
pub const MAX_PASSKEYS: usize = 20;
pub const MAX_NAME: usize = 80;

/// The relying party of this deployment, or why there is none.
fn relying_party(state: &AppState) -> DomainResult<Webauthn> {
    let origin = &state.config.web_url;
    let unavailable = || DomainError::Refused {
        code: "passkeys_unavailable",
        message:
            "Passkeys need the portal on a domain name (CHATONS_CLOUD_WEB_URL), not an IP address."
                .into(),
    };
    let host = match origin.host() {
        Some(url::Host::Domain(host)) => host,
        _ => return Err(unavailable()),
    };
    WebauthnBuilder::new(host, origin)
        .and_then(|b| b.rp_name("Chatons Cloud").build())
        .map_err(|_| unavailable())
}

/// The WebAuthn user handle of `user`: the UUID of its id (`user-<uuid>`), or for ids imported
/// from the first system a UUID-sized digest of the id. Stable, and reveals nothing else.
fn user_handle(user: &UserId) -> Uuid {
    user.as_str()
        .strip_prefix("user-")
        .and_then(|u| Uuid::parse_str(u).ok())
        .unwrap_or_else(|| {
            let digest = Sha256::digest(user.as_str().as_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&digest[..16]);
            Uuid::from_bytes(bytes)
        })
}

fn internal(context: &str) -> impl Fn(WebauthnError) -> DomainError + '_ {
    move |e| DomainError::Internal(format!("{context}: {e}"))
}

async fn keep(
    state: &AppState,
    user: Option<&UserId>,
    value: serde_json::Value,
) -> DomainResult<String> {
    let id = new_token("ceremony-");
    let ceremony = Ceremony {
        id: id.clone(),
        user_id: user.cloned(),
        state: value,
        expires_at: now() + chrono::Duration::seconds(CEREMONY_SECS),
    };
    state.factors.put_ceremony(&ceremony).await?;
    Ok(id)
}

async fn take(state: &AppState, id: &str) -> DomainResult<Ceremony> {
    state
        .factors
        .take_ceremony(id, now())
        .await?
        .ok_or(DomainError::InvalidToken(
            "this passkey request expired or was answered already; try again",
        ))
}

fn json<T: serde::Serialize>(value: &T) -> DomainResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| DomainError::Internal(format!("passkey state: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> DomainResult<T> {
    serde_json::from_value(value)
        .map_err(|e| DomainError::Internal(format!("stored passkey state: {e}")))
}

/// Starts registering a passkey for `user`: (ceremony id, options for
/// `navigator.credentials.create`, as JSON).
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn start_registration(
    state: &AppState,
    user: &User,
) -> DomainResult<(String, serde_json::Value)> {
    let rp = relying_party(state)?;
    let existing = state.factors.passkeys(&user.id).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(DomainError::invalid(format!(
            "at most {MAX_PASSKEYS} passkeys; remove one first"
        )));
    }
    let exclude: Vec<CredentialID> = existing
        .iter()
        .filter_map(|p| from_json::<Passkey>(p.credential.clone()).ok())
        .map(|p| p.cred_id().clone())
        .collect();
    let (options, registration) = rp
        .start_passkey_registration(
            user_handle(&user.id),
            &user.email,
            &user.display_name,
            Some(exclude),
        )
        .map_err(internal("starting a passkey registration"))?;
    // Discoverable: the key itself names the account, so signing in needs no email. (The crate
    // leaves this to the authenticator; its state does not depend on it.)
    let mut options = json(&options)?;
    if let Some(selection) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    let id = keep(state, Some(&user.id), json(&registration)?).await?;
    Ok((id, options))
}

/// Finishes a registration with the browser's answer; the new passkey.
#[tracing::instrument(skip_all, fields(user = %user.id))]
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    ceremony: &str,
    name: Option<&str>,
    credential: &RegisterPublicKeyCredential,
) -> DomainResult<PasskeyRecord> {
    let rp = relying_party(state)?;
    let kept = take(state, ceremony).await?;
    if kept.user_id.as_ref() != Some(&user.id) {
        return Err(DomainError::InvalidToken(
            "this passkey request is not yours",
        ));
    }
    let registration: PasskeyRegistration = from_json(kept.state)?;
    let passkey = rp
        .finish_passkey_registration(credential, &registration)
        .map_err(|e| {
            tracing::info!(error = %e, "A passkey registration was refused.");
            DomainError::invalid("the browser's answer did not check out; try again")
        })?;
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(MAX_NAME).collect())
        .unwrap_or_else(|| "Passkey".to_owned());
    let record = PasskeyRecord {
        id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
        user_id: user.id.clone(),
        name,
        credential: json(&passkey)?,
        created_at: now(),
        last_used_at: None,
    };
    match state.factors.add_passkey(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(DomainError::Conflict(
                "this passkey is registered already".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(passkey = %record.id, "Passkey registered.");
    Ok(record)
}

/// Starts a passkey sign-in (throttled per client IP): (ceremony id, options for
/// `navigator.credentials.get`).
#[tracing::instrument(skip_all)]
pub async fn start_sign_in(
    state: &AppState,
    ip: IpAddr,
) -> DomainResult<(String, RequestChallengeResponse)> {
    super::accounts::throttle(state, ip, super::accounts::Attempt::Login, None)?;
    let rp = relying_party(state)?;
    let (options, auth) = rp
        .start_discoverable_authentication()
        .map_err(internal("starting a passkey sign-in"))?;
    let id = keep(state, None, json(&auth)?).await?;
    Ok((id, options))
}

/// Finishes a passkey sign-in: the user whose passkey answered the challenge.
#[tracing::instrument(skip_all)]
pub async fn finish_sign_in(
    state: &AppState,
    ceremony: &str,
    credential: &PublicKeyCredential,
) -> DomainResult<User> {
    let rp = relying_party(state)?;
    let kept = take(state, ceremony).await?;
    if kept.user_id.is_some() {
        return Err(DomainError::InvalidToken(
            "this passkey request is not a sign-in",
        ));
    }
    let auth: DiscoverableAuthentication = from_json(kept.state)?;
    let refused = || DomainError::Unauthorized("this passkey is not registered here");
    let (handle, cred_id) = rp
        .identify_discoverable_authentication(credential)
        .map_err(|_| refused())?;
    let Some(record) = state
        .factors
        .passkey(&URL_SAFE_NO_PAD.encode(cred_id))
        .await?
    else {
        return Err(refused());
    };
    if user_handle(&record.user_id) != handle {
        return Err(refused());
    }
    let mut passkey: Passkey = from_json(record.credential.clone())?;
    // `_v2` takes the crate's `Credential`, which it exposes only behind its
    // `danger-credential-internals` feature; this one checks against exactly this key too.
    #[allow(deprecated)]
    let result = rp
        .finish_discoverable_authentication(credential, auth, &[DiscoverableKey::from(&passkey)])
        .map_err(|e| {
            tracing::info!(error = %e, "A passkey sign-in was refused.");
            refused()
        })?;
    passkey.update_credential(&result);
    state
        .factors
        .touch_passkey(&record.id, &json(&passkey)?, now())
        .await?;
    // A disabled account's sessions would be refused anyway; do not issue one.
    state
        .store
        .user(&record.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(refused)
}

/// The user's passkeys, oldest first.
pub async fn list(state: &AppState, user: &UserId) -> DomainResult<Vec<PasskeyRecord>> {
    Ok(state.factors.passkeys(user).await?)
}

/// Removes one of the user's passkeys; `NotFound` for anyone else's or an unknown id.
#[tracing::instrument(skip_all, fields(user = %user))]
pub async fn remove(state: &AppState, user: &UserId, id: &str) -> DomainResult<()> {
    if state.factors.remove_passkey(user, id).await? {
        tracing::info!(passkey = %id, "Passkey removed.");
        Ok(())
    } else {
        Err(DomainError::NotFound("passkey"))
    }
}
