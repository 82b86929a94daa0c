//! Postgres store: the shared state of every replica.
//!
//! - Acquire runs in one transaction under `pg_advisory_xact_lock(hashtext(user_id))`: reuse
//!   lookup first, then count + insert, so concurrent creates never exceed the plan's limit.
//! - Leases: `owner_id`, `lease_expires_at`, `lease_version` (fencing token, bumped on every
//!   change of owner). Worker writes are `WHERE id = $1 AND owner_id = $2 AND lease_version = $3`.
//! - Turns are claimed with `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

mod messages;
mod turns;
mod workspaces;

use super::{SessionStore, SettingsUpdate, StoreError, StoreResult};
use crate::domain::{
    AcquireOutcome, Lease, NewSession, Preferences, Session, SessionStatus, TranscriptMessage,
    Turn, TurnKind, TurnStatus, Usage, UserInput, admits, new_session_id,
};

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const ACTIVE: &str = "status NOT IN ('stopped', 'error')";

const SESSION_COLUMNS: &str = "id, user_id, organization_id, conversation_id, project_id, \
    cloud_instance_id, owner_id, lease_expires_at, lease_version, status, model_provider, \
    model_id, thinking_level, subscription_plan, subscription_label, parallel_sessions_limit, \
    context_json, preferences, last_activity_at, created_at, updated_at";

const TURN_COLUMNS: &str = "id, session_id, kind, message, request_id, status, attempts, \
    claimed_by, lease_version, output_started, output, error, spec_sealed, abort_requested, \
    created_at, started_at, finished_at, input_json, merged_into, input_tokens, output_tokens, steps";

fn secs(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

fn session_from_row(row: &PgRow) -> StoreResult<Session> {
    let status: String = row.try_get("status")?;
    let context: serde_json::Value = row.try_get("context_json")?;
    let preferences: serde_json::Value = row.try_get("preferences")?;
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        organization_id: row.try_get("organization_id")?,
        conversation_id: row.try_get("conversation_id")?,
        project_id: row.try_get("project_id")?,
        cloud_instance_id: row.try_get("cloud_instance_id")?,
        owner_id: row.try_get("owner_id")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        lease_version: row.try_get("lease_version")?,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::Other(format!("unknown session status {status:?}")))?,
        model_provider: row.try_get("model_provider")?,
        model_id: row.try_get("model_id")?,
        thinking_level: row.try_get("thinking_level")?,
        subscription_plan: row.try_get("subscription_plan")?,
        subscription_label: row.try_get("subscription_label")?,
        parallel_sessions_limit: row.try_get("parallel_sessions_limit")?,
        context: serde_json::from_value::<Vec<TranscriptMessage>>(context).unwrap_or_default(),
        preferences: serde_json::from_value::<Preferences>(preferences).unwrap_or_default(),
        last_activity_at: row.try_get("last_activity_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn turn_from_row(row: &PgRow) -> StoreResult<Turn> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(Turn {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        kind: TurnKind::parse(&kind)
            .ok_or_else(|| StoreError::Other(format!("unknown turn kind {kind:?}")))?,
        message: row.try_get("message")?,
        input: row
            .try_get::<Option<serde_json::Value>, _>("input_json")?
            .and_then(|v| serde_json::from_value::<UserInput>(v).ok()),
        merged_into: row.try_get("merged_into")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        steps: row.try_get("steps")?,
        request_id: row.try_get("request_id")?,
        status: TurnStatus::parse(&status)
            .ok_or_else(|| StoreError::Other(format!("unknown turn status {status:?}")))?,
        attempts: row.try_get("attempts")?,
        claimed_by: row.try_get("claimed_by")?,
        lease_version: row.try_get("lease_version")?,
        output_started: row.try_get("output_started")?,
        output: row.try_get("output")?,
        error: row.try_get("error")?,
        spec_sealed: row.try_get("spec_sealed")?,
        abort_requested: row.try_get("abort_requested")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn sessions(rows: &[PgRow]) -> StoreResult<Vec<Session>> {
    rows.iter().map(session_from_row).collect()
}

async fn count_user_active(tx: &mut Transaction<'_, Postgres>, user_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar::<_, i64>(&format!(
        "SELECT count(*) FROM runtime_sessions WHERE user_id = $1 AND {ACTIVE}"
    ))
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?)
}

#[async_trait]
impl SessionStore for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn acquire(
        &self,
        new: NewSession,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<AcquireOutcome> {
        let limit = i64::from(new.parallel_sessions_limit);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&new.user_id)
            .execute(&mut *tx)
            .await?;
        // Reuse first: a user at the limit still gets back to the conversation's session.
        let existing = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS}, lease_expires_at <= now() AS expired FROM runtime_sessions \
             WHERE user_id = $1 AND conversation_id = $2 AND {ACTIVE} FOR UPDATE"
        ))
        .bind(&new.user_id)
        .bind(&new.conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let expired: bool = row.try_get("expired")?;
            let id: String = row.try_get("id")?;
            let row = if expired {
                sqlx::query(&format!(
                    "UPDATE runtime_sessions SET owner_id = $2, lease_version = lease_version + 1, \
                     lease_expires_at = now() + make_interval(secs => $3), updated_at = now(), \
                     last_activity_at = now() WHERE id = $1 RETURNING {SESSION_COLUMNS}"
                ))
                .bind(&id)
                .bind(owner)
                .bind(secs(ttl))
                .fetch_one(&mut *tx)
                .await?
            } else {
                sqlx::query(&format!(
                    "UPDATE runtime_sessions SET last_activity_at = now() WHERE id = $1 \
                     RETURNING {SESSION_COLUMNS}"
                ))
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?
            };
            let session = session_from_row(&row)?;
            let active = count_user_active(&mut tx, &new.user_id).await?;
            tx.commit().await?;
            return Ok(AcquireOutcome::Reused {
                session,
                taken_over: expired,
                usage: Usage::new(active, limit),
            });
        }
        let active = count_user_active(&mut tx, &new.user_id).await?;
        if !admits(active, limit) {
            tx.rollback().await?;
            return Ok(AcquireOutcome::QuotaExceeded {
                usage: Usage::new(active, limit),
            });
        }
        let context = serde_json::to_value(&new.context).unwrap_or_default();
        let row = sqlx::query(&format!(
            "INSERT INTO runtime_sessions (id, user_id, organization_id, conversation_id, \
             project_id, cloud_instance_id, owner_id, lease_expires_at, lease_version, status, \
             model_provider, model_id, thinking_level, subscription_plan, subscription_label, \
             parallel_sessions_limit, context_json) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             now() + make_interval(secs => $8), 1, 'ready', $9, $10, $11, $12, $13, $14, $15) \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(new_session_id())
        .bind(&new.user_id)
        .bind(&new.organization_id)
        .bind(&new.conversation_id)
        .bind(&new.project_id)
        .bind(&new.cloud_instance_id)
        .bind(owner)
        .bind(secs(ttl))
        .bind(&new.model_provider)
        .bind(&new.model_id)
        .bind(&new.thinking_level)
        .bind(&new.subscription_plan)
        .bind(&new.subscription_label)
        .bind(new.parallel_sessions_limit)
        .bind(context)
        .fetch_one(&mut *tx)
        .await?;
        let session = session_from_row(&row)?;
        tx.commit().await?;
        Ok(AcquireOutcome::Created {
            session,
            usage: Usage::new(active + 1, limit),
        })
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM runtime_sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn usage(&self, user_id: &str, limit: i64) -> StoreResult<Usage> {
        let active = sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM runtime_sessions WHERE user_id = $1 AND {ACTIVE}"
        ))
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Usage::new(active, limit))
    }

    async fn update_settings(&self, id: &str, update: SettingsUpdate) -> StoreResult<bool> {
        let (set_model, provider, model) = match update.model {
            Some((p, m)) => (true, p, m),
            None => (false, None, None),
        };
        let (set_level, level) = match update.thinking_level {
            Some(l) => (true, l),
            None => (false, None),
        };
        let preferences = update
            .preferences
            .map(|p| serde_json::to_value(p).unwrap_or_default());
        let done = sqlx::query(&format!(
            "UPDATE runtime_sessions SET \
             model_provider = CASE WHEN $2 THEN $3 ELSE model_provider END, \
             model_id = CASE WHEN $2 THEN $4 ELSE model_id END, \
             thinking_level = CASE WHEN $5 THEN $6 ELSE thinking_level END, \
             preferences = COALESCE($7, preferences), \
             updated_at = now(), last_activity_at = now() WHERE id = $1 AND {ACTIVE}"
        ))
        .bind(id)
        .bind(set_model)
        .bind(provider)
        .bind(model)
        .bind(set_level)
        .bind(level)
        .bind(preferences)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_activity(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE runtime_sessions SET last_activity_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_context(&self, id: &str, context: &[TranscriptMessage]) -> StoreResult<()> {
        sqlx::query("UPDATE runtime_sessions SET context_json = $2 WHERE id = $1")
            .bind(id)
            .bind(serde_json::to_value(context).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn stop(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE runtime_sessions SET status = 'stopped', owner_id = NULL, \
             lease_version = lease_version + 1, lease_expires_at = now(), updated_at = now() \
             WHERE id = $1 AND {ACTIVE}"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE runtime_turns SET status = 'aborted', abort_requested = true, spec_sealed = NULL, \
                 finished_at = now() WHERE session_id = $1 AND status IN ('queued', 'running')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_over(
        &self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "UPDATE runtime_sessions SET owner_id = $2, lease_version = lease_version + 1, \
             lease_expires_at = now() + make_interval(secs => $3), updated_at = now() \
             WHERE id = $1 AND {ACTIVE} AND (lease_expires_at <= now() OR owner_id = $2) \
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(id)
        .bind(owner)
        .bind(secs(ttl))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn heartbeat(&self, owner: &str, ttl: Duration) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(&format!(
            "UPDATE runtime_sessions SET lease_expires_at = now() + make_interval(secs => $2) \
             WHERE owner_id = $1 AND {ACTIVE} RETURNING id, lease_version"
        ))
        .bind(owner)
        .bind(secs(ttl))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("lease_version")?)))
            .collect()
    }

    async fn claim_expired(
        &self,
        owner: &str,
        ttl: Duration,
        limit: i64,
    ) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "UPDATE runtime_sessions s SET owner_id = $1, lease_version = s.lease_version + 1, \
             lease_expires_at = now() + make_interval(secs => $2), updated_at = now() \
             FROM (SELECT id FROM runtime_sessions WHERE {ACTIVE} AND lease_expires_at <= now() \
                   ORDER BY lease_expires_at LIMIT $3 FOR UPDATE SKIP LOCKED) e \
             WHERE s.id = e.id RETURNING {}",
            prefixed("s", SESSION_COLUMNS)
        ))
        .bind(owner)
        .bind(secs(ttl))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        sessions(&rows)
    }

    async fn reclaim_own(&self, owner: &str, ttl: Duration) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "UPDATE runtime_sessions SET lease_version = lease_version + 1, \
             lease_expires_at = now() + make_interval(secs => $2), updated_at = now() \
             WHERE owner_id = $1 AND {ACTIVE} RETURNING {SESSION_COLUMNS}"
        ))
        .bind(owner)
        .bind(secs(ttl))
        .fetch_all(&self.pool)
        .await?;
        sessions(&rows)
    }

    async fn release(&self, owner: &str) -> StoreResult<u64> {
        let done = sqlx::query(&format!(
            "UPDATE runtime_sessions SET lease_expires_at = now() WHERE owner_id = $1 AND {ACTIVE}"
        ))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn expire_idle(&self, idle: Duration) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "UPDATE runtime_sessions s SET status = 'stopped', owner_id = NULL, \
             lease_version = s.lease_version + 1, lease_expires_at = now(), updated_at = now() \
             FROM (SELECT id FROM runtime_sessions r WHERE {ACTIVE} AND status <> 'streaming' \
                   AND last_activity_at < now() - make_interval(secs => $1) \
                   AND NOT EXISTS (SELECT 1 FROM runtime_turns t WHERE t.session_id = r.id \
                                   AND t.status IN ('queued', 'running')) \
                   LIMIT 100 FOR UPDATE SKIP LOCKED) e \
             WHERE s.id = e.id RETURNING {}",
            prefixed("s", SESSION_COLUMNS)
        ))
        .bind(secs(idle))
        .fetch_all(&self.pool)
        .await?;
        sessions(&rows)
    }

    async fn set_status(
        &self,
        id: &str,
        lease: &Lease,
        status: SessionStatus,
    ) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "UPDATE runtime_sessions SET status = $4, updated_at = now(), last_activity_at = now() \
             WHERE id = $1 AND owner_id = $2 AND lease_version = $3 AND {ACTIVE}"
        ))
        .bind(id)
        .bind(&lease.owner)
        .bind(lease.version)
        .bind(status.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_active(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM runtime_sessions WHERE {ACTIVE}"
        ))
        .fetch_one(&self.pool)
        .await?)
    }
}

/// `"a, b"` → `"p.a, p.b"` (qualifies columns in statements that join).
fn prefixed(p: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{p}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
