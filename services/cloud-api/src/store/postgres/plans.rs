//! Subscription plans and the runtime sessions counted against them.

use super::*;

#[async_trait]
impl PlanStore for PgStore {
    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        Ok(sqlx::query_as(
            "SELECT id, label, parallel_sessions_limit, is_default, is_hidden \
             FROM cloud_subscription_plans ORDER BY id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn update_plan(&self, id: &str, p: &PlanPatch) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        patch_plan(&mut tx, id, p).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn active_runtime_sessions(&self, user: &UserId, now: Timestamp) -> StoreResult<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runtime_sessions WHERE user_id = $1 \
             AND status NOT IN ('stopped','error') AND lease_expires_at > $2",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}

/// Applies `p` to plan `id` in `tx` (shared with the audited admin change); `NotFound` for an
/// unknown plan.
pub(super) async fn patch_plan(
    tx: &mut Transaction<'static, Postgres>,
    id: &str,
    p: &PlanPatch,
) -> StoreResult<()> {
    let exists = sqlx::query("SELECT 1 FROM cloud_subscription_plans WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    if p.is_default == Some(true) {
        sqlx::query(
            "UPDATE cloud_subscription_plans SET is_default = false, updated_at = now() \
             WHERE is_default AND id <> $1",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    let limit = p
        .parallel_sessions_limit
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    sqlx::query(
        "UPDATE cloud_subscription_plans SET label = COALESCE($2, label), \
         parallel_sessions_limit = COALESCE($3, parallel_sessions_limit), \
         is_default = COALESCE($4, is_default), is_hidden = COALESCE($5, is_hidden), \
         updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&p.label)
    .bind(limit)
    .bind(p.is_default)
    .bind(p.is_hidden)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
