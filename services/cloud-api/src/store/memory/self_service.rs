//! Account self-service on the in-memory tables: what the `UserStore`, `SessionStore` and
//! `EmailTokenStore` methods of self-service do, each under the one lock (so each is atomic),
//! with Postgres's cascades (`ON DELETE CASCADE` / `SET NULL`) written out for a deleted account.

use std::collections::{HashMap, HashSet};

use super::*;

/// Whether a row keeps its family signed in (see `SessionStore::live_sessions`).
fn is_live(s: &Session, now: Timestamp) -> bool {
    s.revoked_at.is_none()
        && (s.expires_at > now
            || (s.rotated_at.is_none() && s.refresh_expires_at.is_some_and(|r| r > now)))
}

/// When a row's last live token expires (its access token, or its refresh token if unrotated).
fn last_expiry(s: &Session) -> Timestamp {
    match s.refresh_expires_at.filter(|_| s.rotated_at.is_none()) {
        Some(r) => r.max(s.expires_at),
        None => s.expires_at,
    }
}

impl SessionTable {
    /// Keeps only the rows for which `keep` holds (indexes rebuilt).
    fn retain(&mut self, keep: impl Fn(&Session) -> bool) {
        let rows = std::mem::take(self).rows;
        for s in rows.into_iter().filter(|s| keep(s)) {
            self.insert(s);
        }
    }

    fn of_user(&self, user: &UserId) -> impl Iterator<Item = &Session> {
        let idxs = self.by_user.get(user).into_iter().flatten();
        idxs.map(|&i| &self.rows[i])
    }
}

impl Tables {
    pub(super) fn live_sessions(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: usize,
    ) -> Vec<LiveSession> {
        let mut families: HashMap<&FamilyId, Vec<&Session>> = HashMap::new();
        for s in self.sessions.of_user(user) {
            families.entry(&s.family_id).or_default().push(s);
        }
        let mut live: Vec<LiveSession> = families
            .into_iter()
            .filter(|(_, rows)| rows.iter().any(|s| is_live(s, now)))
            .filter_map(|(family, rows)| {
                let first = rows.iter().min_by_key(|s| s.created_at)?;
                let unrevoked = rows.iter().filter(|s| s.revoked_at.is_none());
                Some(LiveSession {
                    family_id: family.clone(),
                    client_id: first.client_id.clone(),
                    scope: first.scope.clone(),
                    created_at: first.created_at,
                    auth_time: rows.iter().map(|s| s.auth_time).max()?,
                    last_used_at: rows.iter().map(|s| s.created_at).max()?,
                    expires_at: unrevoked.map(|s| last_expiry(s)).max()?,
                })
            })
            .collect();
        live.sort_by(|a, b| (b.created_at, &a.family_id.0).cmp(&(a.created_at, &b.family_id.0)));
        live.truncate(limit);
        live
    }

    pub(super) fn revoke_user_family(
        &mut self,
        user: &UserId,
        family: &FamilyId,
        now: Timestamp,
    ) -> bool {
        let live = self
            .sessions
            .of_user(user)
            .any(|s| &s.family_id == family && is_live(s, now));
        if live {
            self.sessions.update_family(family, |s| {
                s.revoked_at.get_or_insert(now);
            });
        }
        live
    }

    pub(super) fn revoke_other_families(
        &mut self,
        user: &UserId,
        keep: &FamilyId,
        now: Timestamp,
    ) -> u64 {
        let mut ended = HashSet::new();
        self.sessions.update_user(user, |s| {
            if &s.family_id != keep && s.revoked_at.is_none() {
                if is_live(s, now) {
                    ended.insert(s.family_id.clone());
                }
                s.revoked_at = Some(now);
            }
        });
        ended.len() as u64
    }

    pub(super) fn change_password(&mut self, c: PasswordChange<'_>) -> bool {
        match self.users.get_mut(c.user) {
            Some(u) if u.password_hash.as_deref() == Some(c.old_hash) => {
                u.password_hash = Some(c.new_hash.to_owned());
            }
            _ => return false,
        }
        self.email_tokens
            .retain(|e| !(e.kind == EmailTokenKind::PasswordReset && &e.user == c.user));
        self.revoke_other_families(c.user, c.keep, c.now);
        true
    }

    pub(super) fn insert_email_change(&mut self, change: &EmailChange) {
        self.email_changes.retain(|c| c.user != change.user);
        self.email_changes.push(change.clone());
    }

    pub(super) fn confirm_email_change(
        &mut self,
        hash: &str,
        now: Timestamp,
    ) -> EmailChangeOutcome {
        let Some(pos) = self.email_changes.iter().position(|c| c.hash == hash) else {
            return EmailChangeOutcome::Invalid;
        };
        let change = self.email_changes.remove(pos);
        if change.expires_at <= now {
            return EmailChangeOutcome::Invalid;
        }
        let new_email = change.new_email.to_lowercase();
        let taken = self
            .users
            .values()
            .any(|u| u.id != change.user && u.email.to_lowercase() == new_email);
        if taken {
            return EmailChangeOutcome::Taken;
        }
        let Some(u) = self.users.get_mut(&change.user) else {
            return EmailChangeOutcome::Invalid;
        };
        let old_email = std::mem::replace(&mut u.email, new_email.clone());
        u.email_verified_at = Some(now);
        self.email_tokens.retain(|e| e.user != change.user);
        EmailChangeOutcome::Changed {
            user: change.user,
            old_email,
            new_email,
        }
    }

    pub(super) fn delete_account(&mut self, id: &UserId) -> StoreResult<AccountDeletion> {
        if !self.users.contains_key(id) {
            return Err(StoreError::NotFound);
        }
        let orgs: Vec<Organization> = rows_where(&self.orgs, |o| {
            (o.is_personal && o.owner_user_id.as_ref() == Some(id))
                || self
                    .memberships
                    .iter()
                    .any(|m| m.organization_id == o.id && &m.user_id == id)
        });
        let memberships: Vec<(OrgId, UserId, Role)> = self
            .memberships
            .iter()
            .filter(|m| orgs.iter().any(|o| o.id == m.organization_id))
            .map(|m| (m.organization_id.clone(), m.user_id.clone(), m.role))
            .collect();
        let doomed = match crate::store::self_service::plan_deletion(id, &orgs, &memberships) {
            Ok(doomed) => doomed,
            Err(blocking) => return Ok(AccountDeletion::LastOwner(blocking)),
        };
        for org in &doomed {
            self.delete_org(org);
        }
        self.delete_user(id);
        Ok(AccountDeletion::Deleted {
            organizations: doomed,
        })
    }

    /// An organization and what `ON DELETE CASCADE` / `SET NULL` does with it in Postgres.
    fn delete_org(&mut self, org: &OrgId) {
        self.orgs.remove(org);
        self.memberships.retain(|m| &m.organization_id != org);
        self.invites.retain(|i| &i.organization_id != org);
        self.providers.retain(|_, p| &p.organization_id != org);
        self.projects.retain(|_, p| &p.organization_id != org);
        let gone: Vec<ConversationId> = self
            .conversations
            .values()
            .filter(|c| &c.organization_id == org)
            .map(|c| c.id.clone())
            .collect();
        for c in &gone {
            self.conversations.remove(c);
            self.messages.remove(c);
        }
        self.memories.retain(|_, m| &m.organization_id != org);
        for m in self.memories.values_mut() {
            if m.source_conversation_id
                .as_ref()
                .is_some_and(|c| gone.contains(c))
            {
                m.source_conversation_id = None;
            }
        }
        for s in &mut self.sessions.rows {
            if s.active_organization_id.as_ref() == Some(org) {
                s.active_organization_id = None;
            }
        }
    }

    /// A user row and what `ON DELETE CASCADE` / `SET NULL` does with it in Postgres.
    fn delete_user(&mut self, id: &UserId) {
        let mine = |u: &Option<UserId>| u.as_ref() == Some(id);
        self.users.remove(id);
        self.memberships.retain(|m| &m.user_id != id);
        self.sessions.retain(|s| &s.user_id != id);
        self.instances.retain(|_, i| &i.user_id != id);
        self.memories.retain(|_, m| !mine(&m.user_id));
        self.email_tokens.retain(|e| &e.user != id);
        self.email_changes.retain(|c| &c.user != id);
        for o in self.orgs.values_mut().filter(|o| mine(&o.owner_user_id)) {
            o.owner_user_id = None;
        }
        for i in self.invites.iter_mut().filter(|i| mine(&i.inviter_user_id)) {
            i.inviter_user_id = None;
        }
        for p in self.providers.values_mut().filter(|p| mine(&p.created_by)) {
            p.created_by = None;
        }
        for p in self.projects.values_mut().filter(|p| mine(&p.created_by)) {
            p.created_by = None;
        }
        for c in self
            .conversations
            .values_mut()
            .filter(|c| mine(&c.created_by))
        {
            c.created_by = None;
        }
        for m in self.memories.values_mut().filter(|m| mine(&m.created_by)) {
            m.created_by = None;
        }
    }
}
