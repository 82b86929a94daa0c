//! [`FactorStore`] on Postgres (`cloud_user_totp`, `cloud_user_recovery_codes`,
//! `cloud_user_passkeys`).

use async_trait::async_trait;
use sqlx::PgPool;

use super::store::{Ceremony, FactorStore, PasskeyRecord, TotpRecord};
use crate::domain::{Sealed, StoreError, Timestamp, UserId};

pub struct PgFactors(pub PgPool);

type PasskeyRow = (
    String,
    String,
    String,
    serde_json::Value,
    Timestamp,
    Option<Timestamp>,
);

fn passkey_of(r: PasskeyRow) -> PasskeyRecord {
    PasskeyRecord {
        id: r.0,
        user_id: UserId(r.1),
        name: r.2,
        credential: r.3,
        created_at: r.4,
        last_used_at: r.5,
    }
}

const PASSKEY_COLUMNS: &str = "id, user_id, name, credential, created_at, last_used_at";

#[async_trait]
impl FactorStore for PgFactors {
    async fn totp(&self, user: &UserId) -> Result<Option<TotpRecord>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>, String, bool, Option<i64>)> = sqlx::query_as(
            "SELECT ciphertext, nonce, key_id, confirmed_at IS NOT NULL, last_step
               FROM cloud_user_totp WHERE user_id = $1",
        )
        .bind(user.as_str())
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(|r| TotpRecord {
            sealed: Sealed {
                ciphertext: r.0,
                nonce: r.1,
                key_id: r.2,
            },
            confirmed: r.3,
            last_step: r.4,
        }))
    }

    async fn begin_totp(&self, user: &UserId, sealed: &Sealed) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO cloud_user_totp (user_id, ciphertext, nonce, key_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE
                SET ciphertext = EXCLUDED.ciphertext, nonce = EXCLUDED.nonce,
                    key_id = EXCLUDED.key_id, last_step = NULL, created_at = now()
              WHERE cloud_user_totp.confirmed_at IS NULL",
        )
        .bind(user.as_str())
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.key_id)
        .execute(&self.0)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("totp".into()));
        }
        Ok(())
    }

    async fn confirm_totp(
        &self,
        user: &UserId,
        step: i64,
        recovery_hashes: &[String],
    ) -> Result<bool, StoreError> {
        let mut tx = self.0.begin().await?;
        let done = sqlx::query(
            "UPDATE cloud_user_totp SET confirmed_at = now(), last_step = $2
              WHERE user_id = $1 AND confirmed_at IS NULL",
        )
        .bind(user.as_str())
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM cloud_user_recovery_codes WHERE user_id = $1")
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO cloud_user_recovery_codes (user_id, code_hash)
             SELECT $1, unnest($2::text[])",
        )
        .bind(user.as_str())
        .bind(recovery_hashes)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE cloud_user_totp SET last_step = $2
              WHERE user_id = $1 AND confirmed_at IS NOT NULL
                AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user.as_str())
        .bind(step)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(
        &self,
        user: &UserId,
        hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE cloud_user_recovery_codes SET used_at = $3
              WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user.as_str())
        .bind(hash)
        .bind(now)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, user: &UserId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cloud_user_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.as_str())
        .fetch_one(&self.0)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn remove_totp(&self, user: &UserId) -> Result<(), StoreError> {
        let mut tx = self.0.begin().await?;
        for table in ["cloud_user_totp", "cloud_user_recovery_codes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn totp_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Sealed)>, StoreError> {
        let rows: Vec<(String, Vec<u8>, Vec<u8>, String)> = sqlx::query_as(
            "SELECT user_id, ciphertext, nonce, key_id FROM cloud_user_totp
              WHERE key_id <> $1 AND ($2::text IS NULL OR user_id > $2)
              ORDER BY user_id LIMIT $3",
        )
        .bind(key_id)
        .bind(after.map(UserId::as_str))
        .bind(limit as i64)
        .fetch_all(&self.0)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user, ciphertext, nonce, key_id)| {
                let sealed = Sealed {
                    ciphertext,
                    nonce,
                    key_id,
                };
                (UserId(user), sealed)
            })
            .collect())
    }

    async fn reseal_totp(
        &self,
        user: &UserId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE cloud_user_totp SET ciphertext = $3, nonce = $4, key_id = $5
              WHERE user_id = $1 AND nonce = $2",
        )
        .bind(user.as_str())
        .bind(old_nonce)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.key_id)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_passkey(&self, p: &PasskeyRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO cloud_user_passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&p.id)
        .bind(p.user_id.as_str())
        .bind(&p.name)
        .bind(&p.credential)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        let rows: Vec<PasskeyRow> = sqlx::query_as(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM cloud_user_passkeys WHERE user_id = $1
              ORDER BY created_at, id"
        ))
        .bind(user.as_str())
        .fetch_all(&self.0)
        .await?;
        Ok(rows.into_iter().map(passkey_of).collect())
    }

    async fn passkey(&self, id: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        let row: Option<PasskeyRow> = sqlx::query_as(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM cloud_user_passkeys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(passkey_of))
    }

    async fn touch_passkey(
        &self,
        id: &str,
        credential: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cloud_user_passkeys SET credential = $2, last_used_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(credential)
        .bind(now)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn remove_passkey(&self, user: &UserId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM cloud_user_passkeys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.as_str())
            .execute(&self.0)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_ceremony(&self, c: &Ceremony) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cloud_webauthn_ceremonies (id, user_id, state, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.id)
        .bind(c.user_id.as_ref().map(UserId::as_str))
        .bind(&c.state)
        .bind(c.expires_at)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Ceremony>, StoreError> {
        let row: Option<(String, Option<String>, serde_json::Value, Timestamp)> = sqlx::query_as(
            "DELETE FROM cloud_webauthn_ceremonies WHERE id = $1
             RETURNING id, user_id, state, expires_at",
        )
        .bind(id)
        .fetch_optional(&self.0)
        .await?;
        Ok(row
            .filter(|r| r.3 > now)
            .map(|(id, user_id, state, expires_at)| Ceremony {
                id,
                user_id: user_id.map(UserId),
                state,
                expires_at,
            }))
    }

    async fn purge_ceremonies(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM cloud_webauthn_ceremonies WHERE expires_at < $1")
            .bind(before)
            .execute(&self.0)
            .await?;
        Ok(done.rows_affected())
    }
}
