//! Accounts: the user row, its password hash and the admin-managed entitlements.

use super::*;

#[async_trait]
impl UserStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn create_account(&self, a: NewAccount) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        let u = &a.user;
        sqlx::query(
            "INSERT INTO cloud_users (id, email, display_name, is_admin, subscription_plan, \
             password_hash, email_verified_at, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8)",
        )
        .bind(u.id.as_str())
        .bind(&u.email)
        .bind(&u.display_name)
        .bind(u.is_admin)
        .bind(&u.subscription_plan)
        .bind(&u.password_hash)
        .bind(u.email_verified_at)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await?;
        insert_org(&mut tx, &a.organization, &u.id).await?;
        insert_project_tx(&mut tx, &a.default_project).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.one(
            &format!("SELECT {USER_COLS} FROM cloud_users WHERE id = $1"),
            id.as_str(),
        )
        .await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.one(
            &format!("SELECT {USER_COLS} FROM cloud_users WHERE lower(email) = lower($1)"),
            email,
        )
        .await
    }

    async fn list_users(&self, page: &PageReq) -> StoreResult<Page<User>> {
        let (t, id) = time_after(page);
        let users: Vec<User> = sqlx::query_as(&format!(
            "SELECT {USER_COLS} FROM cloud_users \
             WHERE $1::timestamptz IS NULL OR (created_at, id COLLATE \"C\") > ($1, $2) \
             ORDER BY created_at, id COLLATE \"C\" LIMIT $3"
        ))
        .bind(t)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        Ok(Page::from_fetched(users, page.limit, |u| Cursor {
            key: time_key(u.created_at),
            id: u.id.0.clone(),
        }))
    }

    async fn update_user_entitlements(&self, u: &User) -> StoreResult<()> {
        let (plan, granted, expires) = match &u.complimentary {
            Some(g) => (Some(g.plan_id.clone()), Some(g.granted_at), g.expires_at),
            None => (None, None, None),
        };
        let done = sqlx::query(
            "UPDATE cloud_users SET is_admin = $2, subscription_plan = $3, \
             complimentary_plan_id = $4, complimentary_granted_at = $5, \
             complimentary_expires_at = $6, updated_at = now() WHERE id = $1",
        )
        .bind(u.id.as_str())
        .bind(u.is_admin)
        .bind(&u.subscription_plan)
        .bind(plan)
        .bind(granted)
        .bind(expires)
        .execute(&self.pool)
        .await?;
        changed(done)
    }

    async fn replace_password_hash(
        &self,
        user: &UserId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE cloud_users SET password_hash = $3, updated_at = now() \
             WHERE id = $1 AND password_hash = $2",
        )
        .bind(user.as_str())
        .bind(old)
        .bind(new)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
