//! Authorization codes: stored only as SHA-256 hashes, short-lived and single-use.
//!
//! The exchange first *reads* the code and checks client, redirect URI, expiry and PKCE, and only
//! then consumes it atomically: a wrong verifier does not burn a valid code (a bug of the first
//! system). A code presented again after a successful exchange is a replay: the caller revokes
//! the session family the code was exchanged for (RFC 6749 §4.1.2).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::PgPool;

use crate::domain::Timestamp;
use crate::domain::{FamilyId, StoreError, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct AuthCode {
    pub code_hash: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: UserId,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth_time: Timestamp,
    pub expires_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
    pub family_id: Option<FamilyId>,
    /// How the user signed in (see `Session::amr`).
    pub amr: String,
}

#[async_trait]
pub trait AuthCodes: Send + Sync + 'static {
    async fn insert(&self, code: &AuthCode) -> Result<(), StoreError>;
    async fn get(&self, code_hash: &str) -> Result<Option<AuthCode>, StoreError>;
    /// Marks the code consumed; `false` when it already was (a replay, or a concurrent exchange).
    async fn consume(&self, code_hash: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Records which session family the code produced, so a replay can revoke it.
    async fn bind_family(&self, code_hash: &str, family: &FamilyId) -> Result<(), StoreError>;
    /// Deletes codes that expired before `before` (housekeeping).
    async fn purge_expired(&self, before: Timestamp) -> Result<u64, StoreError>;
}

pub struct PgAuthCodes(pub PgPool);

type CodeRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Timestamp,
    Timestamp,
    Option<Timestamp>,
    Option<String>,
    String,
);

#[async_trait]
impl AuthCodes for PgAuthCodes {
    async fn insert(&self, c: &AuthCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cloud_oidc_authorization_codes
               (code_hash, client_id, redirect_uri, user_id, scope, nonce, code_challenge,
                code_challenge_method, auth_time, expires_at, amr)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'S256', $8, $9, $10)",
        )
        .bind(&c.code_hash)
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(c.user_id.as_str())
        .bind(&c.scope)
        .bind(&c.nonce)
        .bind(&c.code_challenge)
        .bind(c.auth_time)
        .bind(c.expires_at)
        .bind(&c.amr)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn get(&self, code_hash: &str) -> Result<Option<AuthCode>, StoreError> {
        let row: Option<CodeRow> = sqlx::query_as(
            "SELECT code_hash, client_id, redirect_uri, user_id, scope, nonce, code_challenge,
                    auth_time, expires_at, consumed_at, family_id, amr
               FROM cloud_oidc_authorization_codes WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&self.0)
        .await?;
        Ok(row.map(|r| AuthCode {
            code_hash: r.0,
            client_id: r.1,
            redirect_uri: r.2,
            user_id: UserId(r.3),
            scope: r.4,
            nonce: r.5,
            code_challenge: r.6,
            auth_time: r.7,
            expires_at: r.8,
            consumed_at: r.9,
            family_id: r.10.map(FamilyId),
            amr: r.11,
        }))
    }

    async fn consume(&self, code_hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE cloud_oidc_authorization_codes SET consumed_at = $2
              WHERE code_hash = $1 AND consumed_at IS NULL",
        )
        .bind(code_hash)
        .bind(now)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn bind_family(&self, code_hash: &str, family: &FamilyId) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cloud_oidc_authorization_codes SET family_id = $2 WHERE code_hash = $1",
        )
        .bind(code_hash)
        .bind(family.as_str())
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn purge_expired(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM cloud_oidc_authorization_codes WHERE expires_at < $1")
            .bind(before)
            .execute(&self.0)
            .await?;
        Ok(done.rows_affected())
    }
}

#[derive(Default)]
pub struct MemoryAuthCodes(Mutex<HashMap<String, AuthCode>>);

impl MemoryAuthCodes {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, AuthCode>) -> T,
    ) -> Result<T, StoreError> {
        self.0
            .lock()
            .map(|mut map| f(&mut map))
            .map_err(|_| StoreError::Internal("authorization code map poisoned".into()))
    }
}

#[async_trait]
impl AuthCodes for MemoryAuthCodes {
    async fn insert(&self, code: &AuthCode) -> Result<(), StoreError> {
        self.with(|m| {
            if m.contains_key(&code.code_hash) {
                Err(StoreError::Conflict("authorization code".into()))
            } else {
                m.insert(code.code_hash.clone(), code.clone());
                Ok(())
            }
        })?
    }

    async fn get(&self, code_hash: &str) -> Result<Option<AuthCode>, StoreError> {
        self.with(|m| m.get(code_hash).cloned())
    }

    async fn consume(&self, code_hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.with(|m| match m.get_mut(code_hash) {
            Some(c) if c.consumed_at.is_none() => {
                c.consumed_at = Some(now);
                true
            }
            _ => false,
        })
    }

    async fn bind_family(&self, code_hash: &str, family: &FamilyId) -> Result<(), StoreError> {
        self.with(|m| {
            if let Some(c) = m.get_mut(code_hash) {
                c.family_id = Some(family.clone());
            }
        })
    }

    async fn purge_expired(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.with(|m| {
            let n = m.len();
            m.retain(|_, c| c.expires_at >= before);
            (n - m.len()) as u64
        })
    }
}
