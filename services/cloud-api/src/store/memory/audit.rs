//! Admin changes with their audit rows, and the admin's directory of users and organizations.

use super::plans::patch_plan;
use super::users::write_entitlements;
use super::*;
use crate::store::audit::{audit_before, search_key};

/// Applies `change` under the store's lock; `NotFound` before anything is changed.
fn apply(t: &mut Tables, change: AdminChange<'_>) -> StoreResult<()> {
    match change {
        AdminChange::Entitlements(user) => write_entitlements(t, user),
        AdminChange::Plan { id, patch } => patch_plan(t, id, patch),
        AdminChange::VerifyEmail { user, at } => update(&mut t.users, user, |u| {
            u.email_verified_at.get_or_insert(at);
        }),
        AdminChange::Disabled { user, at } => {
            update(&mut t.users, user, |u| match at {
                Some(at) => {
                    u.disabled_at.get_or_insert(at);
                }
                None => u.disabled_at = None,
            })?;
            if let Some(at) = at {
                t.sessions.update_user(user, |s| {
                    s.revoked_at.get_or_insert(at);
                });
            }
            Ok(())
        }
    }
}

fn append(t: &mut Tables, event: &AuditEvent) -> i64 {
    let id = t.audit_log.last().map_or(1, |e| e.id + 1);
    t.audit_log.push(AuditEntry {
        id,
        event: event.clone(),
    });
    id
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn audited(&self, change: AdminChange<'_>, event: &AuditEvent) -> StoreResult<()> {
        self.try_with(|t| {
            apply(t, change)?;
            append(t, event);
            Ok(())
        })
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64> {
        self.with(|t| append(t, event))
    }

    async fn audit_log(
        &self,
        filter: &AuditFilter,
        page: &PageReq,
    ) -> StoreResult<Page<AuditEntry>> {
        let before = audit_before(page);
        self.with(|t| {
            // Rows are kept in id order: newest first is the reverse.
            let fetched: Vec<AuditEntry> = t
                .audit_log
                .iter()
                .rev()
                .filter(|e| before.is_none_or(|b| e.id < b) && filter.matches(&e.event))
                .take(page.limit + 1)
                .cloned()
                .collect();
            Page::from_fetched(fetched, page.limit, AuditEntry::cursor)
        })
    }
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(needle)
}

#[async_trait]
impl DirectoryStore for MemoryStore {
    async fn search_users(&self, query: &str, page: &PageReq) -> StoreResult<Page<User>> {
        let q = search_key(query);
        self.with(|t| {
            let users = rows_where(&t.users, |u| {
                contains(&u.email, &q) || contains(&u.display_name, &q)
            });
            page_of(users, page)
        })
    }

    async fn search_organizations(
        &self,
        query: &str,
        page: &PageReq,
    ) -> StoreResult<Page<Organization>> {
        let q = search_key(query);
        self.with(|t| {
            let orgs = rows_where(&t.orgs, |o| contains(&o.name, &q) || contains(&o.slug, &q));
            page_of(orgs, page)
        })
    }
}
