//! In-memory store: one replica, nothing survives a restart. Same rules as Postgres; one mutex
//! makes every operation atomic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

mod messages;
mod turns;
mod workspaces;

use super::{SessionStore, SettingsUpdate, StoreError, StoreResult, StoredMessage};
use crate::domain::{
    AcquireOutcome, Lease, NewSession, Session, SessionStatus, TranscriptMessage, Turn, TurnStatus,
    Usage, admits, new_session_id,
};

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    turns: BTreeMap<i64, Turn>,
    synced: HashMap<i64, bool>,
    next_turn: i64,
    /// Per session, in order of first write.
    messages: HashMap<String, Vec<StoredMessage>>,
    workspaces: HashMap<String, super::WorkspaceSnapshot>,
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
impl SessionStore for MemoryStore {
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
            t.spec_sealed = None;
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
}
