//! One-time email verification and password reset tokens.

use super::*;

#[async_trait]
impl EmailTokenStore for PgStore {
    async fn insert_email_token(&self, token: &EmailToken) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {} (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            email_token_table(token.kind)
        );
        let q = sqlx::query(&sql)
            .bind(&token.hash)
            .bind(token.user.as_str());
        self.run(q.bind(token.expires_at)).await.map(drop)
    }

    async fn verify_email_token(&self, hash: &str, now: Timestamp) -> StoreResult<Option<UserId>> {
        let mut tx = self.tx().await?;
        let user = take_token(&mut tx, EmailTokenKind::Verification, hash, now).await?;
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
        now: Timestamp,
    ) -> StoreResult<Option<UserId>> {
        let mut tx = self.tx().await?;
        let Some(user) = take_token(&mut tx, EmailTokenKind::PasswordReset, hash, now).await?
        else {
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
        revoke_sessions(&mut *tx, Sessions::OfUser(&user), now).await?;
        tx.commit().await?;
        Ok(Some(UserId(user)))
    }

    async fn purge_email_tokens(&self, before: Timestamp) -> StoreResult<u64> {
        let mut purged = 0;
        for kind in [EmailTokenKind::Verification, EmailTokenKind::PasswordReset] {
            let sql = format!(
                "DELETE FROM {} WHERE expires_at < $1",
                email_token_table(kind)
            );
            purged += self.run(sqlx::query(&sql).bind(before)).await?;
        }
        purged += self_service::purge_email_changes(&self.pool, before).await?;
        Ok(purged)
    }

    async fn insert_email_change(&self, change: &EmailChange) -> StoreResult<()> {
        self_service::insert_email_change(&self.pool, change).await
    }

    async fn confirm_email_change(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<EmailChangeOutcome> {
        self_service::confirm_email_change(&self.pool, hash, now).await
    }
}

/// Deletes the token `hash` of this kind (it is single use, expired or not); its user when it
/// had not expired at `now`.
async fn take_token(
    tx: &mut Transaction<'static, Postgres>,
    kind: EmailTokenKind,
    hash: &str,
    now: Timestamp,
) -> StoreResult<Option<String>> {
    let sql = format!(
        "DELETE FROM {} WHERE token_hash = $1 \
         RETURNING CASE WHEN expires_at > $2 THEN user_id END",
        email_token_table(kind)
    );
    let user: Option<Option<String>> = sqlx::query_scalar(&sql)
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(user.flatten())
}
