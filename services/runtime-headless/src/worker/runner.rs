//! The queue runner: claims turns of sessions this replica leases and runs the agent for each,
//! publishing its events in order, then records the outcome.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{CancelReason, Inner, Running};
use crate::agent::{self, RunEnd, RunResult, events};
use crate::domain::{Lease, SessionStatus, Turn, TurnStatus};
use crate::provider::ProviderError;
use crate::publish::{self, names};
use crate::store::TurnStats;

pub(super) async fn run_queue(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = inner.stop.cancelled() => return,
        }
        loop {
            if inner.stop.is_cancelled() {
                return;
            }
            let Ok(permit) = inner.permits.clone().try_acquire_owned() else {
                break;
            };
            match inner.store.claim_turn(&inner.owner).await {
                Ok(Some((turn, lease))) => {
                    let token = CancellationToken::new();
                    let reason = Arc::new(Mutex::new(None));
                    if let Ok(mut running) = inner.running.lock() {
                        running.insert(
                            turn.id,
                            Running {
                                session_id: turn.session_id.clone(),
                                version: lease.version,
                                started: tokio::time::Instant::now(),
                                token: token.clone(),
                                reason: reason.clone(),
                            },
                        );
                        inner.metrics.running_turns.set(running.len() as i64);
                    }
                    let inner2 = inner.clone();
                    inner.tasks.spawn(async move {
                        let id = turn.id;
                        let task =
                            tokio::spawn(run_turn(inner2.clone(), turn, lease, token, reason));
                        if let Err(e) = task.await {
                            tracing::error!(turn = id, error = %e, "Turn task failed.");
                        }
                        if let Ok(mut running) = inner2.running.lock() {
                            running.remove(&id);
                            inner2.metrics.running_turns.set(running.len() as i64);
                        }
                        drop(permit);
                        inner2.wake.notify_one();
                        inner2.sync_wake.notify_one();
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot claim a turn.");
                    break;
                }
            }
        }
    }
}

async fn run_turn(
    inner: Arc<Inner>,
    turn: Turn,
    lease: Lease,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
) {
    let session = match inner.store.get(&turn.session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(turn = turn.id, error = %e, "Cannot load the turn's session.");
            return;
        }
    };
    let lane = inner.publisher.lane(session.cloud_instance_id.clone());
    let event = |v: serde_json::Value| publish::conversation_event(&session, v);

    if !matches!(
        inner
            .store
            .set_status(&session.id, &lease, SessionStatus::Streaming)
            .await,
        Ok(true)
    ) {
        // Lost the lease between claim and start: the new owner recovers the turn.
        lane.finish().await;
        return;
    }
    lane.send(event(events::agent_start(
        &session.id,
        turn.id,
        &turn.request_id,
    )))
    .await;
    lane.send(event(json!({
        "type": names::RUNTIME_STATUS,
        "status": "streaming",
        "message": "Cloud runtime streaming",
        "sessionId": session.id,
        "turnId": turn.id,
        "requestId": turn.request_id,
    })))
    .await;

    let prepared = turn
        .spec_sealed
        .as_deref()
        .ok_or(())
        .and_then(|s| inner.sealer.open(s).map_err(|_| ()))
        .map_err(|()| {
            RunEnd::Failed(ProviderError::Protocol(
                "the turn's provider settings cannot be read".into(),
            ))
        })
        .and_then(|spec| {
            inner
                .providers
                .for_kind(&spec.provider_kind)
                .map(|p| (spec, p))
                .map_err(RunEnd::Failed)
        });
    let result = match prepared {
        Ok((spec, provider)) => {
            agent::run(
                &inner.agent,
                &session,
                &turn,
                &lease,
                &spec,
                provider,
                &lane,
                &cancel,
            )
            .await
        }
        Err(end) => RunResult {
            end,
            messages: Vec::new(),
            usage: Default::default(),
            steps: 0,
        },
    };
    let reason = reason.lock().ok().and_then(|r| *r);
    let interrupted = matches!(
        reason,
        Some(CancelReason::LeaseLost | CancelReason::Shutdown)
    );
    let (status, error, label, note) = match &result.end {
        RunEnd::LeaseLost => (None, None, "", ""),
        RunEnd::Aborted if interrupted => (None, None, "", ""),
        RunEnd::Done => (
            Some(TurnStatus::Succeeded),
            None,
            "succeeded",
            "Cloud runtime ready",
        ),
        RunEnd::StepLimit => (
            Some(TurnStatus::Succeeded),
            Some("The run stopped at the step limit.".to_owned()),
            "step_limit",
            "Stopped at the step limit",
        ),
        RunEnd::Aborted => (Some(TurnStatus::Aborted), None, "aborted", "Aborted"),
        RunEnd::Failed(e) => (Some(TurnStatus::Failed), Some(e.to_string()), "failed", ""),
        RunEnd::Broken(m) => (Some(TurnStatus::Failed), Some(m.clone()), "failed", ""),
    };
    let Some(status) = status else {
        // Leave the row alone: whoever holds the lease next settles it.
        tracing::info!(
            turn = turn.id,
            ?reason,
            "Turn interrupted; the next owner recovers it."
        );
        lane.finish().await;
        return;
    };
    let stats = TurnStats {
        usage: result.usage,
        steps: result.steps,
    };
    let recorded = matches!(
        inner
            .store
            .finish_turn(
                turn.id,
                &lease,
                status,
                &result.text(),
                error.as_deref(),
                stats
            )
            .await,
        Ok(true)
    );
    inner.metrics.turn(label);
    inner
        .metrics
        .steps_per_turn
        .observe(f64::from(result.steps));
    match &result.end {
        RunEnd::Failed(e) => {
            tracing::warn!(turn = turn.id, error = %e, "Turn failed at the provider.");
            lane.send(event(events::runtime_error(
                &session.id,
                turn.id,
                e.code(),
                &e.to_string(),
            )))
            .await;
        }
        RunEnd::Broken(m) => {
            tracing::warn!(turn = turn.id, error = %m, "Turn failed in the runtime.");
            lane.send(event(events::runtime_error(
                &session.id,
                turn.id,
                "runtime_failure",
                m,
            )))
            .await;
        }
        _ => {}
    }
    lane.send(event(events::agent_end(
        &session.id,
        turn.id,
        status.as_str(),
        &result.messages,
        result.usage,
    )))
    .await;
    if recorded
        && matches!(
            inner
                .store
                .set_status(&session.id, &lease, SessionStatus::Ready)
                .await,
            Ok(true)
        )
    {
        let message = if note.is_empty() {
            "Cloud runtime ready"
        } else {
            note
        };
        lane.send(event(publish::runtime_status(
            "ready",
            message,
            &session.id,
        )))
        .await;
    }
    lane.finish().await;
}
