//! Accounts: password sign-in shared by the JSON API, the portal and the OIDC login page.

use crate::AppState;
use crate::domain::*;
use crate::password::needs_upgrade;

/// The user whose email and password these are, or `None` (same time either way: an unknown
/// email is checked against a dummy hash). A legacy scrypt hash that verifies is replaced by
/// argon2id here, at the first login that knows the password; a failure to store the new hash
/// is logged and the login still succeeds (the next one retries).
#[tracing::instrument(skip_all)]
pub async fn sign_in_with_password(
    state: &AppState,
    email: &str,
    password: &str,
) -> DomainResult<Option<User>> {
    let user = state
        .store
        .user_by_email(&email.trim().to_lowercase())
        .await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = state.hasher.verify(password, stored.as_deref()).await?;
    let Some(mut user) = user.filter(|_| ok) else {
        return Ok(None);
    };
    if let Some(old) = stored.filter(|h| needs_upgrade(h)) {
        let new = state.hasher.hash(password).await?;
        match state
            .store
            .replace_password_hash(&user.id, &old, &new)
            .await
        {
            Ok(true) => {
                tracing::info!(user = %user.id, "Legacy password hash upgraded to argon2id.");
                user.password_hash = Some(new);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(user = %user.id, error = %e, "Could not store the upgraded password hash.")
            }
        }
    }
    Ok(Some(user))
}
