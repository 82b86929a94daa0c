//! The turn queue in memory.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use super::{MemoryStore, fenced};
use crate::domain::{Lease, Recovery, Turn, TurnKind, TurnStatus, UserInput, recovery_for};
use crate::store::{AbortResult, PendingTranscript, StoreResult, TurnStats, TurnStore};

#[async_trait]
impl TurnStore for MemoryStore {
    async fn enqueue_turn(
        &self,
        session_id: &str,
        kind: TurnKind,
        input: &UserInput,
        request_id: Option<String>,
        spec_sealed: Vec<u8>,
    ) -> StoreResult<Turn> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        inner.next_turn += 1;
        let turn = Turn {
            id: inner.next_turn,
            session_id: session_id.to_owned(),
            kind,
            message: input.text.clone(),
            input: Some(input.clone()),
            merged_into: None,
            input_tokens: 0,
            output_tokens: 0,
            steps: 0,
            request_id,
            status: TurnStatus::Queued,
            attempts: 0,
            claimed_by: None,
            lease_version: None,
            output_started: false,
            output: String::new(),
            error: None,
            spec_sealed: Some(spec_sealed),
            abort_requested: false,
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        inner.turns.insert(turn.id, turn.clone());
        if let Some(s) = inner.sessions.get_mut(session_id) {
            s.last_activity_at = now;
        }
        Ok(turn)
    }

    async fn claim_turn(&self, owner: &str) -> StoreResult<Option<(Turn, Lease)>> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        let running: Vec<String> = inner
            .turns
            .values()
            .filter(|t| t.status == TurnStatus::Running)
            .map(|t| t.session_id.clone())
            .collect();
        let candidate = inner
            .turns
            .values()
            .filter(|t| t.status == TurnStatus::Queued && !running.contains(&t.session_id))
            .filter(|t| {
                inner
                    .sessions
                    .get(&t.session_id)
                    .is_some_and(|s| s.status.is_active() && s.is_owned_by(owner, now))
            })
            .min_by_key(|t| (t.kind != TurnKind::Steer, t.id))
            .map(|t| t.id);
        let Some(id) = candidate else {
            return Ok(None);
        };
        let version = inner
            .turns
            .get(&id)
            .and_then(|t| inner.sessions.get(&t.session_id))
            .map(|s| s.lease_version)
            .unwrap_or(0);
        let Some(t) = inner.turns.get_mut(&id) else {
            return Ok(None);
        };
        t.status = TurnStatus::Running;
        t.attempts += 1;
        t.claimed_by = Some(owner.to_owned());
        t.lease_version = Some(version);
        t.started_at = Some(now);
        Ok(Some((
            t.clone(),
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
        let now = Utc::now();
        let mut inner = self.lock()?;
        if fenced(&mut inner, session_id, lease).is_none() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = inner
            .turns
            .values()
            .filter(|t| {
                t.session_id == session_id && t.status == TurnStatus::Queued && t.kind == kind
            })
            .map(|t| t.id)
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(t) = inner.turns.get_mut(&id) {
                t.status = TurnStatus::Succeeded;
                t.spec_sealed = None;
                t.merged_into = Some(into);
                t.started_at = Some(now);
                t.finished_at = Some(now);
                out.push(t.clone());
            }
            // Its messages reach the transcript with the turn it was merged into.
            inner.synced.insert(id, true);
        }
        Ok(out)
    }

    async fn turns_of(&self, session_id: &str) -> StoreResult<Vec<Turn>> {
        Ok(self
            .lock()?
            .turns
            .values()
            .filter(|t| t.session_id == session_id)
            .cloned()
            .collect())
    }

    async fn queued_turns(&self, session_id: &str) -> StoreResult<usize> {
        Ok(self
            .lock()?
            .turns
            .values()
            .filter(|t| t.session_id == session_id && t.status == TurnStatus::Queued)
            .count())
    }

    async fn mark_output_started(&self, turn_id: i64, lease: &Lease) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        let Some(session_id) = inner.turns.get(&turn_id).map(|t| t.session_id.clone()) else {
            return Ok(false);
        };
        if fenced(&mut inner, &session_id, lease).is_none() {
            return Ok(false);
        }
        Ok(match inner.turns.get_mut(&turn_id) {
            Some(t)
                if t.status == TurnStatus::Running && t.lease_version == Some(lease.version) =>
            {
                t.output_started = true;
                true
            }
            _ => false,
        })
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
        let mut inner = self.lock()?;
        let Some(session_id) = inner.turns.get(&turn_id).map(|t| t.session_id.clone()) else {
            return Ok(false);
        };
        if fenced(&mut inner, &session_id, lease).is_none() {
            return Ok(false);
        }
        let done = match inner.turns.get_mut(&turn_id) {
            Some(t)
                if t.status == TurnStatus::Running && t.lease_version == Some(lease.version) =>
            {
                t.status = status;
                t.spec_sealed = None;
                t.output = output.to_owned();
                t.error = error.map(str::to_owned);
                t.finished_at = Some(Utc::now());
                t.input_tokens = stats.usage.input as i64;
                t.output_tokens = stats.usage.output as i64;
                t.steps = stats.steps;
                true
            }
            _ => false,
        };
        if done {
            inner.synced.insert(turn_id, false);
        }
        Ok(done)
    }

    async fn recover_turns(
        &self,
        session_id: &str,
        lease: &Lease,
    ) -> StoreResult<Vec<(Turn, Recovery)>> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        if fenced(&mut inner, session_id, lease).is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for t in inner.turns.values_mut().filter(|t| {
            t.session_id == session_id
                && t.status == TurnStatus::Running
                && t.lease_version.is_none_or(|v| v < lease.version)
        }) {
            let r = recovery_for(t.output_started, t.attempts);
            match r {
                Recovery::Retry => t.status = TurnStatus::Queued,
                Recovery::Fail => {
                    t.status = TurnStatus::Failed;
                    t.spec_sealed = None;
                    t.error = Some("The worker running this turn was lost.".into());
                    t.finished_at = Some(now);
                    failed.push(t.id);
                }
            }
            out.push((t.clone(), r));
        }
        for id in failed {
            inner.synced.insert(id, false);
        }
        Ok(out)
    }

    async fn request_abort(&self, session_id: &str) -> StoreResult<AbortResult> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        let mut result = AbortResult::default();
        let mut cancelled = Vec::new();
        for t in inner
            .turns
            .values_mut()
            .filter(|t| t.session_id == session_id)
        {
            match t.status {
                TurnStatus::Queued => {
                    t.status = TurnStatus::Aborted;
                    t.spec_sealed = None;
                    t.abort_requested = true;
                    t.finished_at = Some(now);
                    result.cancelled_queued.push(t.id);
                    cancelled.push(t.id);
                }
                TurnStatus::Running => {
                    t.abort_requested = true;
                    result.running.push(t.id);
                }
                _ => {}
            }
        }
        for id in cancelled {
            inner.synced.insert(id, false);
        }
        Ok(result)
    }

    async fn turns_to_cancel(&self, turn_ids: &[i64]) -> StoreResult<Vec<i64>> {
        let inner = self.lock()?;
        Ok(turn_ids
            .iter()
            .copied()
            .filter(|id| {
                inner
                    .turns
                    .get(id)
                    .is_none_or(|t| t.abort_requested || t.status != TurnStatus::Running)
            })
            .collect())
    }

    async fn claim_transcripts(&self, limit: i64) -> StoreResult<Vec<PendingTranscript>> {
        let mut inner = self.lock()?;
        let ids: Vec<i64> = inner
            .synced
            .iter()
            .filter(|(_, done)| !**done)
            .map(|(id, _)| *id)
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            inner.synced.insert(id, true);
            let Some(turn) = inner.turns.get(&id).cloned() else {
                continue;
            };
            let Some(s) = inner.sessions.get(&turn.session_id) else {
                continue;
            };
            out.push(PendingTranscript {
                user_id: s.user_id.clone(),
                organization_id: s.organization_id.clone(),
                conversation_id: s.conversation_id.clone(),
                turn,
            });
        }
        out.sort_by_key(|p| p.turn.id);
        Ok(out)
    }

    async fn unmark_synced(&self, turn_id: i64) -> StoreResult<()> {
        self.lock()?.synced.insert(turn_id, false);
        Ok(())
    }

    async fn running_claimed_by(
        &self,
        owner: &str,
        older_than: Duration,
    ) -> StoreResult<Vec<(i64, String)>> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::zero());
        Ok(self
            .lock()?
            .turns
            .values()
            .filter(|t| {
                t.status == TurnStatus::Running
                    && t.claimed_by.as_deref() == Some(owner)
                    && t.started_at.is_some_and(|s| s < cutoff)
            })
            .map(|t| (t.id, t.session_id.clone()))
            .collect())
    }

    async fn queue_depth(&self) -> StoreResult<i64> {
        Ok(self
            .lock()?
            .turns
            .values()
            .filter(|t| t.status == TurnStatus::Queued)
            .count() as i64)
    }
}
