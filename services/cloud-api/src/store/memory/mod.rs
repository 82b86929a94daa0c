//! In-memory store: development without Postgres and the second implementation the contract
//! suite checks. One mutex over plain tables keeps every method atomic; nothing is awaited while
//! it is held.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use async_trait::async_trait;

use super::listing::*;
use super::*;
use crate::domain::memory::text_matches;
use crate::domain::*;

#[derive(Default)]
struct Tables {
    plans: Vec<Plan>,
    users: HashMap<UserId, User>,
    sessions: SessionTable,
    orgs: HashMap<OrgId, Organization>,
    memberships: Vec<Membership>,
    invites: Vec<Invite>,
    instances: HashMap<InstanceId, Instance>,
    providers: HashMap<ProviderId, Provider>,
    projects: HashMap<ProjectId, Project>,
    conversations: HashMap<ConversationId, Conversation>,
    messages: HashMap<ConversationId, Vec<Message>>,
    memories: HashMap<MemoryId, Memory>,
    email_tokens: Vec<EmailToken>,
    email_changes: Vec<EmailChange>,
    audit_log: Vec<AuditEntry>,
}

/// Sessions with the indexes the token paths need: every access-token check, refresh and
/// revocation is a hash lookup instead of a scan over every session ever issued.
#[derive(Default)]
struct SessionTable {
    rows: Vec<Session>,
    by_access: HashMap<String, usize>,
    by_refresh: HashMap<String, usize>,
    by_id: HashMap<SessionId, usize>,
    by_family: HashMap<FamilyId, Vec<usize>>,
    by_user: HashMap<UserId, Vec<usize>>,
}

impl SessionTable {
    fn insert(&mut self, session: Session) {
        let idx = self.rows.len();
        self.by_access
            .insert(session.access_token_hash.clone(), idx);
        if let Some(h) = &session.refresh_token_hash {
            self.by_refresh.insert(h.clone(), idx);
        }
        self.by_id.insert(session.id.clone(), idx);
        self.by_family
            .entry(session.family_id.clone())
            .or_default()
            .push(idx);
        self.by_user
            .entry(session.user_id.clone())
            .or_default()
            .push(idx);
        self.rows.push(session);
    }

    fn by_access(&self, hash: &str) -> Option<&Session> {
        self.by_access.get(hash).map(|&i| &self.rows[i])
    }

    fn refresh_index(&self, hash: &str) -> Option<usize> {
        self.by_refresh.get(hash).copied()
    }

    fn update(rows: &mut [Session], idxs: Option<&Vec<usize>>, mut f: impl FnMut(&mut Session)) {
        for &i in idxs.into_iter().flatten() {
            f(&mut rows[i]);
        }
    }

    fn update_family(&mut self, family: &FamilyId, f: impl FnMut(&mut Session)) {
        Self::update(&mut self.rows, self.by_family.get(family), f);
    }

    fn update_user(&mut self, user: &UserId, f: impl FnMut(&mut Session)) {
        Self::update(&mut self.rows, self.by_user.get(user), f);
    }
}

pub struct MemoryStore {
    t: Mutex<Tables>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store seeded with the same plans as the initial migration.
    pub fn new() -> Self {
        let plans = vec![
            plan("plus", "Plus", 3, true),
            plan("pro", "Pro", 10, false),
            plan("max", "Max", 30, false),
        ];
        Self {
            t: Mutex::new(Tables {
                plans,
                ..Tables::default()
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> StoreResult<R> {
        let mut guard = self
            .t
            .lock()
            .map_err(|_| StoreError::Internal("in-memory store lock poisoned".into()))?;
        Ok(f(&mut guard))
    }

    /// [`Self::with`] for an operation that can itself fail.
    fn try_with<R>(&self, f: impl FnOnce(&mut Tables) -> StoreResult<R>) -> StoreResult<R> {
        self.with(f)?
    }
}

/// Changes the row stored under `id`; `NotFound` when there is none.
fn update<K: Eq + Hash, V, R>(
    table: &mut HashMap<K, V>,
    id: &K,
    f: impl FnOnce(&mut V) -> R,
) -> StoreResult<R> {
    table.get_mut(id).map(f).ok_or(StoreError::NotFound)
}

/// Replaces the row stored under `id` with `row`; `NotFound` when there is none.
fn replace<K: Eq + Hash, V: Clone>(table: &mut HashMap<K, V>, id: &K, row: &V) -> StoreResult<()> {
    update(table, id, |v| *v = row.clone())
}

/// Removes the row stored under `id`; `NotFound` when there is none.
fn remove<K: Eq + Hash, V>(table: &mut HashMap<K, V>, id: &K) -> StoreResult<V> {
    table.remove(id).ok_or(StoreError::NotFound)
}

/// Copies of the rows for which `keep` holds, in no order (see [`page_of`]).
fn rows_where<K, V: Clone>(table: &HashMap<K, V>, keep: impl Fn(&V) -> bool) -> Vec<V> {
    table.values().filter(|v| keep(v)).cloned().collect()
}

fn plan(id: &str, label: &str, limit: i64, default: bool) -> Plan {
    Plan {
        id: id.into(),
        label: label.into(),
        parallel_sessions_limit: limit,
        is_default: default,
        is_hidden: false,
    }
}

/// Sorts by each record's cursor (key, id), skips up to the cursor and keeps `limit + 1` for the
/// page logic.
fn page_of<T: Listed>(mut items: Vec<T>, page: &PageReq) -> Page<T> {
    items.sort_by_cached_key(|i| {
        let c = i.cursor();
        (c.key, c.id)
    });
    let start = match &page.after {
        Some(c) => items
            .iter()
            .position(|i| {
                let k = i.cursor();
                (k.key.as_str(), k.id.as_str()) > (c.key.as_str(), c.id.as_str())
            })
            .unwrap_or(items.len()),
        None => 0,
    };
    let fetched: Vec<T> = items.into_iter().skip(start).take(page.limit + 1).collect();
    Page::from_fetched(fetched, page.limit, T::cursor)
}

fn memory_visible(m: &Memory, f: &MemoryFilter) -> bool {
    if m.organization_id != f.organization_id {
        return false;
    }
    let in_project = f
        .project_id
        .as_ref()
        .is_none_or(|p| m.project_id.as_ref() == Some(p));
    let scope_ok = match m.scope {
        MemoryScope::Global => m.user_id.as_ref() == Some(&f.user_id),
        MemoryScope::Project => m.project_id.is_some() && in_project,
    };
    let scope_ok = scope_ok && f.scope.is_none_or(|s| s == m.scope);
    scope_ok
        && (f.include_archived || !m.archived)
        && (!f.active_only || m.status == MemoryStatus::Active)
        && f.kind.as_ref().is_none_or(|k| &m.kind == k)
}

mod audit;
mod conversations;
mod email_tokens;
mod instances;
mod invites;
mod memories;
mod organizations;
mod plans;
mod projects;
mod providers;
mod self_service;
mod sessions;
mod users;

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
}
