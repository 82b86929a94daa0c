//! The audit log of global administration: who did what to which record, and when.

use super::Timestamp;
use super::ids::UserId;

/// One admin action as it is recorded. `details` says what changed, never a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub actor: UserId,
    /// `user.update`, `user.grant`, `plan.update`… (see `app::audit`).
    pub action: String,
    /// `user`, `plan`.
    pub target_kind: String,
    pub target_id: String,
    pub details: serde_json::Value,
    pub at: Timestamp,
}

/// A recorded [`AuditEvent`] with its position in the log (ids grow with time).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub event: AuditEvent,
}

/// Which rows of the log a page shows: all, or those about one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `(target_kind, target_id)`.
    pub target: Option<(String, String)>,
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.target
            .as_ref()
            .is_none_or(|(kind, id)| *kind == e.target_kind && *id == e.target_id)
    }
}
