//! In-memory store: one replica, nothing survives a restart. Same rules as Postgres; one mutex
//! makes every operation atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AbortResult, MessageStore, PendingTranscript, SettingsUpdate, Store, StoreError, StoreResult,
    StoredMessage, TurnStats,
};
use crate::domain::message::AgentMessage;
use crate::domain::{
    AcquireOutcome, Lease, NewSession, Recovery, Session, SessionStatus, TranscriptMessage, Turn,
    TurnKind, TurnStatus, Usage, UserInput, admits, new_session_id, recovery_for,
};

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    turns: BTreeMap<i64, Turn>,
    synced: HashMap<i64, bool>,
    next_turn: i64,
    /// Per session, in order of first write.
    messages: HashMap<String, Vec<StoredMessage>>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Other("memory store lock poisoned".into()))
    }
}

fn lease_until(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60))
}

fn active_count(inner: &Inner, user_id: &str) -> i64 {
    inner
        .sessions
        .values()
        .filter(|s| s.user_id == user_id && s.status.is_active())
        .count() as i64
}

fn fenced<'a>(inner: &'a mut Inner, id: &str, lease: &Lease) -> Option<&'a mut Session> {
    inner.sessions.get_mut(id).filter(|s| {
        s.status.is_active()
            && s.owner_id.as_deref() == Some(lease.owner.as_str())
            && s.lease_version == lease.version
    })
}

fn take(s: &mut Session, owner: &str, now: DateTime<Utc>, ttl: Duration) {
    s.owner_id = Some(owner.to_owned());
    s.lease_version += 1;
    s.lease_expires_at = lease_until(now, ttl);
    s.updated_at = now;
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn acquire(
        &self,
        new: NewSession,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<AcquireOutcome> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        let limit = i64::from(new.parallel_sessions_limit);
        let existing = inner
            .sessions
            .values_mut()
            .find(|s| {
                s.user_id == new.user_id
                    && s.conversation_id == new.conversation_id
                    && s.status.is_active()
            })
            .map(|s| {
                let taken_over = s.lease_expired(now);
                if taken_over {
                    take(s, owner, now, ttl);
                }
                s.last_activity_at = now;
                (s.clone(), taken_over)
            });
        if let Some((session, taken_over)) = existing {
            let usage = Usage::new(active_count(&inner, &new.user_id), limit);
            return Ok(AcquireOutcome::Reused {
                session,
                taken_over,
                usage,
            });
        }
        let active = active_count(&inner, &new.user_id);
        if !admits(active, limit) {
            return Ok(AcquireOutcome::QuotaExceeded {
                usage: Usage::new(active, limit),
            });
        }
        let session = Session {
            id: new_session_id(),
            user_id: new.user_id,
            organization_id: new.organization_id,
            conversation_id: new.conversation_id,
            project_id: new.project_id,
            cloud_instance_id: new.cloud_instance_id,
            owner_id: Some(owner.to_owned()),
            lease_expires_at: lease_until(now, ttl),
            lease_version: 1,
            status: SessionStatus::Ready,
            model_provider: new.model_provider,
            model_id: new.model_id,
            thinking_level: new.thinking_level,
            subscription_plan: new.subscription_plan,
            subscription_label: new.subscription_label,
            parallel_sessions_limit: new.parallel_sessions_limit,
            context: new.context,
            preferences: Default::default(),
            last_activity_at: now,
            created_at: now,
            updated_at: now,
        };
        inner.sessions.insert(session.id.clone(), session.clone());
        Ok(AcquireOutcome::Created {
            session,
            usage: Usage::new(active + 1, limit),
        })
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Session>> {
        Ok(self.lock()?.sessions.get(id).cloned())
    }

    async fn usage(&self, user_id: &str, limit: i64) -> StoreResult<Usage> {
        Ok(Usage::new(active_count(&*self.lock()?, user_id), limit))
    }

    async fn update_settings(&self, id: &str, update: SettingsUpdate) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        let Some(s) = inner.sessions.get_mut(id).filter(|s| s.status.is_active()) else {
            return Ok(false);
        };
        if let Some((p, m)) = update.model {
            s.model_provider = p;
            s.model_id = m;
        }
        if let Some(t) = update.thinking_level {
            s.thinking_level = t;
        }
        if let Some(p) = update.preferences {
            s.preferences = p;
        }
        s.updated_at = Utc::now();
        s.last_activity_at = s.updated_at;
        Ok(true)
    }

    async fn touch_activity(&self, id: &str) -> StoreResult<()> {
        if let Some(s) = self.lock()?.sessions.get_mut(id) {
            s.last_activity_at = Utc::now();
        }
        Ok(())
    }

    async fn set_context(&self, id: &str, context: &[TranscriptMessage]) -> StoreResult<()> {
        if let Some(s) = self.lock()?.sessions.get_mut(id) {
            s.context = context.to_vec();
        }
        Ok(())
    }

    async fn stop(&self, id: &str) -> StoreResult<bool> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        let Some(s) = inner.sessions.get_mut(id).filter(|s| s.status.is_active()) else {
            return Ok(false);
        };
        s.status = SessionStatus::Stopped;
        s.owner_id = None;
        s.lease_version += 1;
        s.lease_expires_at = now;
        s.updated_at = now;
        let mut aborted = Vec::new();
        for t in inner.turns.values_mut().filter(|t| {
            t.session_id == id && matches!(t.status, TurnStatus::Queued | TurnStatus::Running)
        }) {
            t.status = TurnStatus::Aborted;
            t.abort_requested = true;
            t.finished_at = Some(now);
            aborted.push(t.id);
        }
        for id in aborted {
            inner.synced.insert(id, false);
        }
        Ok(true)
    }

    async fn take_over(
        &self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Session>> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        Ok(inner
            .sessions
            .get_mut(id)
            .filter(|s| {
                s.status.is_active()
                    && (s.lease_expired(now) || s.owner_id.as_deref() == Some(owner))
            })
            .map(|s| {
                take(s, owner, now, ttl);
                s.clone()
            }))
    }

    async fn heartbeat(&self, owner: &str, ttl: Duration) -> StoreResult<Vec<(String, i64)>> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        Ok(inner
            .sessions
            .values_mut()
            .filter(|s| s.status.is_active() && s.owner_id.as_deref() == Some(owner))
            .map(|s| {
                s.lease_expires_at = lease_until(now, ttl);
                (s.id.clone(), s.lease_version)
            })
            .collect())
    }

    async fn claim_expired(
        &self,
        owner: &str,
        ttl: Duration,
        limit: i64,
    ) -> StoreResult<Vec<Session>> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        Ok(inner
            .sessions
            .values_mut()
            .filter(|s| s.status.is_active() && s.lease_expired(now))
            .take(usize::try_from(limit).unwrap_or(0))
            .map(|s| {
                take(s, owner, now, ttl);
                s.clone()
            })
            .collect())
    }

    async fn reclaim_own(&self, owner: &str, ttl: Duration) -> StoreResult<Vec<Session>> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        Ok(inner
            .sessions
            .values_mut()
            .filter(|s| s.status.is_active() && s.owner_id.as_deref() == Some(owner))
            .map(|s| {
                take(s, owner, now, ttl);
                s.clone()
            })
            .collect())
    }

    async fn release(&self, owner: &str) -> StoreResult<u64> {
        let now = Utc::now();
        let mut inner = self.lock()?;
        let mut n = 0;
        for s in inner
            .sessions
            .values_mut()
            .filter(|s| s.status.is_active() && s.owner_id.as_deref() == Some(owner))
        {
            s.lease_expires_at = now;
            n += 1;
        }
        Ok(n)
    }

    async fn expire_idle(&self, idle: Duration) -> StoreResult<Vec<Session>> {
        let now = Utc::now();
        let cutoff = now - chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::hours(1));
        let mut inner = self.lock()?;
        let busy: Vec<String> = inner
            .turns
            .values()
            .filter(|t| matches!(t.status, TurnStatus::Queued | TurnStatus::Running))
            .map(|t| t.session_id.clone())
            .collect();
        let mut out = Vec::new();
        for s in inner.sessions.values_mut().filter(|s| {
            s.status.is_active()
                && s.status != SessionStatus::Streaming
                && s.last_activity_at < cutoff
                && !busy.contains(&s.id)
        }) {
            s.status = SessionStatus::Stopped;
            s.owner_id = None;
            s.lease_version += 1;
            s.lease_expires_at = now;
            s.updated_at = now;
            out.push(s.clone());
        }
        Ok(out)
    }

    async fn set_status(
        &self,
        id: &str,
        lease: &Lease,
        status: SessionStatus,
    ) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        Ok(match fenced(&mut inner, id, lease) {
            Some(s) => {
                s.status = status;
                s.updated_at = Utc::now();
                s.last_activity_at = s.updated_at;
                true
            }
            None => false,
        })
    }

    async fn count_active(&self) -> StoreResult<i64> {
        Ok(self
            .lock()?
            .sessions
            .values()
            .filter(|s| s.status.is_active())
            .count() as i64)
    }

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

#[async_trait]
impl MessageStore for MemoryStore {
    async fn append_messages(
        &self,
        session_id: &str,
        lease: &Lease,
        turn_id: i64,
        messages: &[AgentMessage],
    ) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        if fenced(&mut inner, session_id, lease).is_none() {
            return Ok(false);
        }
        let list = inner.messages.entry(session_id.to_owned()).or_default();
        for m in messages {
            match list.iter_mut().find(|s| s.message.id() == m.id()) {
                Some(existing) => existing.message = m.clone(),
                None => list.push(StoredMessage {
                    turn_id: Some(turn_id),
                    message: m.clone(),
                }),
            }
        }
        Ok(true)
    }

    async fn session_messages(&self, session_id: &str) -> StoreResult<Vec<StoredMessage>> {
        Ok(self
            .lock()?
            .messages
            .get(session_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn turn_messages(&self, turn_id: i64) -> StoreResult<Vec<AgentMessage>> {
        let inner = self.lock()?;
        let Some(session) = inner.turns.get(&turn_id).map(|t| t.session_id.clone()) else {
            return Ok(Vec::new());
        };
        Ok(inner
            .messages
            .get(&session)
            .map(|l| {
                l.iter()
                    .filter(|m| m.turn_id == Some(turn_id))
                    .map(|m| m.message.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}
