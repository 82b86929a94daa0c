//! Desktop instance ids and who holds them.

use super::*;

#[async_trait]
impl InstanceStore for PgStore {
    async fn register_instance(&self, i: &Instance, max: usize) -> StoreResult<RegisterOutcome> {
        let mut tx = self.tx().await?;
        // The user row lock serialises this user's registrations, so the count below holds.
        sqlx::query("SELECT 1 FROM cloud_users WHERE id = $1 FOR UPDATE")
            .bind(i.user_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let existing = |row: Option<PgRow>| -> StoreResult<Option<RegisterOutcome>> {
            Ok(match row.as_ref().map(Instance::from_row).transpose()? {
                Some(found) if found.user_id == i.user_id => Some(RegisterOutcome::Existing(found)),
                Some(_) => Some(RegisterOutcome::Taken),
                None => None,
            })
        };
        let select = INSTANCES.select("id = $1");
        let row = sqlx::query(&select)
            .bind(i.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(outcome) = existing(row)? {
            return Ok(outcome);
        }
        let (held,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM cloud_instances WHERE user_id = $1")
                .bind(i.user_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if held >= max as i64 {
            return Ok(RegisterOutcome::LimitReached);
        }
        let inserted = sqlx::query(
            "INSERT INTO cloud_instances (id, user_id, name, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$4) ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(i.id.as_str())
        .bind(i.user_id.as_str())
        .bind(&i.name)
        .bind(i.created_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // Another user claimed it meanwhile.
            let row = sqlx::query(&select)
                .bind(i.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            return existing(row)?.ok_or_else(|| StoreError::Conflict("instance".into()));
        }
        tx.commit().await?;
        Ok(RegisterOutcome::Created(i.clone()))
    }

    async fn delete_instance(&self, user: &UserId, id: &InstanceId) -> StoreResult<bool> {
        let q = sqlx::query("DELETE FROM cloud_instances WHERE id = $1 AND user_id = $2");
        Ok(self.run(q.bind(id.as_str()).bind(user.as_str())).await? > 0)
    }

    async fn instance(&self, id: &InstanceId) -> StoreResult<Option<Instance>> {
        self.by_id(&INSTANCES, id.as_str()).await
    }

    async fn instances_of(&self, user: &UserId, page: &PageReq) -> StoreResult<Page<Instance>> {
        let sql = INSTANCE_LIST.sql("user_id = $4");
        let q = INSTANCE_LIST.start(&sql, page).bind(user.as_str());
        self.page(q, page).await
    }
}
