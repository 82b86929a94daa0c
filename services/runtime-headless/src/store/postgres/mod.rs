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

use super::{
    AbortResult, PendingTranscript, SettingsUpdate, Store, StoreError, StoreResult, TurnStats,
};
use crate::domain::{
    AcquireOutcome, Lease, NewSession, Preferences, Recovery, Session, SessionStatus,
    TranscriptMessage, Turn, TurnKind, TurnStatus, Usage, UserInput, admits, new_session_id,
    recovery_for,
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
impl Store for PgStore {
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
                "UPDATE runtime_turns SET status = 'aborted', abort_requested = true, \
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

    async fn enqueue_turn(
        &self,
        session_id: &str,
        kind: TurnKind,
        input: &UserInput,
        request_id: Option<String>,
        spec_sealed: Vec<u8>,
    ) -> StoreResult<Turn> {
        let row = sqlx::query(&format!(
            "WITH touch AS (UPDATE runtime_sessions SET last_activity_at = now() WHERE id = $1) \
             INSERT INTO runtime_turns (session_id, kind, message, request_id, spec_sealed, \
             input_json) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TURN_COLUMNS}"
        ))
        .bind(session_id)
        .bind(kind.as_str())
        .bind(&input.text)
        .bind(request_id)
        .bind(spec_sealed)
        .bind(serde_json::to_value(input).unwrap_or_default())
        .fetch_one(&self.pool)
        .await?;
        turn_from_row(&row)
    }

    async fn claim_turn(&self, owner: &str) -> StoreResult<Option<(Turn, Lease)>> {
        let row = sqlx::query(&format!(
            "WITH next AS ( \
               SELECT t.id, s.lease_version AS v FROM runtime_turns t \
               JOIN runtime_sessions s ON s.id = t.session_id \
               WHERE t.status = 'queued' AND s.owner_id = $1 AND s.lease_expires_at > now() \
                 AND s.{ACTIVE} \
                 AND NOT EXISTS (SELECT 1 FROM runtime_turns r WHERE r.session_id = t.session_id \
                                 AND r.status = 'running') \
               ORDER BY (t.kind <> 'steer'), t.id LIMIT 1 FOR UPDATE OF t SKIP LOCKED) \
             UPDATE runtime_turns u SET status = 'running', attempts = u.attempts + 1, \
               claimed_by = $1, lease_version = next.v, started_at = now() \
             FROM next WHERE u.id = next.id RETURNING {}",
            prefixed("u", TURN_COLUMNS)
        ))
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let turn = turn_from_row(&row)?;
        let version = turn.lease_version.unwrap_or(0);
        Ok(Some((
            turn,
            Lease {
                owner: owner.to_owned(),
                version,
            },
        )))
    }

    async fn take_queued(
        &self,
        session_id: &str,
        lease: &Lease,
        into: i64,
        kind: TurnKind,
        limit: i64,
    ) -> StoreResult<Vec<Turn>> {
        // Merged turns reach the transcript with the turn they joined (transcript_synced).
        let rows = sqlx::query(&format!(
            "WITH held AS (SELECT id FROM runtime_sessions WHERE id = $1 AND owner_id = $2 \
               AND lease_version = $3 AND {ACTIVE}), \
             picked AS (SELECT t.id FROM runtime_turns t, held WHERE t.session_id = held.id \
               AND t.status = 'queued' AND t.kind = $5 ORDER BY t.id LIMIT $6 FOR UPDATE OF t) \
             UPDATE runtime_turns u SET status = 'succeeded', merged_into = $4, \
               started_at = now(), finished_at = now(), transcript_synced = true \
             FROM picked WHERE u.id = picked.id RETURNING {}",
            prefixed("u", TURN_COLUMNS)
        ))
        .bind(session_id)
        .bind(&lease.owner)
        .bind(lease.version)
        .bind(into)
        .bind(kind.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut turns = rows
            .iter()
            .map(turn_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        turns.sort_by_key(|t| t.id);
        Ok(turns)
    }

    async fn turns_of(&self, session_id: &str) -> StoreResult<Vec<Turn>> {
        let rows = sqlx::query(&format!(
            "SELECT {TURN_COLUMNS} FROM runtime_turns WHERE session_id = $1 ORDER BY id"
        ))
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(turn_from_row).collect()
    }

    async fn mark_output_started(&self, turn_id: i64, lease: &Lease) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "UPDATE runtime_turns t SET output_started = true FROM runtime_sessions s \
             WHERE t.id = $1 AND t.status = 'running' AND t.lease_version = $3 \
               AND s.id = t.session_id AND s.owner_id = $2 AND s.lease_version = $3 AND s.{ACTIVE}"
        ))
        .bind(turn_id)
        .bind(&lease.owner)
        .bind(lease.version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_turn(
        &self,
        turn_id: i64,
        lease: &Lease,
        status: TurnStatus,
        output: &str,
        error: Option<&str>,
        stats: TurnStats,
    ) -> StoreResult<bool> {
        let done = sqlx::query(&format!(
            "UPDATE runtime_turns t SET status = $4, output = $5, error = $6, finished_at = now(), \
             input_tokens = $7, output_tokens = $8, steps = $9 FROM runtime_sessions s \
             WHERE t.id = $1 AND t.status = 'running' AND t.lease_version = $3 \
               AND s.id = t.session_id AND s.owner_id = $2 AND s.lease_version = $3 AND s.{ACTIVE}"
        ))
        .bind(turn_id)
        .bind(&lease.owner)
        .bind(lease.version)
        .bind(status.as_str())
        .bind(output)
        .bind(error)
        .bind(stats.usage.input as i64)
        .bind(stats.usage.output as i64)
        .bind(stats.steps)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recover_turns(
        &self,
        session_id: &str,
        lease: &Lease,
    ) -> StoreResult<Vec<(Turn, Recovery)>> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(&format!(
            "SELECT 1 FROM runtime_sessions WHERE id = $1 AND owner_id = $2 AND lease_version = $3 \
             AND {ACTIVE} FOR UPDATE"
        ))
        .bind(session_id)
        .bind(&lease.owner)
        .bind(lease.version)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {TURN_COLUMNS} FROM runtime_turns WHERE session_id = $1 AND status = 'running' \
             AND (lease_version IS NULL OR lease_version < $2) ORDER BY id FOR UPDATE"
        ))
        .bind(session_id)
        .bind(lease.version)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let mut turn = turn_from_row(row)?;
            let recovery = recovery_for(turn.output_started, turn.attempts);
            match recovery {
                Recovery::Retry => {
                    sqlx::query("UPDATE runtime_turns SET status = 'queued' WHERE id = $1")
                        .bind(turn.id)
                        .execute(&mut *tx)
                        .await?;
                    turn.status = TurnStatus::Queued;
                }
                Recovery::Fail => {
                    let error = "The worker running this turn was lost.";
                    sqlx::query(
                        "UPDATE runtime_turns SET status = 'failed', error = $2, \
                         finished_at = now() WHERE id = $1",
                    )
                    .bind(turn.id)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                    turn.status = TurnStatus::Failed;
                    turn.error = Some(error.into());
                }
            }
            out.push((turn, recovery));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn request_abort(&self, session_id: &str) -> StoreResult<AbortResult> {
        let rows = sqlx::query(
            "UPDATE runtime_turns SET abort_requested = true, \
               status = CASE WHEN status = 'queued' THEN 'aborted' ELSE status END, \
               finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END \
             WHERE session_id = $1 AND status IN ('queued', 'running') \
             RETURNING id, status",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        let mut result = AbortResult::default();
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            if status == "aborted" {
                result.cancelled_queued.push(id);
            } else {
                result.running.push(id);
            }
        }
        Ok(result)
    }

    async fn turns_to_cancel(&self, turn_ids: &[i64]) -> StoreResult<Vec<i64>> {
        if turn_ids.is_empty() {
            return Ok(Vec::new());
        }
        let still: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM runtime_turns WHERE id = ANY($1) AND status = 'running' \
             AND NOT abort_requested",
        )
        .bind(turn_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(turn_ids
            .iter()
            .copied()
            .filter(|id| !still.contains(id))
            .collect())
    }

    async fn claim_transcripts(&self, limit: i64) -> StoreResult<Vec<PendingTranscript>> {
        let rows = sqlx::query(&format!(
            "WITH pending AS ( \
               SELECT id FROM runtime_turns WHERE NOT transcript_synced \
                 AND status IN ('succeeded', 'failed', 'aborted') \
               ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) \
             UPDATE runtime_turns u SET transcript_synced = true FROM pending, runtime_sessions s \
             WHERE u.id = pending.id AND s.id = u.session_id \
             RETURNING {}, s.user_id AS s_user_id, s.organization_id AS s_organization_id, \
               s.conversation_id AS s_conversation_id",
            prefixed("u", TURN_COLUMNS)
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|row| {
                Ok(PendingTranscript {
                    turn: turn_from_row(row)?,
                    user_id: row.try_get("s_user_id")?,
                    organization_id: row.try_get("s_organization_id")?,
                    conversation_id: row.try_get("s_conversation_id")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|p| p.turn.id);
        Ok(out)
    }

    async fn unmark_synced(&self, turn_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE runtime_turns SET transcript_synced = false WHERE id = $1")
            .bind(turn_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn running_claimed_by(
        &self,
        owner: &str,
        older_than: Duration,
    ) -> StoreResult<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT id, session_id FROM runtime_turns WHERE status = 'running' AND claimed_by = $1 \
             AND started_at < now() - make_interval(secs => $2)",
        )
        .bind(owner)
        .bind(secs(older_than))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("session_id")?)))
            .collect()
    }

    async fn queue_depth(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM runtime_turns WHERE status = 'queued'",
        )
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
