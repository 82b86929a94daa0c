//! Pending organization invites.

use super::*;

#[async_trait]
impl InviteStore for PgStore {
    async fn insert_invite(&self, i: &Invite) -> StoreResult<()> {
        let q = sqlx::query(
            "INSERT INTO cloud_organization_invites (id, token_hash, organization_id, invited_email, \
             role, inviter_user_id, expires_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(i.id.as_str())
        .bind(&i.token_hash)
        .bind(i.organization_id.as_str())
        .bind(&i.invited_email)
        .bind(i.role.as_str())
        .bind(i.inviter_user_id.as_ref().map(|u| u.0.as_str()))
        .bind(i.expires_at)
        .bind(i.created_at);
        self.run(q).await.map(drop)
    }

    async fn invite_by_token_hash(&self, hash: &str) -> StoreResult<Option<Invite>> {
        self.one(&INVITES.select("token_hash = $1"), hash).await
    }

    async fn invites(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Invite>> {
        let sql =
            INVITE_LIST.sql("organization_id = $4 AND accepted_at IS NULL AND revoked_at IS NULL");
        let q = INVITE_LIST.start(&sql, page).bind(org.as_str());
        self.page(q, page).await
    }

    async fn recent_invite_counts(
        &self,
        org: &OrgId,
        inviter: &UserId,
        since: Timestamp,
    ) -> StoreResult<(u64, u64)> {
        let (in_org, by_inviter): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE organization_id = $1), \
                    count(*) FILTER (WHERE inviter_user_id = $2) \
             FROM cloud_organization_invites \
             WHERE created_at > $3 AND (organization_id = $1 OR inviter_user_id = $2)",
        )
        .bind(org.as_str())
        .bind(inviter.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((in_org.max(0) as u64, by_inviter.max(0) as u64))
    }

    #[tracing::instrument(skip_all)]
    async fn accept_invite(&self, id: &InviteId, user: &UserId, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        let row = sqlx::query(
            "UPDATE cloud_organization_invites SET accepted_at = $2 \
             WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING organization_id, role",
        )
        .bind(id.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let org: String = row.try_get("organization_id")?;
        let role: String = row.try_get("role")?;
        // Keep the stronger of an existing role and the invited one.
        sqlx::query(
            "INSERT INTO cloud_organization_memberships (organization_id, user_id, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (organization_id, user_id) DO UPDATE SET role = CASE \
               WHEN array_position(ARRAY['owner','admin','member','billing_viewer'], cloud_organization_memberships.role) \
                  <= array_position(ARRAY['owner','admin','member','billing_viewer'], EXCLUDED.role) \
               THEN cloud_organization_memberships.role ELSE EXCLUDED.role END, updated_at = $4",
        )
        .bind(&org)
        .bind(user.as_str())
        .bind(&role)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_invite(&self, org: &OrgId, id: &InviteId, now: Timestamp) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_organization_invites SET revoked_at = $3 \
             WHERE id = $1 AND organization_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        );
        self.change(q.bind(id.as_str()).bind(org.as_str()).bind(now))
            .await
    }
}
