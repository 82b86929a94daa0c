//! The queue runner: claims turns of sessions this replica leases and streams them from the
//! provider, publishing each delta in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{CancelReason, Inner, Running};
use crate::domain::{Lease, SessionStatus, Turn, TurnStatus, build_context};
use crate::provider::{ChatMessage, ChatRequest, ProviderError};
use crate::publish::{self, names};

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

enum Outcome {
    Done,
    Failed(ProviderError),
    Cancelled,
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
    lane.send(event(json!({
        "type": names::RUNTIME_STATUS,
        "status": "streaming",
        "message": "Cloud runtime streaming",
        "sessionId": session.id,
        "turnId": turn.id,
        "requestId": turn.request_id,
    })))
    .await;

    let prepared = prepare(&inner, &turn, &session.context).await;
    let mut output = String::new();
    let outcome = match prepared {
        Err(e) => Outcome::Failed(e),
        Ok((provider, req)) => match tokio::select! {
            r = provider.stream(req) => Some(r),
            () = cancel.cancelled() => None,
        } {
            None => Outcome::Cancelled,
            Some(Err(e)) => Outcome::Failed(e),
            Some(Ok(mut stream)) => loop {
                let next = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break Outcome::Cancelled,
                    n = stream.next() => n,
                };
                match next {
                    None => break Outcome::Done,
                    Some(Err(e)) => break Outcome::Failed(e),
                    Some(Ok(delta)) => {
                        if output.is_empty()
                            && !matches!(
                                inner.store.mark_output_started(turn.id, &lease).await,
                                Ok(true)
                            )
                        {
                            if let Ok(mut slot) = reason.lock() {
                                slot.get_or_insert(CancelReason::LeaseLost);
                            }
                            break Outcome::Cancelled;
                        }
                        output.push_str(&delta);
                        lane.send(event(json!({
                            "type": names::MESSAGE_UPDATE,
                            "turnId": turn.id,
                            "assistantMessageEvent": {
                                "type": "text_delta",
                                "contentIndex": 0,
                                "delta": delta,
                            },
                        })))
                        .await;
                    }
                }
            },
        },
    };
    let reason = reason.lock().ok().and_then(|r| *r);
    let (status, error, outcome_label) = match (&outcome, reason) {
        (Outcome::Done, _) => (TurnStatus::Succeeded, None, "succeeded"),
        (Outcome::Failed(e), _) => (TurnStatus::Failed, Some(e.to_string()), "failed"),
        (Outcome::Cancelled, Some(CancelReason::Abort) | None) => {
            (TurnStatus::Aborted, None, "aborted")
        }
        (Outcome::Cancelled, Some(CancelReason::LeaseLost | CancelReason::Shutdown)) => {
            // Leave the row alone: whoever holds the lease next settles it.
            tracing::info!(
                turn = turn.id,
                ?reason,
                "Turn interrupted; the next owner recovers it."
            );
            lane.finish().await;
            return;
        }
    };
    let recorded = matches!(
        inner
            .store
            .finish_turn(turn.id, &lease, status, &output, error.as_deref())
            .await,
        Ok(true)
    );
    inner.metrics.turn(outcome_label);
    match &outcome {
        Outcome::Done => {
            lane.send(event(json!({
                "type": names::MESSAGE_UPDATE,
                "turnId": turn.id,
                "message": {
                    "id": turn.assistant_message_id(),
                    "role": "assistant",
                    "content": [{"type": "text", "text": output}],
                },
                "assistantMessageEvent": {"type": "done", "contentIndex": 0},
            })))
            .await;
        }
        Outcome::Failed(e) => {
            tracing::warn!(turn = turn.id, error = %e, "Turn failed at the provider.");
            lane.send(event(json!({
                "type": names::RUNTIME_ERROR,
                "turnId": turn.id,
                "requestId": turn.request_id,
                "sessionId": session.id,
                "error": e.code(),
                "message": e.to_string(),
            })))
            .await;
        }
        Outcome::Cancelled => {}
    }
    lane.send(event(json!({
        "type": names::AGENT_END,
        "turnId": turn.id,
        "sessionId": session.id,
        "outcome": status.as_str(),
    })))
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
        let message = match status {
            TurnStatus::Aborted => "Aborted",
            _ => "Cloud runtime ready",
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

async fn prepare(
    inner: &Inner,
    turn: &Turn,
    seed: &[crate::domain::TranscriptMessage],
) -> Result<(Arc<dyn crate::provider::LlmProvider>, ChatRequest), ProviderError> {
    let spec = turn
        .spec_sealed
        .as_deref()
        .ok_or(())
        .and_then(|s| inner.sealer.open(s).map_err(|_| ()))
        .map_err(|()| {
            ProviderError::Protocol("the turn's provider settings cannot be read".into())
        })?;
    let provider = inner.providers.for_kind(&spec.provider_kind)?;
    let turns = inner
        .store
        .turns_of(&turn.session_id)
        .await
        .map_err(|e| ProviderError::Network(format!("database: {e}")))?;
    let messages = build_context(seed, &turns, turn)
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: m.content,
        })
        .collect();
    Ok((
        provider,
        ChatRequest {
            base_url: spec.base_url,
            secret: cloud_common::Secret::new(spec.secret),
            model: spec.model,
            messages,
        },
    ))
}
