//! The turn queue on Postgres (`runtime_turns`, claimed `FOR UPDATE SKIP LOCKED`).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::{ACTIVE, PgStore, TURN_COLUMNS, prefixed, secs, turn_from_row};
use crate::domain::{Lease, Recovery, Turn, TurnKind, TurnStatus, UserInput, recovery_for};
use crate::store::{AbortResult, PendingTranscript, StoreResult, TurnStats, TurnStore};

#[async_trait]
impl TurnStore for PgStore {
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
            // Driven by this owner's idle sessions, each giving its first queued turn
            // (steering first): the cost follows the sessions, not the length of the queue
            // (a scan of every queued turn made each claim, and each wake-up on dispatch,
            // slower as the backlog grew). `u.status = 'queued'` in the update makes a turn
            // claimed by a concurrent statement in the meantime a miss, never a second run.
            "WITH next AS ( \
               SELECT q.id, s.lease_version AS v FROM runtime_sessions s \
               CROSS JOIN LATERAL ( \
                 SELECT t.id, (t.kind <> 'steer') AS later FROM runtime_turns t \
                 WHERE t.session_id = s.id AND t.status = 'queued' \
                 ORDER BY (t.kind <> 'steer'), t.id LIMIT 1) q \
               WHERE s.owner_id = $1 AND s.lease_expires_at > now() AND s.{ACTIVE} \
                 AND NOT EXISTS (SELECT 1 FROM runtime_turns r WHERE r.session_id = s.id \
                                 AND r.status = 'running') \
               ORDER BY q.later, q.id LIMIT 1) \
             UPDATE runtime_turns u SET status = 'running', attempts = u.attempts + 1, \
               claimed_by = $1, lease_version = next.v, started_at = now() \
             FROM next WHERE u.id = next.id AND u.status = 'queued' RETURNING {}",
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
             UPDATE runtime_turns u SET status = 'succeeded', merged_into = $4, spec_sealed = NULL, \
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

    async fn queued_turns(&self, session_id: &str) -> StoreResult<usize> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runtime_turns WHERE session_id = $1 AND status = 'queued'",
        )
        .bind(session_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(usize::try_from(n).unwrap_or(0))
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
            "UPDATE runtime_turns t SET status = $4, output = $5, error = $6, finished_at = now(), spec_sealed = NULL, \
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
                        "UPDATE runtime_turns SET status = 'failed', error = $2, spec_sealed = NULL, \
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
               finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END, \
               spec_sealed = CASE WHEN status = 'queued' THEN NULL ELSE spec_sealed END \
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
