//! Global administration's writes and reads: every admin change is applied together with its
//! audit row ([`AuditStore::audited`]), and the directory of users and organizations an admin
//! searches ([`DirectoryStore`]).

use async_trait::async_trait;

use super::{PlanPatch, StoreResult};
use crate::domain::*;
use crate::store::listing::Listed;

/// A change only a global admin makes, applied by [`AuditStore::audited`].
#[derive(Debug, Clone, Copy)]
pub enum AdminChange<'a> {
    /// Writes the admin-managed fields (as [`super::UserStore::update_user_entitlements`]).
    Entitlements(&'a User),
    /// As [`super::PlanStore::update_plan`].
    Plan { id: &'a str, patch: &'a PlanPatch },
    /// Marks the address verified (an earlier verification time is kept).
    VerifyEmail { user: &'a UserId, at: Timestamp },
    /// `Some(t)` disables the user (an earlier time is kept) and revokes every session of
    /// theirs; `None` enables them again.
    Disabled {
        user: &'a UserId,
        at: Option<Timestamp>,
    },
}

/// The audit log of admin actions.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Atomically: applies `change` and appends `event`; when the change fails (`NotFound` for
    /// an unknown user or plan) nothing is written, so the log never claims a change that did
    /// not happen and no change goes unrecorded.
    async fn audited(&self, change: AdminChange<'_>, event: &AuditEvent) -> StoreResult<()>;
    /// Appends one row (for an action that changes nothing else); its id.
    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64>;
    /// The rows `filter` selects, newest first.
    async fn audit_log(
        &self,
        filter: &AuditFilter,
        page: &PageReq,
    ) -> StoreResult<Page<AuditEntry>>;
}

/// Users and organizations as a global admin lists them.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Users whose email or display name contains `query` (case-insensitive; empty = all), by
    /// creation time.
    async fn search_users(&self, query: &str, page: &PageReq) -> StoreResult<Page<User>>;
    /// Organizations whose name or slug contains `query` (case-insensitive; empty = all), by
    /// creation time.
    async fn search_organizations(
        &self,
        query: &str,
        page: &PageReq,
    ) -> StoreResult<Page<Organization>>;
}

/// Newest first: the key is the id, and a page continues below it.
impl Listed for AuditEntry {
    fn cursor(&self) -> Cursor {
        Cursor {
            key: self.id.to_string(),
            id: String::new(),
        }
    }
}

/// The id an audit page continues below (`None`: from the newest row). A cursor that is not an
/// id starts over rather than failing.
pub fn audit_before(page: &PageReq) -> Option<i64> {
    page.after.as_ref().and_then(|c| c.key.parse().ok())
}

impl Listed for Organization {
    fn cursor(&self) -> Cursor {
        Cursor {
            key: time_key(self.created_at),
            id: self.id.0.clone(),
        }
    }
}

/// `query` as both stores compare it: trimmed and lower-cased.
pub fn search_key(query: &str) -> String {
    query.trim().to_lowercase()
}
