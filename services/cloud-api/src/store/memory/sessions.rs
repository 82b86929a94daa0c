//! Issued token pairs (hashes only), rotation and revocation.

use super::*;

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        self.with(|t| t.sessions.insert(session.clone()))
    }

    async fn session_by_access_hash(
        &self,
        hash: &str,
        now: Timestamp,
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

    async fn rotate_refresh(&self, rotation: Rotation<'_>) -> StoreResult<RotateOutcome> {
        let (refresh_hash, next, now, grace) = rotation.into_parts();
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
                amr: old.amr.clone(),
                ..next
            };
            t.sessions.insert(next.clone());
            RotateOutcome::Rotated(Box::new(next))
        })
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> StoreResult<()> {
        self.with(|t| {
            if let Some(&i) = t.sessions.by_id.get(id) {
                t.sessions.rows[i].revoked_at.get_or_insert(now);
            }
        })
    }

    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> StoreResult<()> {
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

    async fn live_sessions(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<LiveSession>> {
        self.with(|t| t.live_sessions(user, now, limit))
    }

    async fn revoke_user_family(
        &self,
        user: &UserId,
        family: &FamilyId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.with(|t| t.revoke_user_family(user, family, now))
    }

    async fn revoke_other_families(
        &self,
        user: &UserId,
        keep: &FamilyId,
        now: Timestamp,
    ) -> StoreResult<u64> {
        self.with(|t| t.revoke_other_families(user, keep, now))
    }

    async fn purge_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        self.with(|t| {
            let rows = std::mem::take(&mut t.sessions).rows;
            let total = rows.len();
            for s in rows {
                let dead = s.expires_at < before && s.refresh_expires_at.is_none_or(|r| r < before);
                if !dead {
                    t.sessions.insert(s);
                }
            }
            (total - t.sessions.rows.len()) as u64
        })
    }
}
