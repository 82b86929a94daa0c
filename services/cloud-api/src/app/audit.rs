//! The audit log of global administration: every function of `app::admin` that changes
//! something records who did what to which record, and when, in the same store call as the
//! change ([`crate::store::AuditStore::audited`]), so the JSON admin routes and the portal's
//! admin pages are audited alike. This module names the actions and reads the log back.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::domain::*;
use crate::paging::next_cursor;
use crate::web::caller::{Caller, require_admin};

/// A user's base plan or admin flag changed (`PATCH /v1/admin/users/{userId}`).
pub const USER_UPDATE: &str = "user.update";
/// A complimentary plan was granted.
pub const USER_GRANT: &str = "user.grant";
/// The complimentary plan was revoked.
pub const USER_REVOKE_GRANT: &str = "user.revoke_grant";
/// An admin marked the user's address verified.
pub const USER_VERIFY: &str = "user.verify";
/// The user was disabled (and their sessions revoked).
pub const USER_DISABLE: &str = "user.disable";
/// The user was enabled again.
pub const USER_ENABLE: &str = "user.enable";
/// A plan's label, limit, default or hidden flag changed.
pub const PLAN_UPDATE: &str = "plan.update";

/// The target kinds.
pub const USER: &str = "user";
pub const PLAN: &str = "plan";

/// The row `caller` leaves by doing `action` to `(kind, id)`; `details` says what changed.
pub fn event(caller: &Caller, action: &str, kind: &str, id: &str, details: Value) -> AuditEvent {
    AuditEvent {
        actor: caller.user.id.clone(),
        action: action.to_owned(),
        target_kind: kind.to_owned(),
        target_id: id.to_owned(),
        details,
        at: now(),
    }
}

page_query! {
    /// `?targetKind=&targetId=&limit=&cursor=` of the audit log (the target filter needs both).
    AuditLogQuery {
        /// `user` or `plan`: only rows about this record (with `targetId`).
        target_kind,
        /// Only rows about this record (with `targetKind`).
        target_id,
    } limit "1-200, default 50." default 50 max 200
}

/// One row of the log as an admin reads it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    pub id: i64,
    pub actor_user_id: String,
    /// The actor's current address (`null` once the account is gone).
    pub actor_email: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    /// The target as a person reads it: a user's current address, a plan's label (`null` once
    /// it is gone).
    pub target_label: Option<String>,
    /// What changed.
    #[schema(value_type = Object)]
    pub details: Value,
    pub created_at: String,
}

page_response! {
    /// The audit log, newest first.
    AuditLogResponse { entries: AuditEntryView }
}

/// The audit log (global admins only), newest first.
pub async fn log(
    state: &AppState,
    caller: &Caller,
    q: AuditLogQuery,
) -> Result<AuditLogResponse, DomainError> {
    require_admin(caller)?;
    let page = q.page()?;
    let target = match (
        rules::trimmed(q.target_kind.as_deref()),
        rules::trimmed(q.target_id.as_deref()),
    ) {
        (Some(kind), Some(id)) => Some((kind, id)),
        (None, None) => None,
        _ => {
            return Err(DomainError::invalid("targetKind and targetId go together"));
        }
    };
    let result = state
        .store
        .audit_log(&AuditFilter { target }, &page)
        .await?;
    // One lookup per distinct user on the page (actors are few, targets at most a page).
    let mut emails: HashMap<UserId, Option<String>> = HashMap::new();
    for e in &result.items {
        let target =
            (e.event.target_kind == USER).then(|| UserId::from(e.event.target_id.as_str()));
        for id in std::iter::once(e.event.actor.clone()).chain(target) {
            if let Entry::Vacant(slot) = emails.entry(id) {
                let email = state.store.user(slot.key()).await?.map(|u| u.email);
                slot.insert(email);
            }
        }
    }
    let plans = crate::app::access::plans(state).await?;
    let label = |e: &AuditEvent| match e.target_kind.as_str() {
        USER => emails
            .get(&UserId::from(e.target_id.as_str()))
            .cloned()
            .flatten(),
        PLAN => plans
            .iter()
            .find(|p| p.id == e.target_id)
            .map(|p| p.label.clone()),
        _ => None,
    };
    let entries = result
        .items
        .iter()
        .map(|e| AuditEntryView {
            id: e.id,
            actor_user_id: e.event.actor.0.clone(),
            actor_email: emails.get(&e.event.actor).cloned().flatten(),
            action: e.event.action.clone(),
            target_kind: e.event.target_kind.clone(),
            target_id: e.event.target_id.clone(),
            target_label: label(&e.event),
            details: e.event.details.clone(),
            created_at: cloud_common::time::iso(e.event.at),
        })
        .collect();
    Ok(AuditLogResponse {
        entries,
        next_cursor: next_cursor(&result),
    })
}
