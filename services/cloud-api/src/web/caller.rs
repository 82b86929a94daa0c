//! The [`Caller`]: the user behind a bearer access token (JSON API) — the portal builds the same
//! value from its session cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cloud_common::ApiError;
use cloud_common::auth::bearer;

use crate::AppState;
use crate::domain::*;
use crate::sessions;

/// The user behind a valid bearer access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub session: Session,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token =
            bearer(&parts.headers).ok_or_else(|| ApiError::unauthorized("Missing bearer token"))?;
        let (session, mut user) = sessions::authenticate(state.store.as_ref(), token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Unknown bearer token"))?;
        apply_admin_list(&state.config.admin_emails, &mut user);
        Ok(Caller { user, session })
    }
}

/// Admins named in `CHATONS_ADMIN_EMAILS` are admins once their email is verified, so nobody
/// becomes admin merely by signing up first with that address.
pub fn apply_admin_list(admins: &[String], user: &mut User) {
    if user.email_verified_at.is_some() && admins.iter().any(|a| a == &user.email) {
        user.is_admin = true;
    }
}

/// The caller must be a global admin.
pub fn require_admin(caller: &Caller) -> Result<(), DomainError> {
    if caller.user.is_admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden("Admin access required."))
    }
}
