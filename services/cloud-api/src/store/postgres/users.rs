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
        self.by_id(&USERS, id.as_str()).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = USERS.select("lower(email) = lower($1)");
        self.one(&sql, email).await
    }

    async fn list_users(&self, page: &PageReq) -> StoreResult<Page<User>> {
        let sql = USER_LIST.sql("TRUE");
        self.page(USER_LIST.start(&sql, page), page).await
    }

    async fn update_user_entitlements(&self, u: &User) -> StoreResult<()> {
        self.change(entitlements_update(u)).await
    }

    async fn replace_password_hash(&self, id: &UserId, old: &str, new: &str) -> StoreResult<bool> {
        let q = sqlx::query(
            "UPDATE cloud_users SET password_hash = $3, updated_at = now() \
             WHERE id = $1 AND password_hash = $2",
        );
        Ok(self.run(q.bind(id.as_str()).bind(old).bind(new)).await? > 0)
    }

    async fn change_password(&self, change: PasswordChange<'_>) -> StoreResult<bool> {
        self_service::change_password(&self.pool, change).await
    }

    async fn delete_account(&self, id: &UserId) -> StoreResult<AccountDeletion> {
        self_service::delete_account(&self.pool, id).await
    }
}

/// The update of the admin-managed fields of `u` (shared with the audited admin change).
pub(super) fn entitlements_update(u: &User) -> PgQuery<'_> {
    let (plan, granted, expires) = match &u.complimentary {
        Some(g) => (Some(g.plan_id.as_str()), Some(g.granted_at), g.expires_at),
        None => (None, None, None),
    };
    sqlx::query(
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
}
