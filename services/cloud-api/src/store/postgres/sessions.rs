//! Issued token pairs (hashes only), rotation and revocation.

use super::*;

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        insert_session(&self.pool, s).await
    }

    async fn session_by_access_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM cloud_sessions \
             WHERE access_token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
        ))
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(Session::from_row).transpose()?)
    }

    async fn session_by_refresh_hash(&self, hash: &str) -> StoreResult<Option<Session>> {
        self.one(
            &format!("SELECT {SESSION_COLS} FROM cloud_sessions WHERE refresh_token_hash = $1"),
            hash,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh(
        &self,
        refresh_hash: &str,
        next: Session,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> StoreResult<RotateOutcome> {
        // The usual case in one round trip: mark the presented session rotated (only if it is
        // live and not rotated yet; a concurrent rotation of the same token waits on the row
        // lock and then finds it rotated) and insert its successor from the same row.
        let rotated = sqlx::query(&format!(
            "WITH old AS ( \
               UPDATE cloud_sessions SET rotated_at = $1 \
                WHERE refresh_token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL \
                  AND refresh_expires_at > $1 \
               RETURNING family_id, user_id, client_id, scope, active_organization_id, auth_time) \
             INSERT INTO cloud_sessions ({SESSION_COLS}) \
             SELECT $3, family_id, user_id, client_id, scope, $4, $5, active_organization_id, \
                    auth_time, $6, $7, NULL::timestamptz, NULL::timestamptz, $8 FROM old \
             RETURNING {SESSION_COLS}"
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
        if let Some(row) = rotated {
            return Ok(RotateOutcome::Rotated(Box::new(Session::from_row(&row)?)));
        }
        // Nothing rotated: unknown, expired, or presented again after a rotation or revocation.
        let seen: Option<(String, Option<DateTime<Utc>>, bool)> = sqlx::query_as(
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
            let successor = sqlx::query(&format!(
                "SELECT {SESSION_COLS} FROM cloud_sessions \
                 WHERE access_token_hash = $1 AND family_id = $2 AND revoked_at IS NULL"
            ))
            .bind(&next.access_token_hash)
            .bind(&family)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(match successor {
                Some(row) => RotateOutcome::Repeated(Box::new(Session::from_row(&row)?)),
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

    async fn revoke_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_family(&self, family: &FamilyId, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE family_id = $1",
        )
        .bind(family.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_active_organization(&self, user: &UserId, org: &OrgId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_sessions SET active_organization_id = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_str())
        .bind(org.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM cloud_sessions WHERE expires_at < $1 \
             AND (refresh_expires_at IS NULL OR refresh_expires_at < $1)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
