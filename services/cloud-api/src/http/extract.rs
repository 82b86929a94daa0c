//! Request-side helpers: the authenticated caller, list parameters and opaque cursors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloud_common::ApiError;
use cloud_common::auth::bearer;
use serde::Deserialize;
use utoipa::IntoParams;

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
pub fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("Admin access required."))
    }
}

pub use super::client_ip::ClientIp;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

/// `?limit=&cursor=` of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1-200 (default 50).
    pub limit: Option<String>,
    /// Opaque cursor from a previous page's `nextCursor`.
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageReq, ApiError> {
        page_req(
            self.limit.as_deref(),
            self.cursor.as_deref(),
            DEFAULT_LIMIT,
            MAX_LIMIT,
        )
    }
}

/// Parses `limit` (lenient: a non-number is a 400, never a 500) and `cursor`.
pub fn page_req(
    limit: Option<&str>,
    cursor: Option<&str>,
    default: usize,
    max: usize,
) -> Result<PageReq, ApiError> {
    let limit = match limit.map(str::trim).filter(|s| !s.is_empty()) {
        None => default,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be an integer from 1 to {max}"
                )));
            }
        },
    };
    let after = match cursor.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("Invalid cursor"))?),
    };
    Ok(PageReq { limit, after })
}

pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!([c.key, c.id]).to_string())
}

fn decode_cursor(s: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let (key, id): (String, String) = serde_json::from_slice(&bytes).ok()?;
    Some(Cursor { key, id })
}

pub fn next_cursor<T>(page: &Page<T>) -> Option<String> {
    page.next.as_ref().map(encode_cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_roundtrip_and_bad_input_is_400() {
        let c = Cursor {
            key: "name".into(),
            id: "project-1".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert!(page_req(Some("x"), None, 50, 200).is_err());
        assert!(page_req(Some("0"), None, 50, 200).is_err());
        assert!(page_req(Some("201"), None, 50, 200).is_err());
        assert!(page_req(None, Some("!!"), 50, 200).is_err());
        assert_eq!(page_req(None, None, 50, 200).unwrap().limit, 50);
    }
}
