//! In-memory store: development without Postgres and the second implementation the contract
//! suite checks. One mutex over plain tables keeps every method atomic; nothing is awaited while
//! it is held.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{EmailTokenKind, NewAccount, PlanPatch, Store, StoreResult};
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
    email_tokens: Vec<(EmailTokenKind, String, UserId, DateTime<Utc>)>,
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

/// Sorts by (key, id), skips up to the cursor and keeps `limit + 1` for the page logic.
fn page_of<T: Clone>(mut items: Vec<T>, page: &PageReq, key: impl Fn(&T) -> Cursor) -> Page<T> {
    items.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        (ka.key, ka.id).cmp(&(kb.key, kb.id))
    });
    let start = match &page.after {
        Some(c) => items
            .iter()
            .position(|i| {
                let k = key(i);
                (k.key.as_str(), k.id.as_str()) > (c.key.as_str(), c.id.as_str())
            })
            .unwrap_or(items.len()),
        None => 0,
    };
    let fetched: Vec<T> = items.into_iter().skip(start).take(page.limit + 1).collect();
    Page::from_fetched(fetched, page.limit, key)
}

fn memory_visible(m: &Memory, f: &MemoryFilter) -> bool {
    if m.organization_id != f.organization_id {
        return false;
    }
    let global = m.scope == "global" && m.user_id.as_ref() == Some(&f.user_id);
    let project = m.scope == "project" && m.project_id.is_some();
    let scope_ok = match f.scope.as_str() {
        "global" => global,
        "project" => {
            project
                && f.project_id
                    .as_ref()
                    .is_none_or(|p| m.project_id.as_ref() == Some(p))
        }
        _ => {
            global
                || (project
                    && f.project_id
                        .as_ref()
                        .is_none_or(|p| m.project_id.as_ref() == Some(p)))
        }
    };
    scope_ok
        && (f.include_archived || !m.archived)
        && (!f.active_only || m.status == "active")
        && f.kind.as_ref().is_none_or(|k| &m.kind == k)
}

pub fn memory_cursor(m: &Memory) -> Cursor {
    // Newest first: invert the time so ascending key order is descending time.
    Cursor {
        key: format!("{:020}", i64::MAX - m.updated_at.timestamp_micros()),
        id: m.id.0.clone(),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_account(&self, a: NewAccount) -> StoreResult<()> {
        self.with(|t| {
            if t.users.values().any(|u| u.email == a.user.email) {
                return Err(StoreError::Conflict("cloud_users_email_uidx".into()));
            }
            if t.orgs.values().any(|o| o.slug == a.organization.slug) {
                return Err(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
            }
            t.memberships.push(Membership {
                organization_id: a.organization.id.clone(),
                user_id: a.user.id.clone(),
                role: Role::Owner,
                created_at: a.user.created_at,
            });
            t.orgs.insert(a.organization.id.clone(), a.organization);
            t.projects
                .insert(a.default_project.id.clone(), a.default_project);
            t.users.insert(a.user.id.clone(), a.user);
            Ok(())
        })?
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.with(|t| t.users.get(id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_lowercase();
        self.with(|t| t.users.values().find(|u| u.email == email).cloned())
    }

    async fn list_users(&self, page: &PageReq) -> StoreResult<Page<User>> {
        self.with(|t| {
            page_of(t.users.values().cloned().collect(), page, |u| Cursor {
                key: time_key(u.created_at),
                id: u.id.0.clone(),
            })
        })
    }

    async fn update_user_entitlements(&self, user: &User) -> StoreResult<()> {
        self.with(|t| match t.users.get_mut(&user.id) {
            Some(u) => {
                u.is_admin = user.is_admin;
                u.subscription_plan = user.subscription_plan.clone();
                u.complimentary = user.complimentary.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn replace_password_hash(
        &self,
        user: &UserId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        self.with(|t| match t.users.get_mut(user) {
            Some(u) if u.password_hash.as_deref() == Some(old) => {
                u.password_hash = Some(new.to_owned());
                true
            }
            _ => false,
        })
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        self.with(|t| t.sessions.insert(session.clone()))
    }

    async fn session_by_access_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        self.with(|t| {
            t.sessions
                .by_access(hash)
                .filter(|s| s.revoked_at.is_none() && s.expires_at > now)
                .cloned()
        })
    }

    async fn session_by_refresh_hash(&self, hash: &str) -> StoreResult<Option<Session>> {
        self.with(|t| {
            t.sessions
                .refresh_index(hash)
                .map(|i| t.sessions.rows[i].clone())
        })
    }

    async fn rotate_refresh(
        &self,
        refresh_hash: &str,
        next: Session,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> StoreResult<RotateOutcome> {
        self.with(|t| {
            let Some(idx) = t.sessions.refresh_index(refresh_hash) else {
                return RotateOutcome::Invalid;
            };
            let old = t.sessions.rows[idx].clone();
            if old.revoked_at.is_none()
                && old
                    .rotated_at
                    .is_some_and(|at| crate::domain::rules::within_grace(at, now, grace))
            {
                return match t.sessions.by_access(&next.access_token_hash) {
                    Some(s) if s.family_id == old.family_id && s.revoked_at.is_none() => {
                        RotateOutcome::Repeated(Box::new(s.clone()))
                    }
                    _ => RotateOutcome::Invalid,
                };
            }
            if old.rotated_at.is_some() || old.revoked_at.is_some() {
                t.sessions.update_family(&old.family_id, |s| {
                    s.revoked_at.get_or_insert(now);
                });
                return RotateOutcome::Reused;
            }
            if old.refresh_expires_at.is_none_or(|e| e <= now) {
                return RotateOutcome::Invalid;
            }
            t.sessions.rows[idx].rotated_at = Some(now);
            let next = Session {
                family_id: old.family_id.clone(),
                user_id: old.user_id.clone(),
                client_id: old.client_id.clone(),
                scope: old.scope.clone(),
                active_organization_id: old.active_organization_id.clone(),
                auth_time: old.auth_time,
                ..next
            };
            t.sessions.insert(next.clone());
            RotateOutcome::Rotated(Box::new(next))
        })
    }

    async fn revoke_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()> {
        self.with(|t| {
            if let Some(&i) = t.sessions.by_id.get(id) {
                t.sessions.rows[i].revoked_at.get_or_insert(now);
            }
        })
    }

    async fn revoke_family(&self, family: &FamilyId, now: DateTime<Utc>) -> StoreResult<()> {
        self.with(|t| {
            t.sessions.update_family(family, |s| {
                s.revoked_at.get_or_insert(now);
            });
        })
    }

    async fn set_active_organization(&self, user: &UserId, org: &OrgId) -> StoreResult<()> {
        self.with(|t| {
            t.sessions.update_user(user, |s| {
                if s.revoked_at.is_none() {
                    s.active_organization_id = Some(org.clone());
                }
            });
        })
    }

    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        self.with(|t| {
            let mut plans = t.plans.clone();
            plans.sort_by(|a, b| a.id.cmp(&b.id));
            plans
        })
    }

    async fn update_plan(&self, id: &str, patch: &PlanPatch) -> StoreResult<()> {
        self.with(|t| {
            if !t.plans.iter().any(|p| p.id == id) {
                return Err(StoreError::NotFound);
            }
            if patch.is_default == Some(true) {
                for p in t.plans.iter_mut() {
                    p.is_default = false;
                }
            }
            if let Some(p) = t.plans.iter_mut().find(|p| p.id == id) {
                if let Some(l) = &patch.label {
                    p.label = l.clone();
                }
                if let Some(n) = patch.parallel_sessions_limit {
                    p.parallel_sessions_limit = n;
                }
                if let Some(d) = patch.is_default {
                    p.is_default = d;
                }
                if let Some(h) = patch.is_hidden {
                    p.is_hidden = h;
                }
            }
            Ok(())
        })?
    }

    async fn active_runtime_sessions(
        &self,
        _user: &UserId,
        _now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        // Runtime sessions live in Postgres only (runtime-headless writes them).
        Ok(0)
    }

    async fn create_organization(&self, org: &Organization, owner: &UserId) -> StoreResult<()> {
        self.with(|t| {
            if t.orgs.values().any(|o| o.slug == org.slug) {
                return Err(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
            }
            t.orgs.insert(org.id.clone(), org.clone());
            t.memberships.push(Membership {
                organization_id: org.id.clone(),
                user_id: owner.clone(),
                role: Role::Owner,
                created_at: org.created_at,
            });
            Ok(())
        })?
    }

    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.with(|t| t.orgs.get(id).cloned())
    }

    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(Organization, Role)>> {
        self.with(|t| {
            let mut out: Vec<(Organization, Role, DateTime<Utc>)> = t
                .memberships
                .iter()
                .filter(|m| &m.user_id == user)
                .filter_map(|m| {
                    t.orgs
                        .get(&m.organization_id)
                        .map(|o| (o.clone(), m.role, m.created_at))
                })
                .collect();
            out.sort_by(|a, b| {
                let pa = a.0.is_personal && a.0.owner_user_id.as_ref() == Some(user);
                let pb = b.0.is_personal && b.0.owner_user_id.as_ref() == Some(user);
                pb.cmp(&pa).then(a.2.cmp(&b.2)).then(a.0.id.cmp(&b.0.id))
            });
            out.into_iter().map(|(o, r, _)| (o, r)).collect()
        })
    }

    async fn role_in(&self, org: &OrgId, user: &UserId) -> StoreResult<Option<Role>> {
        self.with(|t| {
            t.memberships
                .iter()
                .find(|m| &m.organization_id == org && &m.user_id == user)
                .map(|m| m.role)
        })
    }

    async fn rename_organization(&self, org: &OrgId, name: &str, slug: &str) -> StoreResult<()> {
        self.with(|t| {
            if t.orgs.values().any(|o| o.slug == slug && &o.id != org) {
                return Err(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
            }
            match t.orgs.get_mut(org) {
                Some(o) => {
                    o.name = name.to_owned();
                    o.slug = slug.to_owned();
                    Ok(())
                }
                None => Err(StoreError::NotFound),
            }
        })?
    }

    async fn members(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Member>> {
        self.with(|t| {
            let items: Vec<Member> = t
                .memberships
                .iter()
                .filter(|m| &m.organization_id == org)
                .filter_map(|m| {
                    t.users.get(&m.user_id).map(|u| Member {
                        membership: m.clone(),
                        email: u.email.clone(),
                        display_name: u.display_name.clone(),
                    })
                })
                .collect();
            page_of(items, page, |m| Cursor {
                key: time_key(m.membership.created_at),
                id: m.membership.user_id.0.clone(),
            })
        })
    }

    async fn set_role(&self, org: &OrgId, user: &UserId, role: Role) -> StoreResult<()> {
        self.with(|t| {
            match t
                .memberships
                .iter_mut()
                .find(|m| &m.organization_id == org && &m.user_id == user)
            {
                Some(m) => {
                    m.role = role;
                    Ok(())
                }
                None => Err(StoreError::NotFound),
            }
        })?
    }

    async fn remove_member(&self, org: &OrgId, user: &UserId) -> StoreResult<()> {
        self.with(|t| {
            let before = t.memberships.len();
            t.memberships
                .retain(|m| !(&m.organization_id == org && &m.user_id == user));
            if t.memberships.len() == before {
                return Err(StoreError::NotFound);
            }
            t.sessions.update_user(user, |s| {
                if s.active_organization_id.as_ref() == Some(org) {
                    s.active_organization_id = None;
                }
            });
            Ok(())
        })?
    }

    async fn owner_count(&self, org: &OrgId) -> StoreResult<i64> {
        self.with(|t| {
            t.memberships
                .iter()
                .filter(|m| &m.organization_id == org && m.role == Role::Owner)
                .count() as i64
        })
    }

    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()> {
        self.with(|t| t.invites.push(invite.clone()))
    }

    async fn invite_by_token_hash(&self, hash: &str) -> StoreResult<Option<Invite>> {
        self.with(|t| t.invites.iter().find(|i| i.token_hash == hash).cloned())
    }

    async fn invites(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Invite>> {
        self.with(|t| {
            let items: Vec<Invite> = t
                .invites
                .iter()
                .filter(|i| {
                    &i.organization_id == org && i.accepted_at.is_none() && i.revoked_at.is_none()
                })
                .cloned()
                .collect();
            page_of(items, page, |i| Cursor {
                key: time_key(i.created_at),
                id: i.id.0.clone(),
            })
        })
    }

    async fn accept_invite(
        &self,
        invite: &InviteId,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with(|t| {
            let Some(inv) = t.invites.iter_mut().find(|i| {
                &i.id == invite
                    && i.accepted_at.is_none()
                    && i.revoked_at.is_none()
                    && i.expires_at > now
            }) else {
                return Err(StoreError::NotFound);
            };
            inv.accepted_at = Some(now);
            let (org, role) = (inv.organization_id.clone(), inv.role);
            match t
                .memberships
                .iter_mut()
                .find(|m| m.organization_id == org && &m.user_id == user)
            {
                Some(m) => m.role = m.role.min(role),
                None => t.memberships.push(Membership {
                    organization_id: org,
                    user_id: user.clone(),
                    role,
                    created_at: now,
                }),
            }
            Ok(())
        })?
    }

    async fn revoke_invite(
        &self,
        org: &OrgId,
        invite: &InviteId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with(|t| {
            match t.invites.iter_mut().find(|i| {
                &i.id == invite
                    && &i.organization_id == org
                    && i.accepted_at.is_none()
                    && i.revoked_at.is_none()
            }) {
                Some(i) => {
                    i.revoked_at = Some(now);
                    Ok(())
                }
                None => Err(StoreError::NotFound),
            }
        })?
    }

    async fn register_instance(
        &self,
        instance: &Instance,
        max: usize,
    ) -> StoreResult<RegisterOutcome> {
        self.with(|t| match t.instances.get(&instance.id) {
            Some(existing) if existing.user_id == instance.user_id => {
                RegisterOutcome::Existing(existing.clone())
            }
            Some(_) => RegisterOutcome::Taken,
            None if t
                .instances
                .values()
                .filter(|i| i.user_id == instance.user_id)
                .count()
                >= max =>
            {
                RegisterOutcome::LimitReached
            }
            None => {
                t.instances.insert(instance.id.clone(), instance.clone());
                RegisterOutcome::Created(instance.clone())
            }
        })
    }

    async fn delete_instance(&self, user: &UserId, id: &InstanceId) -> StoreResult<bool> {
        self.with(|t| match t.instances.get(id) {
            Some(i) if &i.user_id == user => t.instances.remove(id).is_some(),
            _ => false,
        })
    }

    async fn instance(&self, id: &InstanceId) -> StoreResult<Option<Instance>> {
        self.with(|t| t.instances.get(id).cloned())
    }

    async fn instances_of(&self, user: &UserId, page: &PageReq) -> StoreResult<Page<Instance>> {
        self.with(|t| {
            let items: Vec<Instance> = t
                .instances
                .values()
                .filter(|i| &i.user_id == user)
                .cloned()
                .collect();
            page_of(items, page, |i| Cursor {
                key: time_key(i.created_at),
                id: i.id.0.clone(),
            })
        })
    }

    async fn insert_provider(&self, provider: &Provider) -> StoreResult<()> {
        self.with(|t| {
            t.providers.insert(provider.id.clone(), provider.clone());
        })
    }

    async fn provider(&self, id: &ProviderId) -> StoreResult<Option<Provider>> {
        self.with(|t| t.providers.get(id).cloned())
    }

    async fn providers(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Provider>> {
        self.with(|t| {
            let items: Vec<Provider> = t
                .providers
                .values()
                .filter(|p| &p.organization_id == org)
                .cloned()
                .collect();
            page_of(items, page, |p| Cursor {
                key: time_key(p.created_at),
                id: p.id.0.clone(),
            })
        })
    }

    async fn update_provider(&self, provider: &Provider) -> StoreResult<()> {
        self.with(|t| match t.providers.get_mut(&provider.id) {
            Some(p) => {
                *p = provider.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn providers_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&ProviderId>,
        limit: usize,
    ) -> StoreResult<Vec<Provider>> {
        self.with(|t| {
            let mut found: Vec<Provider> = t
                .providers
                .values()
                .filter(|p| p.secret.as_ref().is_some_and(|s| s.key_id != key_id))
                .filter(|p| after.is_none_or(|a| p.id.as_str() > a.as_str()))
                .cloned()
                .collect();
            found.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            found.truncate(limit);
            found
        })
    }

    async fn reseal_provider_secret(
        &self,
        id: &ProviderId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> StoreResult<bool> {
        self.with(|t| match t.providers.get_mut(id) {
            Some(p) if p.secret.as_ref().is_some_and(|s| s.nonce == old_nonce) => {
                p.secret = Some(sealed.clone());
                true
            }
            _ => false,
        })
    }

    async fn delete_provider(&self, id: &ProviderId) -> StoreResult<()> {
        self.with(|t| {
            t.providers
                .remove(id)
                .map(|_| ())
                .ok_or(StoreError::NotFound)
        })?
    }

    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        self.with(|t| {
            t.projects.insert(project.id.clone(), project.clone());
        })
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.with(|t| t.projects.get(id).cloned())
    }

    async fn projects(&self, orgs: &[OrgId], page: &PageReq) -> StoreResult<Page<Project>> {
        self.with(|t| {
            let items: Vec<Project> = t
                .projects
                .values()
                .filter(|p| orgs.contains(&p.organization_id))
                .cloned()
                .collect();
            page_of(items, page, |p| Cursor {
                key: p.name.clone(),
                id: p.id.0.clone(),
            })
        })
    }

    async fn update_project(&self, project: &Project) -> StoreResult<()> {
        self.with(|t| match t.projects.get_mut(&project.id) {
            Some(p) => {
                *p = project.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()> {
        self.with(|t| {
            if t.projects.remove(id).is_none() {
                return Err(StoreError::NotFound);
            }
            let gone: Vec<ConversationId> = t
                .conversations
                .values()
                .filter(|c| &c.project_id == id)
                .map(|c| c.id.clone())
                .collect();
            for c in &gone {
                t.conversations.remove(c);
                t.messages.remove(c);
            }
            t.memories.retain(|_, m| m.project_id.as_ref() != Some(id));
            for m in t.memories.values_mut() {
                if m.source_conversation_id
                    .as_ref()
                    .is_some_and(|c| gone.contains(c))
                {
                    m.source_conversation_id = None;
                }
            }
            Ok(())
        })?
    }

    async fn insert_conversation(&self, conversation: &Conversation) -> StoreResult<()> {
        self.with(|t| {
            t.conversations
                .insert(conversation.id.clone(), conversation.clone());
        })
    }

    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>> {
        self.with(|t| t.conversations.get(id).cloned())
    }

    async fn conversations(
        &self,
        orgs: &[OrgId],
        project: Option<&ProjectId>,
        page: &PageReq,
    ) -> StoreResult<Page<Conversation>> {
        self.with(|t| {
            let items: Vec<Conversation> = t
                .conversations
                .values()
                .filter(|c| orgs.contains(&c.organization_id))
                .filter(|c| project.is_none_or(|p| &c.project_id == p))
                .cloned()
                .collect();
            page_of(items, page, |c| Cursor {
                key: c.title.clone(),
                id: c.id.0.clone(),
            })
        })
    }

    async fn update_conversation(&self, conversation: &Conversation) -> StoreResult<()> {
        self.with(|t| match t.conversations.get_mut(&conversation.id) {
            Some(c) => {
                *c = conversation.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()> {
        self.with(|t| {
            if t.conversations.remove(id).is_none() {
                return Err(StoreError::NotFound);
            }
            t.messages.remove(id);
            for m in t.memories.values_mut() {
                if m.source_conversation_id.as_ref() == Some(id) {
                    m.source_conversation_id = None;
                }
            }
            Ok(())
        })?
    }

    async fn append_messages(
        &self,
        conversation: &ConversationId,
        messages: &[Message],
    ) -> StoreResult<(u64, u64)> {
        self.with(|t| {
            if !t.conversations.contains_key(conversation) {
                return Err(StoreError::NotFound);
            }
            let list = t.messages.entry(conversation.clone()).or_default();
            let mut appended = 0;
            for m in messages {
                if !list.iter().any(|x| x.id == m.id) {
                    list.push(m.clone());
                    appended += 1;
                }
            }
            Ok((appended, list.len() as u64))
        })?
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageReq,
    ) -> StoreResult<Page<Message>> {
        self.with(|t| {
            let list = t.messages.get(conversation).cloned().unwrap_or_default();
            let start = page
                .after
                .as_ref()
                .and_then(|c| c.key.parse::<usize>().ok())
                .unwrap_or(0);
            let fetched: Vec<(usize, Message)> = list
                .into_iter()
                .enumerate()
                .map(|(i, m)| (i + 1, m))
                .skip(start)
                .take(page.limit + 1)
                .collect();
            let p = Page::from_fetched(fetched, page.limit, |(pos, _)| Cursor {
                key: pos.to_string(),
                id: String::new(),
            });
            Page {
                items: p.items.into_iter().map(|(_, m)| m).collect(),
                next: p.next,
            }
        })
    }

    async fn memory(&self, id: &MemoryId) -> StoreResult<Option<Memory>> {
        self.with(|t| t.memories.get(id).cloned())
    }

    async fn save_memory(&self, memory: &Memory) -> StoreResult<()> {
        self.with(|t| {
            t.memories.insert(memory.id.clone(), memory.clone());
        })
    }

    async fn supersede_memories(
        &self,
        org: &OrgId,
        fingerprint: &str,
        keep: &MemoryId,
    ) -> StoreResult<()> {
        self.with(|t| {
            for m in t.memories.values_mut().filter(|m| {
                &m.organization_id == org
                    && m.fingerprint == fingerprint
                    && &m.id != keep
                    && m.status == "active"
            }) {
                m.status = "superseded".into();
            }
        })
    }

    async fn memory_by_fingerprint(
        &self,
        org: &OrgId,
        fingerprint: &str,
    ) -> StoreResult<Option<Memory>> {
        self.with(|t| {
            t.memories
                .values()
                .filter(|m| &m.organization_id == org && m.fingerprint == fingerprint)
                .max_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)))
                .cloned()
        })
    }

    async fn memories(&self, filter: &MemoryFilter, page: &PageReq) -> StoreResult<Page<Memory>> {
        self.with(|t| {
            let items: Vec<Memory> = t
                .memories
                .values()
                .filter(|m| memory_visible(m, filter))
                .cloned()
                .collect();
            page_of(items, page, memory_cursor)
        })
    }

    async fn memory_candidates(
        &self,
        filter: &MemoryFilter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Memory, f64)>> {
        self.with(|t| {
            let q = crate::domain::memory::normalize_text(query);
            let mut out: Vec<(Memory, f64)> = t
                .memories
                .values()
                .filter(|m| memory_visible(m, filter) && text_matches(m, query))
                .map(|m| {
                    let hay = crate::domain::memory::normalize_text(&format!(
                        "{} {}",
                        m.title.as_deref().unwrap_or(""),
                        m.content
                    ));
                    let rank = if hay.contains(&q) { 0.85 } else { 0.45 };
                    (m.clone(), rank)
                })
                .collect();
            out.sort_by(|a, b| {
                b.1.partial_cmp(&a.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(b.0.updated_at.cmp(&a.0.updated_at))
                    .then(a.0.id.cmp(&b.0.id))
            });
            out.truncate(limit);
            out
        })
    }

    async fn touch_memory(&self, id: &MemoryId, now: DateTime<Utc>) -> StoreResult<()> {
        self.with(|t| match t.memories.get_mut(id) {
            Some(m) => {
                m.times_used += 1;
                m.last_used_at = Some(now);
                m.reinforced_at = Some(now);
                m.updated_at = now;
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn mark_memories_seen(&self, _ids: &[MemoryId], _now: DateTime<Utc>) -> StoreResult<()> {
        // `last_seen_at` is not part of the record; only Postgres keeps it (for analytics).
        Ok(())
    }

    async fn delete_memory(&self, id: &MemoryId) -> StoreResult<()> {
        self.with(|t| {
            t.memories
                .remove(id)
                .map(|_| ())
                .ok_or(StoreError::NotFound)
        })?
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn insert_email_token(
        &self,
        kind: EmailTokenKind,
        hash: &str,
        user: &UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with(|t| {
            t.email_tokens
                .push((kind, hash.to_owned(), user.clone(), expires_at))
        })
    }

    async fn verify_email_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        self.with(|t| {
            let pos = t
                .email_tokens
                .iter()
                .position(|(k, h, _, _)| *k == EmailTokenKind::Verification && h == hash)?;
            let (_, _, user, expires_at) = t.email_tokens.remove(pos);
            if expires_at <= now {
                return None;
            }
            let u = t.users.get_mut(&user)?;
            u.email_verified_at.get_or_insert(now);
            Some(user)
        })
    }

    async fn reset_password_with_token(
        &self,
        hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        self.with(|t| {
            let (_, _, user, expires_at) = t
                .email_tokens
                .iter()
                .find(|(k, h, _, _)| *k == EmailTokenKind::PasswordReset && h == hash)
                .cloned()?;
            if expires_at <= now {
                t.email_tokens.retain(|(_, h, _, _)| h != hash);
                return None;
            }
            t.email_tokens
                .retain(|(k, _, u, _)| !(*k == EmailTokenKind::PasswordReset && *u == user));
            let u = t.users.get_mut(&user)?;
            u.password_hash = Some(password_hash.to_owned());
            t.sessions.update_user(&user, |s| {
                s.revoked_at.get_or_insert(now);
            });
            Some(user)
        })
    }
}
