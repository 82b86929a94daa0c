//! Pending organization invites.

use super::*;

#[async_trait]
impl InviteStore for MemoryStore {
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
            page_of(items, page)
        })
    }

    async fn recent_invite_counts(
        &self,
        org: &OrgId,
        inviter: &UserId,
        since: Timestamp,
    ) -> StoreResult<(u64, u64)> {
        self.with(|t| {
            let recent = t.invites.iter().filter(|i| i.created_at > since);
            let (mut in_org, mut by_inviter) = (0, 0);
            for i in recent {
                in_org += u64::from(&i.organization_id == org);
                by_inviter += u64::from(i.inviter_user_id.as_ref() == Some(inviter));
            }
            (in_org, by_inviter)
        })
    }

    async fn accept_invite(&self, id: &InviteId, user: &UserId, now: Timestamp) -> StoreResult<()> {
        self.try_with(|t| {
            let Some(inv) = t.invites.iter_mut().find(|i| {
                &i.id == id
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
        })
    }

    async fn revoke_invite(&self, org: &OrgId, id: &InviteId, now: Timestamp) -> StoreResult<()> {
        self.try_with(|t| {
            let pending = t.invites.iter_mut().find(|i| {
                &i.id == id
                    && &i.organization_id == org
                    && i.accepted_at.is_none()
                    && i.revoked_at.is_none()
            });
            let i = pending.ok_or(StoreError::NotFound)?;
            i.revoked_at = Some(now);
            Ok(())
        })
    }
}
