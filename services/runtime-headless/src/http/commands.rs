//! `POST /v1/runtime/sessions/{id}/commands`: the desktop's RPC commands. Every answer is the
//! desktop's RpcResponse with the request's `id` echoed; a turn command answers once the turn
//! is queued (its progress streams through realtime).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloud_common::auth::BearerToken;
use cloud_common::extract::ApiJson;
use cloud_common::{ApiError, ApiResult};
use serde_json::{Value, json};

use super::sessions::{authorize, choose_spec};
use super::views::{self, SessionView};
use crate::AppState;
use crate::domain::command::{SUPPORTED, rpc_response, thinking_levels};
use crate::domain::thinking::ThinkingLevel;
use crate::domain::{Command, CommandRequest, Preferences, Session};
use crate::grant::{GrantRules, RuntimeGrant, names};
use crate::publish;
use crate::store::SettingsUpdate;
use crate::worker::CancelReason;

/// One command's answer: `Ok(data)` or `Err(message)` (a failed RpcResponse, status 400).
type Reply = Result<Option<Value>, String>;

#[tracing::instrument(skip_all, fields(session = %id))]
pub async fn command(
    State(st): State<AppState>,
    BearerToken(token): BearerToken,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CommandRequest>,
) -> ApiResult<Response> {
    let (session, grant) = authorize(&st, &token, &id).await?;
    let name: String = req.kind.chars().take(64).collect();
    let reply = match req.parse() {
        Ok(command) => dispatch(&st, &session, &grant, &token, &req, command).await?,
        Err(e) => Err(e.to_string()),
    };
    let (status, body) = match reply {
        Ok(data) => (
            StatusCode::OK,
            rpc_response(&req.id, &name, true, None, data),
        ),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            rpc_response(&req.id, &name, false, Some(error), None),
        ),
    };
    Ok((status, Json(body)).into_response())
}

async fn dispatch(
    st: &AppState,
    session: &Session,
    grant: &RuntimeGrant,
    token: &cloud_common::Secret,
    req: &CommandRequest,
    command: Command,
) -> ApiResult<Reply> {
    Ok(match command {
        Command::EmptyTurn => Ok(None),
        Command::Turn { kind, input } => {
            let Some(spec) = choose_spec(session, grant, token) else {
                return Ok(Err(
                    "No organization provider is configured for cloud runtime execution.".into(),
                ));
            };
            let sealed = st.sealer.seal(&spec).map_err(ApiError::internal)?;
            let running = session.status == crate::domain::SessionStatus::Streaming;
            let turn = st
                .store
                .enqueue_turn(&session.id, kind, &input, req.request_id(), sealed)
                .await?;
            if session.lease_expired(chrono::Utc::now())
                && let Some(taken) = st
                    .store
                    .take_over(&session.id, st.worker.owner(), st.config.lease_ttl)
                    .await?
            {
                st.worker.recover_in_background(taken);
            }
            st.worker.wake();
            Ok(Some(json!({
                "turnId": turn.id,
                "status": "queued",
                "kind": kind.as_str(),
                "behindActiveRun": running,
            })))
        }
        Command::Abort => {
            let result = st.store.request_abort(&session.id).await?;
            st.worker.cancel_session(&session.id, CancelReason::Abort);
            Ok(Some(json!({
                "abortedTurns": result.running,
                "cancelledQueuedTurns": result.cancelled_queued,
            })))
        }
        Command::SetModel { provider, model_id } => {
            if let (Some(p), Some(m)) = (&provider, &model_id) {
                let known = grant.usable_providers().any(|x| {
                    names(x, p)
                        && (x.models.is_empty()
                            || x.models.iter().any(|mm| &mm.id == m)
                            || x.default_model.as_ref() == Some(m))
                });
                if !known {
                    return Ok(Err(format!("Model not found: {p}/{m}")));
                }
            }
            let provider = provider.or(session.model_provider.clone());
            let model_id = model_id.or(session.model_id.clone());
            update(
                st,
                session,
                SettingsUpdate {
                    model: Some((provider, model_id)),
                    ..SettingsUpdate::default()
                },
            )
            .await?;
            publish_ready(st, session, "Model updated");
            Ok(None)
        }
        Command::SetThinkingLevel(level) => {
            set_level(st, session, level).await?;
            Ok(None)
        }
        Command::CycleThinkingLevel => {
            let current = session
                .thinking_level
                .as_deref()
                .and_then(ThinkingLevel::parse)
                .unwrap_or_default();
            let next = current.next();
            set_level(st, session, next).await?;
            Ok(Some(json!({"level": next.as_str()})))
        }
        Command::SetSteeringMode(mode) => {
            prefs(st, session, |p| p.steering_mode = mode).await?;
            Ok(None)
        }
        Command::SetFollowUpMode(mode) => {
            prefs(st, session, |p| p.follow_up_mode = mode).await?;
            Ok(None)
        }
        Command::SetAutoCompaction(on) => {
            prefs(st, session, |p| p.auto_compaction = on).await?;
            Ok(None)
        }
        Command::SetAutoRetry(on) => {
            prefs(st, session, |p| p.auto_retry = on).await?;
            Ok(None)
        }
        Command::GetState => Ok(Some(views::session_state(st, session).await?)),
        Command::GetMessages => Ok(Some(
            json!({"messages": SessionView::load(st, session).await?.messages_json()}),
        )),
        Command::GetAvailableModels => Ok(Some(json!({"models": models(grant)}))),
        Command::GetAvailableThinkingLevels => Ok(Some(thinking_levels())),
        Command::GetAccessMode => Ok(Some(json!({
            "mode": grant.capability().as_str(),
            "tools": crate::tools::specs(grant.capability(), session.organization_id.is_some())
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>(),
        }))),
        Command::GetCommands => Ok(Some(json!({"commands": SUPPORTED}))),
        Command::GetSessionStats => Ok(Some(SessionView::load(st, session).await?.stats())),
        Command::GetLastAssistantText => Ok(Some(
            json!({"text": SessionView::load(st, session).await?.last_assistant_text()}),
        )),
    })
}

/// The models the session may switch to: every usable provider's list (or its default).
fn models(grant: &RuntimeGrant) -> Vec<Value> {
    let mut out = Vec::new();
    for p in grant.usable_providers() {
        let label = if p.label.is_empty() {
            p.kind.clone()
        } else {
            p.label.clone()
        };
        let mut ids: Vec<(String, Option<String>)> = p
            .models
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    Some(m.label.clone()).filter(|l| !l.is_empty()),
                )
            })
            .collect();
        if let Some(d) = &p.default_model
            && !ids.iter().any(|(id, _)| id == d)
        {
            ids.push((d.clone(), None));
        }
        for (id, name) in ids {
            out.push(json!({
                "provider": p.kind,
                "providerId": p.id,
                "providerLabel": label,
                "id": id,
                "name": name.clone().unwrap_or_else(|| id.clone()),
                "label": name.unwrap_or_else(|| id.clone()),
            }));
        }
    }
    out
}

async fn update(st: &AppState, session: &Session, u: SettingsUpdate) -> ApiResult<()> {
    st.store.update_settings(&session.id, u).await?;
    Ok(())
}

async fn set_level(st: &AppState, session: &Session, level: ThinkingLevel) -> ApiResult<()> {
    update(
        st,
        session,
        SettingsUpdate {
            thinking_level: Some(Some(level.as_str().to_owned())),
            ..SettingsUpdate::default()
        },
    )
    .await?;
    publish_ready(st, session, "Thinking level updated");
    Ok(())
}

async fn prefs(
    st: &AppState,
    session: &Session,
    change: impl FnOnce(&mut Preferences),
) -> ApiResult<()> {
    let mut p = session.preferences;
    change(&mut p);
    update(
        st,
        session,
        SettingsUpdate {
            preferences: Some(p),
            ..SettingsUpdate::default()
        },
    )
    .await
}

fn publish_ready(st: &AppState, session: &Session, message: &str) {
    let status = if session.status == crate::domain::SessionStatus::Streaming {
        "streaming"
    } else {
        "ready"
    };
    st.publisher.spawn_event(
        session,
        publish::runtime_status(status, message, &session.id),
    );
}
