//! One-time email verification and password reset tokens.

use super::*;

#[async_trait]
impl EmailTokenStore for PgStore {
    async fn insert_email_token(
        &self,
        kind: EmailTokenKind,
        hash: &str,
        user: &UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO {} (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            email_token_table(kind)
        ))
        .bind(hash)
        .bind(user.as_str())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn verify_email_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        let mut tx = self.tx().await?;
        let user: Option<String> = sqlx::query_scalar(
            "DELETE FROM cloud_email_verification_tokens WHERE token_hash = $1 \
             RETURNING CASE WHEN expires_at > $2 THEN user_id END",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(user) = &user {
            sqlx::query(
                "UPDATE cloud_users SET email_verified_at = COALESCE(email_verified_at, $2) \
                 WHERE id = $1",
            )
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(user.map(UserId))
    }

    async fn reset_password_with_token(
        &self,
        hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        let mut tx = self.tx().await?;
        let user: Option<String> = sqlx::query_scalar(
            "DELETE FROM cloud_password_reset_tokens WHERE token_hash = $1 \
             RETURNING CASE WHEN expires_at > $2 THEN user_id END",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        let Some(user) = user else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::query("DELETE FROM cloud_password_reset_tokens WHERE user_id = $1")
            .bind(&user)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE cloud_users SET password_hash = $2 WHERE id = $1")
            .bind(&user)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE user_id = $1",
        )
        .bind(&user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(UserId(user)))
    }

    async fn purge_email_tokens(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut purged = 0;
        for table in [
            email_token_table(EmailTokenKind::Verification),
            email_token_table(EmailTokenKind::PasswordReset),
        ] {
            let done = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
                .bind(before)
                .execute(&self.pool)
                .await?;
            purged += done.rows_affected();
        }
        Ok(purged)
    }
}
