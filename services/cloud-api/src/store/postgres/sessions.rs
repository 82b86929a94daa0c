//! Issued token pairs (hashes only), rotation and revocation.

use super::*;

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        Ok(insert_row(&self.pool, s).await?)
    }

    async fn session_by_access_hash(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let sql =
            SESSIONS.select("access_token_hash = $1 AND revoked_at IS NULL AND expires_at > $2");
        let q = sqlx::query_as(&sql).bind(hash).bind(now);
        Ok(q.fetch_optional(&self.pool).await?)
    }

    async fn session_by_refresh_hash(&self, hash: &str) -> StoreResult<Option<Session>> {
        self.one(&SESSIONS.select("refresh_token_hash = $1"), hash)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh(&self, rotation: Rotation<'_>) -> StoreResult<RotateOutcome> {
        let (refresh_hash, next, now, grace) = rotation.into_parts();
        // The usual case in one round trip: mark the presented session rotated (only if it is
        // live and not rotated yet; a concurrent rotation of the same token waits on the row
        // lock and then finds it rotated) and insert its successor from the same row.
        let cols = SESSIONS.cols;
        let rotated = sqlx::query_as(&format!(
            "WITH old AS ( \
               UPDATE cloud_sessions SET rotated_at = $1 \
                WHERE refresh_token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL \
                  AND refresh_expires_at > $1 \
               RETURNING family_id, user_id, client_id, scope, active_organization_id, auth_time, \
                         amr) \
             INSERT INTO cloud_sessions ({cols}) \
             SELECT $3, family_id, user_id, client_id, scope, $4, $5, active_organization_id, \
                    auth_time, $6, $7, NULL::timestamptz, NULL::timestamptz, $8, amr FROM old \
             RETURNING {cols}"
        ))
        .bind(now)
        .bind(refresh_hash)
        .bind(next.id.as_str())
        .bind(&next.access_token_hash)
        .bind(&next.refresh_token_hash)
        .bind(next.expires_at)
        .bind(next.refresh_expires_at)
        .bind(next.created_at)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(session) = rotated {
            return Ok(RotateOutcome::Rotated(Box::new(session)));
        }
        // Nothing rotated: unknown, expired, or presented again after a rotation or revocation.
        let seen: Option<(String, Option<Timestamp>, bool)> = sqlx::query_as(
            "SELECT family_id, rotated_at, revoked_at IS NOT NULL \
               FROM cloud_sessions WHERE refresh_token_hash = $1",
        )
        .bind(refresh_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some((family, rotated_at, revoked)) = seen else {
            return Ok(RotateOutcome::Invalid);
        };
        if !revoked
            && rotated_at.is_some_and(|at| crate::domain::rules::within_grace(at, now, grace))
        {
            let sql =
                SESSIONS.select("access_token_hash = $1 AND family_id = $2 AND revoked_at IS NULL");
            let successor = sqlx::query_as(&sql)
                .bind(&next.access_token_hash)
                .bind(&family)
                .fetch_optional(&self.pool)
                .await?;
            return Ok(match successor {
                Some(session) => RotateOutcome::Repeated(Box::new(session)),
                // Not derived the same way (a key change between replicas): refuse, revoke nothing.
                None => RotateOutcome::Invalid,
            });
        }
        if rotated_at.is_some() || revoked {
            self.revoke_family(&FamilyId(family), now).await?;
            return Ok(RotateOutcome::Reused);
        }
        Ok(RotateOutcome::Invalid)
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> StoreResult<()> {
        revoke_sessions(&self.pool, Sessions::One(id), now).await
    }

    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> StoreResult<()> {
        revoke_sessions(&self.pool, Sessions::Family(family), now).await
    }

    async fn set_active_organization(&self, user: &UserId, org: &OrgId) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_sessions SET active_organization_id = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL",
        );
        self.run(q.bind(user.as_str()).bind(org.as_str()))
            .await
            .map(drop)
    }

    async fn live_sessions(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<LiveSession>> {
        self_service::live_sessions(&self.pool, user, now, limit).await
    }

    async fn revoke_user_family(
        &self,
        user: &UserId,
        family: &FamilyId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self_service::revoke_user_family(&self.pool, user, family, now).await
    }

    async fn revoke_other_families(
        &self,
        user: &UserId,
        keep: &FamilyId,
        now: Timestamp,
    ) -> StoreResult<u64> {
        self_service::revoke_other_families(&self.pool, user, keep, now).await
    }

    async fn purge_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        let q = sqlx::query(
            "DELETE FROM cloud_sessions WHERE expires_at < $1 \
             AND (refresh_expires_at IS NULL OR refresh_expires_at < $1)",
        );
        self.run(q.bind(before)).await
    }
}
