//! The background side of a replica: lease heartbeats, takeover of expired leases (with
//! recovery of interrupted turns), the turn queue runner, abort polling, idle expiry and
//! transcript appends. Every loop logs and continues on errors; nothing here can stop the
//! process.

mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::AgentDeps;
use crate::domain::message::AgentMessage;
use crate::domain::{Recovery, Session, SessionStatus, TranscriptMessage, Turn};
use crate::grant::{AppendOutcome, AppendRequest, TranscriptSink};
use crate::metrics::RuntimeMetrics;
use crate::provider::Providers;
use crate::publish::{self, Publisher, names};
use crate::seal::Sealer;
use crate::store::Store;

/// Why a running turn was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Abort,
    LeaseLost,
    Shutdown,
}

struct Running {
    session_id: String,
    version: i64,
    started: tokio::time::Instant,
    token: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
}

pub struct WorkerConfig {
    pub owner: String,
    pub lease_ttl: Duration,
    pub idle_timeout: Duration,
    pub max_concurrent_turns: usize,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub owner: String,
    pub ttl: Duration,
    pub idle: Duration,
    pub publisher: Publisher,
    pub transcripts: Arc<dyn TranscriptSink>,
    pub providers: Providers,
    pub sealer: Sealer,
    pub metrics: RuntimeMetrics,
    pub agent: AgentDeps,
    wake: Notify,
    sync_wake: Notify,
    running: Mutex<HashMap<i64, Running>>,
    stop: CancellationToken,
    tasks: TaskTracker,
    permits: Arc<Semaphore>,
}

/// Cheap to clone; shared by the HTTP handlers (to wake the runner, cancel local turns).
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: WorkerConfig,
        store: Arc<dyn Store>,
        publisher: Publisher,
        transcripts: Arc<dyn TranscriptSink>,
        providers: Providers,
        sealer: Sealer,
        metrics: RuntimeMetrics,
        agent: AgentDeps,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                owner: config.owner,
                ttl: config.lease_ttl,
                idle: config.idle_timeout,
                publisher,
                transcripts,
                providers,
                sealer,
                metrics,
                agent,
                wake: Notify::new(),
                sync_wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                permits: Arc::new(Semaphore::new(config.max_concurrent_turns.max(1))),
            }),
        }
    }

    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Starts the background loops (after recovering sessions this owner id held before a
    /// restart).
    pub fn start(&self) {
        let ttl = self.inner.ttl;
        let heartbeat = (ttl / 3).max(Duration::from_millis(200));
        let sweep = (ttl / 6).clamp(Duration::from_millis(100), Duration::from_millis(500));
        let idle_every =
            (self.inner.idle / 4).clamp(Duration::from_millis(500), Duration::from_secs(5));
        let inner = self.inner.clone();
        self.spawn_loop("startup", Duration::MAX, move || {
            let inner = inner.clone();
            async move {
                match inner.store.reclaim_own(&inner.owner, inner.ttl).await {
                    Ok(sessions) => {
                        for s in sessions {
                            recover(&inner, &s).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "Cannot reclaim this owner's sessions."),
                }
            }
        });
        let inner = self.inner.clone();
        self.spawn_loop("heartbeat", heartbeat, move || {
            heartbeat_once(inner.clone())
        });
        let inner = self.inner.clone();
        self.spawn_loop("takeover", sweep, move || takeover_once(inner.clone()));
        let inner = self.inner.clone();
        self.spawn_loop("abort-poll", Duration::from_millis(150), move || {
            abort_poll_once(inner.clone())
        });
        let inner = self.inner.clone();
        self.spawn_loop("idle-expiry", idle_every, move || idle_once(inner.clone()));
        let inner = self.inner.clone();
        self.spawn_loop("orphans", Duration::from_secs(2), move || {
            orphans_once(inner.clone())
        });
        let inner = self.inner.clone();
        self.spawn_loop("gauges", Duration::from_secs(2), move || {
            gauges_once(inner.clone())
        });
        let inner = self.inner.clone();
        self.inner
            .tasks
            .spawn(async move { runner::run_queue(inner).await });
        let inner = self.inner.clone();
        self.inner
            .tasks
            .spawn(async move { transcript_loop(inner).await });
    }

    fn spawn_loop<F, Fut>(&self, name: &'static str, every: Duration, mut f: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = self.inner.stop.clone();
        self.inner.tasks.spawn(async move {
            loop {
                // Each iteration runs in its own task so a panic is contained and logged.
                let handle = tokio::spawn(f());
                tokio::select! {
                    r = handle => if let Err(e) = r {
                        tracing::error!(task = name, error = %e, "Worker task failed; continuing.");
                    },
                    () = stop.cancelled() => return,
                }
                if every == Duration::MAX {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = stop.cancelled() => return,
                }
            }
        });
    }

    /// A turn may be waiting: look now rather than at the next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Cancels the turns of `session_id` running on this replica.
    pub fn cancel_session(&self, session_id: &str, reason: CancelReason) {
        cancel_where(&self.inner, reason, |r| r.session_id == session_id);
    }

    /// Recovers a session this replica just took over (acquire of an expired lease).
    pub fn recover_in_background(&self, session: Session) {
        let inner = self.inner.clone();
        self.inner.tasks.spawn(async move {
            inner.metrics.lease_takeovers.inc();
            recover(&inner, &session).await;
        });
    }

    /// Shutdown: stop the loops, cancel running turns (their rows stay `running`; the next
    /// owner retries or fails them), then end this owner's leases so another replica takes
    /// over at once.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop.cancel();
        cancel_where(&self.inner, CancelReason::Shutdown, |_| true);
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Worker tasks did not stop within the grace period.");
        }
        match self.inner.store.release(&self.inner.owner).await {
            Ok(n) => tracing::info!(sessions = n, "Released this worker's leases."),
            Err(e) => tracing::warn!(error = %e, "Could not release leases; they will expire."),
        }
    }
}

fn cancel_where(inner: &Inner, reason: CancelReason, pred: impl Fn(&Running) -> bool) {
    if let Ok(running) = inner.running.lock() {
        for r in running.values().filter(|r| pred(r)) {
            if let Ok(mut slot) = r.reason.lock() {
                slot.get_or_insert(reason);
            }
            r.token.cancel();
        }
    }
}

async fn heartbeat_once(inner: Arc<Inner>) {
    let began = tokio::time::Instant::now();
    match inner.store.heartbeat(&inner.owner, inner.ttl).await {
        Ok(held) => {
            // Turns of sessions this replica no longer holds (taken over, stopped) must stop.
            // Turns claimed after the heartbeat began are judged by the next one.
            cancel_where(&inner, CancelReason::LeaseLost, |r| {
                r.started < began
                    && !held
                        .iter()
                        .any(|(id, v)| *id == r.session_id && *v == r.version)
            });
            if !held.is_empty() {
                inner.wake.notify_one();
            }
        }
        Err(e) => tracing::warn!(error = %e, "Lease heartbeat failed."),
    }
}

async fn takeover_once(inner: Arc<Inner>) {
    match inner.store.claim_expired(&inner.owner, inner.ttl, 50).await {
        Ok(sessions) => {
            for s in sessions {
                inner.metrics.lease_takeovers.inc();
                tracing::info!(session = %s.id, version = s.lease_version, "Took over an expired lease.");
                recover(&inner, &s).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "Lease takeover sweep failed."),
    }
}

/// After taking a session over: settle the turns the previous owner left running, tell the
/// client which were retried and which failed, and leave the session ready.
async fn recover(inner: &Arc<Inner>, session: &Session) {
    let Some(lease) = session.lease() else {
        return;
    };
    let recovered = match inner.store.recover_turns(&session.id, &lease).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(session = %session.id, error = %e, "Cannot recover turns.");
            return;
        }
    };
    let lane = inner.publisher.lane(session.cloud_instance_id.clone());
    let mut failed = false;
    for (turn, recovery) in &recovered {
        let (name, outcome, message) = match recovery {
            Recovery::Retry => (
                names::TURN_RETRIED,
                "retried",
                "The worker running this turn was lost before any output; it runs again.",
            ),
            Recovery::Fail => {
                failed = true;
                (
                    names::TURN_FAILED,
                    "failed_worker_lost",
                    "The worker running this turn was lost mid-answer; the turn failed.",
                )
            }
        };
        inner.metrics.turn(outcome);
        tracing::info!(session = %session.id, turn = turn.id, outcome, "Recovered an interrupted turn.");
        lane.send(publish::conversation_event(
            session,
            json!({
                "type": name,
                "turnId": turn.id,
                "requestId": turn.request_id,
                "sessionId": session.id,
                "attempts": turn.attempts,
                "message": message,
            }),
        ))
        .await;
    }
    if failed || session.status == SessionStatus::Streaming {
        if failed {
            lane.send(publish::conversation_event(
                session,
                json!({"type": names::AGENT_END, "sessionId": session.id}),
            ))
            .await;
        }
        if let Ok(true) = inner
            .store
            .set_status(&session.id, &lease, SessionStatus::Ready)
            .await
        {
            lane.send(publish::conversation_event(
                session,
                publish::runtime_status("ready", "Cloud runtime ready", &session.id),
            ))
            .await;
        }
    }
    lane.finish().await;
    inner.sync_wake.notify_one();
    inner.wake.notify_one();
}

async fn abort_poll_once(inner: Arc<Inner>) {
    let ids: Vec<i64> = match inner.running.lock() {
        Ok(r) => r.keys().copied().collect(),
        Err(_) => return,
    };
    if ids.is_empty() {
        return;
    }
    match inner.store.turns_to_cancel(&ids).await {
        Ok(cancel) if !cancel.is_empty() => {
            if let Ok(running) = inner.running.lock() {
                for id in cancel {
                    if let Some(r) = running.get(&id) {
                        if let Ok(mut slot) = r.reason.lock() {
                            slot.get_or_insert(CancelReason::Abort);
                        }
                        r.token.cancel();
                    }
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "Abort poll failed."),
    }
}

async fn idle_once(inner: Arc<Inner>) {
    match inner.store.expire_idle(inner.idle).await {
        Ok(sessions) => {
            for s in sessions {
                tracing::info!(session = %s.id, "Idle session expired.");
                // Its durable state is kept: the next session of the conversation restores it.
                inner.agent.workspaces.evict(&s.conversation_id).await;
                inner.publisher.spawn_event(
                    &s,
                    publish::runtime_status(
                        "stopped",
                        "Cloud runtime session expired after inactivity",
                        &s.id,
                    ),
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "Idle expiry sweep failed."),
    }
    // Copies of conversations this worker no longer runs (another worker took them over).
    let removed = inner.agent.workspaces.sweep_idle().await;
    if removed > 0 {
        tracing::info!(removed, "Removed idle local workspaces.");
    }
}

/// Safety net: a turn recorded as running on this replica that no task here runs (its task
/// ended without recording an outcome, e.g. the database failed at that moment) would block its
/// session's queue. Re-taking the lease (version bump) lets the normal recovery settle it.
async fn orphans_once(inner: Arc<Inner>) {
    let claimed = match inner
        .store
        .running_claimed_by(&inner.owner, Duration::from_secs(2))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "Orphan sweep failed.");
            return;
        }
    };
    let orphans: Vec<String> = match inner.running.lock() {
        Ok(running) => claimed
            .into_iter()
            .filter(|(id, _)| !running.contains_key(id))
            .map(|(_, session)| session)
            .collect(),
        Err(_) => return,
    };
    for session_id in orphans {
        match inner
            .store
            .take_over(&session_id, &inner.owner, inner.ttl)
            .await
        {
            Ok(Some(session)) => {
                tracing::warn!(session = %session_id, "Settling a turn no task was running.");
                recover(&inner, &session).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot re-take a session with an orphaned turn."),
        }
    }
}

async fn gauges_once(inner: Arc<Inner>) {
    if let Ok(n) = inner.store.count_active().await {
        inner.metrics.active_sessions.set(n);
    }
    if let Ok(n) = inner.store.queue_depth().await {
        inner.metrics.queue_depth.set(n);
    }
}

/// Appends finished turns to the conversation transcript (idempotent message ids; a failed
/// append is retried on a later pass).
async fn transcript_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.sync_wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = inner.stop.cancelled() => {}
        }
        let stopping = inner.stop.is_cancelled();
        let pending = match inner.store.claim_transcripts(20).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read pending transcript appends.");
                if stopping {
                    return;
                }
                continue;
            }
        };
        for p in pending {
            let ts = p
                .turn
                .finished_at
                .unwrap_or(p.turn.created_at)
                .timestamp_millis();
            let messages = match inner.agent.messages.turn_messages(p.turn.id).await {
                Ok(m) => transcript_of(&p.turn, &m, ts),
                Err(e) => {
                    tracing::warn!(turn = p.turn.id, error = %e, "Cannot read the turn's messages; will retry.");
                    let _ = inner.store.unmark_synced(p.turn.id).await;
                    continue;
                }
            };
            let req = AppendRequest {
                user_id: p.user_id.clone(),
                messages,
            };
            match inner.transcripts.append(&p.conversation_id, &req).await {
                Ok(AppendOutcome::Appended) => {}
                Ok(AppendOutcome::Rejected) => {
                    tracing::warn!(turn = p.turn.id, "Transcript append rejected; not retried.")
                }
                Err(e) => {
                    tracing::warn!(turn = p.turn.id, error = %e, "Transcript append failed; will retry.");
                    let _ = inner.store.unmark_synced(p.turn.id).await;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// What a finished turn adds to the conversation transcript: the user and assistant text of its
/// run, under the runtime's message ids (so re-sending is idempotent). A turn that never ran
/// (aborted while queued) still records what the user sent.
fn transcript_of(turn: &Turn, messages: &[AgentMessage], timestamp: i64) -> Vec<TranscriptMessage> {
    let mut out: Vec<TranscriptMessage> = messages
        .iter()
        .filter(|m| !matches!(m, AgentMessage::ToolResult(_)))
        .filter_map(|m| {
            Some(TranscriptMessage {
                id: m.id().to_owned(),
                role: m.role().to_owned(),
                timestamp,
                content: m.transcript_text()?,
            })
        })
        .collect();
    if messages.is_empty() && turn.merged_into.is_none() && !turn.message.trim().is_empty() {
        out.push(TranscriptMessage {
            id: turn.user_message_id(),
            role: "user".into(),
            timestamp,
            content: turn.message.clone(),
        });
    }
    out
}
