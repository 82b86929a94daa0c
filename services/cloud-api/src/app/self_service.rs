//! Account self-service, shared by the portal's settings pages and the JSON routes: change the
//! password (every other session ends), change the address (confirmed from the new address),
//! list and end sessions (browser, desktop and command line alike), delete the account.
//!
//! Every change that a stolen session could abuse asks for the current password again, and that
//! check is throttled as a login attempt (same buckets as `app::accounts`), so a session is no
//! faster a password oracle than the login page. A wrong current password is `403 forbidden`,
//! not `401`: the caller's token is fine, and clients sign out on a 401.

use std::net::IpAddr;

use cloud_common::time::iso;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::accounts::{self, Attempt};
use crate::app::second_factor;
use crate::crypto::{new_token, token_hash};
use crate::domain::rules;
use crate::domain::*;
use crate::issuer::PORTAL_CLIENT;
use crate::issuer::clients::CLI_CLIENT;
use crate::mail::templates;
use crate::store::{AccountDeletion, EmailChange, EmailChangeOutcome, LiveSession, PasswordChange};
use crate::views::OkBody;
use crate::web::caller::Caller;

/// The sessions page shows at most this many (newest first); older ones can still be ended
/// with "sign out everywhere else".
pub const MAX_LISTED_SESSIONS: usize = 100;

/// Where a change-of-address link leads (a page with a button: the POST consumes the token,
/// so mail scanners that open links do not).
pub const CONFIRM_EMAIL_PATH: &str = "/cloud/account/confirm-email";

const WRONG_PASSWORD: &str = "The current password is not correct.";
const CODE_REQUIRED: &str =
    "Two-step sign-in is on: enter a code from your authenticator app too (totpCode).";
const WRONG_CODE: &str = "The code is wrong or was used already.";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordBody {
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub current_password: Option<String>,
    #[schema(required = true, nullable = false, min_length = 8, max_length = 1024)]
    pub new_password: Option<String>,
    /// A code of the authenticator app (or a recovery code): required when two-step sign-in is
    /// on, like at sign-in.
    #[schema(nullable = false, max_length = 64)]
    pub totp_code: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEmailBody {
    #[schema(required = true, nullable = false, format = Email, max_length = 254)]
    pub new_email: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub current_password: Option<String>,
    /// A code of the authenticator app (or a recovery code): required when two-step sign-in is
    /// on, like at sign-in.
    #[schema(nullable = false, max_length = 64)]
    pub totp_code: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ConfirmEmailBody {
    /// The token of the change-of-address link.
    #[schema(required = true, nullable = false, max_length = 200)]
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeleteAccountBody {
    /// The account's email address, typed again as confirmation.
    #[schema(required = true, nullable = false, format = Email, max_length = 254)]
    pub email: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub password: Option<String>,
    /// A code of the authenticator app (or a recovery code): required when two-step sign-in is
    /// on, like at sign-in.
    #[schema(nullable = false, max_length = 64)]
    pub totp_code: Option<String>,
}

/// One signed-in session (a sign-in and the tokens refreshed from it).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionItem {
    /// What `DELETE /v1/account/sessions/{id}` takes.
    pub id: String,
    pub client_id: String,
    pub client_label: String,
    /// `portal`, `desktop`, `cli` or `other`.
    pub kind: String,
    pub created_at: String,
    pub auth_time: String,
    pub last_used_at: String,
    pub expires_at: String,
    /// The session this request was made with.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsResponse {
    pub sessions: Vec<SessionItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedResponse {
    pub ok: bool,
    /// How many sessions ended.
    pub revoked: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedResponse {
    pub ok: bool,
    /// The organizations deleted with the account (the personal one, and any the user was the
    /// only member of).
    pub deleted_organizations: Vec<String>,
}

/// A required text field, or 400 naming `what`.
fn required(value: Option<&str>, what: &str) -> DomainResult<String> {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| DomainError::invalid(format!("{what} required")))
}

/// The caller's current password, throttled as a login attempt of their address, and, when
/// two-step sign-in is on, a fresh code too: what signing in takes, so a stolen session that
/// learnt the password still cannot take the account over. The password hash.
async fn check_password(
    state: &AppState,
    ip: IpAddr,
    user: &User,
    password: &str,
    code: Option<&str>,
) -> DomainResult<String> {
    accounts::throttle(state, ip, Attempt::Login, Some(&user.email))?;
    let stored = user.password_hash.clone();
    let ok = state.hasher.verify(password, stored.as_deref()).await?;
    let Some(hash) = stored.filter(|_| ok) else {
        return Err(DomainError::Forbidden(WRONG_PASSWORD));
    };
    if second_factor::required(state, &user.id).await? {
        let code = code.map(str::trim).filter(|c| !c.is_empty());
        let code = code.ok_or(DomainError::Forbidden(CODE_REQUIRED))?;
        second_factor::check(state, user, ip, code)
            .await
            .map_err(|e| match e {
                DomainError::Unauthorized(_) => DomainError::Forbidden(WRONG_CODE),
                other => other,
            })?;
    }
    Ok(hash)
}

/// Sets a new password (the signup and reset rules) after checking the current one; every
/// other session of the user ends (this one stays signed in), pending reset links stop
/// working, and the address is told.
pub async fn change_password(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    body: ChangePasswordBody,
) -> DomainResult<OkBody> {
    let missing = "currentPassword and newPassword are";
    let current = required(body.current_password.as_deref(), missing)?;
    let new = required(body.new_password.as_deref(), missing)?;
    rules::validate_password(&new)?;
    if new == current {
        return Err(DomainError::invalid(
            "The new password must differ from the current one",
        ));
    }
    let code = body.totp_code.as_deref();
    let old_hash = check_password(state, ip, &caller.user, &current, code).await?;
    let new_hash = state.hasher.hash(&new).await?;
    let changed = state
        .store
        .change_password(PasswordChange {
            user: &caller.user.id,
            old_hash: &old_hash,
            new_hash: &new_hash,
            keep: &caller.session.family_id,
            now: now(),
        })
        .await?;
    if !changed {
        return Err(DomainError::conflict(
            "The password was changed meanwhile; sign in again with the new one",
        ));
    }
    let user = &caller.user;
    state
        .mailer
        .send(templates::password_changed_here(
            &user.email,
            &user.display_name,
        ))
        .await;
    Ok(OkBody { ok: true })
}

/// Mails a confirmation link to a new address (after checking the current password). The
/// answer is the same whether or not the address already has an account: its owner gets a
/// mail saying so instead of a link, so the form tells nobody which addresses are taken.
pub async fn request_email_change(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    body: ChangeEmailBody,
) -> DomainResult<OkBody> {
    let new_email = required(body.new_email.as_deref().map(str::trim), "newEmail is")?;
    let password = required(body.current_password.as_deref(), "currentPassword is")?;
    let new_email = rules::normalize_email(&new_email)?;
    let user = &caller.user;
    if new_email == user.email.to_lowercase() {
        return Err(DomainError::invalid("This is already your address"));
    }
    check_password(state, ip, user, &password, body.totp_code.as_deref()).await?;
    // Each request mails an address the caller chose: at most the resend rate.
    state
        .limiters
        .per_account
        .check(&format!("email-change:{}", user.id))
        .map_err(|w| DomainError::RateLimited(w.as_secs().max(1)))?;
    if state.store.user_by_email(&new_email).await?.is_some() {
        state
            .mailer
            .send(templates::email_change_taken(&new_email))
            .await;
        return Ok(OkBody { ok: true });
    }
    let ttl = state.config.email_verification_ttl;
    let token = new_token("email-");
    let expires_at = now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    state
        .store
        .insert_email_change(&EmailChange {
            hash: token_hash(&token),
            user: user.id.clone(),
            new_email: new_email.clone(),
            expires_at,
        })
        .await?;
    let url = templates::link(&state.config.web_url, CONFIRM_EMAIL_PATH, &token);
    let hours = (ttl.as_secs() / 3600).max(1);
    state
        .mailer
        .send(templates::email_change(
            &new_email,
            &user.display_name,
            &url,
            hours,
        ))
        .await;
    Ok(OkBody { ok: true })
}

/// Follows a change-of-address link (single use): the account's address becomes the new one,
/// verified, and the old address is told. The new address.
pub async fn confirm_email_change(state: &AppState, token: &str) -> DomainResult<String> {
    let outcome = state
        .store
        .confirm_email_change(&token_hash(token.trim()), now())
        .await;
    match outcome.map_err(|e| match e {
        // A signup of the address raced the change (the unique index refused it).
        StoreError::Conflict(_) => DomainError::conflict(TAKEN),
        e => e.into(),
    })? {
        EmailChangeOutcome::Changed {
            user,
            old_email,
            new_email,
        } => {
            let name = match state.store.user(&user).await {
                Ok(Some(u)) => u.display_name,
                _ => String::new(),
            };
            state
                .mailer
                .send(templates::email_changed(&old_email, &name, &new_email))
                .await;
            Ok(new_email)
        }
        EmailChangeOutcome::Taken => Err(DomainError::conflict(TAKEN)),
        EmailChangeOutcome::Invalid => Err(DomainError::InvalidToken(
            "Invalid or expired email change link",
        )),
    }
}

const TAKEN: &str = "This address now belongs to another account; your address was not changed.";

/// `{token}` → [`confirm_email_change`] (a public route: holding the link is the proof).
pub async fn confirm_email(state: &AppState, body: ConfirmEmailBody) -> DomainResult<OkBody> {
    let token = rules::trimmed(body.token.as_deref())
        .ok_or_else(|| DomainError::invalid("token is required"))?;
    confirm_email_change(state, &token).await?;
    Ok(OkBody { ok: true })
}

/// What kind of client a session belongs to, and what to call it.
fn client_of(state: &AppState, client_id: &str) -> (&'static str, String) {
    let label = || {
        state
            .oidc
            .client(client_id)
            .map(|c| c.label.clone())
            .unwrap_or_else(|| client_id.to_owned())
    };
    if client_id == PORTAL_CLIENT {
        ("portal", "Web browser (this portal)".to_owned())
    } else if client_id == CLI_CLIENT {
        ("cli", label())
    } else if client_id == state.config.client_id {
        ("desktop", label())
    } else {
        ("other", label())
    }
}

fn session_item(state: &AppState, caller: &Caller, s: LiveSession) -> SessionItem {
    let (kind, client_label) = client_of(state, &s.client_id);
    SessionItem {
        current: s.family_id == caller.session.family_id,
        id: s.family_id.0,
        client_id: s.client_id,
        client_label,
        kind: kind.to_owned(),
        created_at: iso(s.created_at),
        auth_time: iso(s.auth_time),
        last_used_at: iso(s.last_used_at),
        expires_at: iso(s.expires_at),
    }
}

/// The caller's live sessions (portal, desktop, command line), newest first.
pub async fn sessions(state: &AppState, caller: &Caller) -> DomainResult<SessionsResponse> {
    let live = state
        .store
        .live_sessions(&caller.user.id, now(), MAX_LISTED_SESSIONS)
        .await?;
    let sessions = live
        .into_iter()
        .map(|s| session_item(state, caller, s))
        .collect();
    Ok(SessionsResponse { sessions })
}

/// Ends one of the caller's sessions with every token refreshed from it. Another user's
/// session, or one already ended, is not found.
pub async fn revoke_session(state: &AppState, caller: &Caller, id: &str) -> DomainResult<OkBody> {
    let family = FamilyId(id.trim().to_owned());
    let revoked = state
        .store
        .revoke_user_family(&caller.user.id, &family, now())
        .await?;
    if !revoked {
        return Err(DomainError::NotFound("Session not found"));
    }
    Ok(OkBody { ok: true })
}

/// Ends every session of the caller but the one making the request.
pub async fn revoke_other_sessions(
    state: &AppState,
    caller: &Caller,
) -> DomainResult<RevokedResponse> {
    let revoked = state
        .store
        .revoke_other_families(&caller.user.id, &caller.session.family_id, now())
        .await?;
    Ok(RevokedResponse { ok: true, revoked })
}

/// What deleting the caller's account would do, by organization name (the confirmation page
/// shows it; [`delete_account`] decides again, atomically, when asked).
#[derive(Debug, Default)]
pub struct DeletionPreview {
    /// Deleted with the account: the personal organization and any with no other member.
    pub deleted: Vec<String>,
    /// The caller leaves these; they stay with their other members.
    pub left: Vec<String>,
    /// These block the deletion: the caller is their last owner and others are members.
    pub blocking: Vec<String>,
}

pub async fn deletion_preview(state: &AppState, caller: &Caller) -> DomainResult<DeletionPreview> {
    let user = &caller.user.id;
    let mut preview = DeletionPreview::default();
    for (org, role) in state.store.memberships_of(user).await? {
        let personal = org.is_personal && org.owner_user_id.as_ref() == Some(user);
        let members = state.store.members(&org.id, &PageReq::first(2)).await?;
        let alone = members.items.iter().all(|m| &m.membership.user_id == user);
        let list = if personal || alone {
            &mut preview.deleted
        } else if role == Role::Owner && state.store.owner_count(&org.id).await? <= 1 {
            &mut preview.blocking
        } else {
            &mut preview.left
        };
        list.push(org.name);
    }
    Ok(preview)
}

/// Deletes the caller's account after they typed its address and their password: the user,
/// their personal organization and any organization they were the only member of, with what
/// belongs to them (every session ends with it). Refused (409 `last_owner`, nothing changes)
/// while they are the last owner of an organization that has other members, naming it.
pub async fn delete_account(
    state: &AppState,
    caller: &Caller,
    ip: IpAddr,
    body: DeleteAccountBody,
) -> DomainResult<DeletedResponse> {
    let typed = required(body.email.as_deref().map(str::trim), "email is")?;
    let password = required(body.password.as_deref(), "password is")?;
    let user = &caller.user;
    let typed = rules::normalize_email(&typed).unwrap_or_else(|_| typed.to_lowercase());
    if typed != user.email.to_lowercase() {
        return Err(DomainError::invalid(
            "Type the address of this account to confirm",
        ));
    }
    check_password(state, ip, user, &password, body.totp_code.as_deref()).await?;
    match state.store.delete_account(&user.id).await? {
        AccountDeletion::LastOwner(orgs) => {
            let names: Vec<String> = orgs
                .iter()
                .map(|o| format!("\u{201c}{}\u{201d}", o.name))
                .collect();
            Err(DomainError::Refused {
                code: "last_owner",
                message: format!(
                    "You are the last owner of {}, which other people are members of. Make one of them an owner, or remove them, before deleting your account.",
                    names.join(", ")
                ),
            })
        }
        AccountDeletion::Deleted { organizations } => {
            tracing::info!(user = %user.id, organizations = organizations.len(), "Account deleted by its owner.");
            state
                .mailer
                .send(templates::account_deleted(&user.email, &user.display_name))
                .await;
            Ok(DeletedResponse {
                ok: true,
                deleted_organizations: organizations.into_iter().map(|o| o.0).collect(),
            })
        }
    }
}
