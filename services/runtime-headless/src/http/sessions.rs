//! `/v1/runtime/sessions…` — acquire, snapshot, stop, and the grant check every call makes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloud_common::auth::BearerToken;
use cloud_common::extract::ApiJson;
use cloud_common::internal::{InternalCallError, RuntimeSessionAccessRequest};
use cloud_common::{ApiError, ApiResult, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views;
use crate::AppState;
use crate::domain::thinking::ThinkingLevel;
use crate::domain::{AcquireOutcome, NewSession, Session};
use crate::grant::{AccessRequest, GrantRules, RuntimeGrant, names};
use crate::provider::Providers;
use crate::publish;
use crate::seal::TurnSpec;
use crate::worker::CancelReason;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AcquireBody {
    conversation_id: Option<String>,
    cloud_instance_id: Option<String>,
    project_id: Option<String>,
    model_provider: Option<String>,
    model_id: Option<String>,
    thinking_level: Option<String>,
}

fn non_blank(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn cloud_api_down(e: InternalCallError) -> ApiError {
    tracing::warn!(error = %e, "cloud-api grant check failed.");
    ApiError::unavailable("Cloud runtime access could not be checked; retry later.")
}

fn usage_field(usage: crate::domain::Usage) -> Value {
    serde_json::to_value(usage).unwrap_or(Value::Null)
}

pub async fn acquire(
    State(st): State<AppState>,
    BearerToken(token): BearerToken,
    ApiJson(body): ApiJson<AcquireBody>,
) -> ApiResult<Response> {
    let (Some(conversation_id), Some(cloud_instance_id)) = (
        non_blank(body.conversation_id),
        non_blank(body.cloud_instance_id),
    ) else {
        return Err(ApiError::bad_request(
            "conversationId and cloudInstanceId are required",
        ));
    };
    let thinking_level = non_blank(body.thinking_level);
    if let Some(l) = &thinking_level
        && ThinkingLevel::parse(l).is_none()
    {
        return Err(ApiError::bad_request(
            "thinkingLevel must be one of off, minimal, low, medium, high, xhigh",
        ));
    }
    let project_id = non_blank(body.project_id);
    let grant = st
        .grants
        .runtime_access(&AccessRequest {
            access_token: token.expose().to_owned(),
            cloud_instance_id: cloud_instance_id.clone(),
            project_id: project_id.clone(),
            conversation_id: Some(conversation_id.clone()),
        })
        .await
        .map_err(cloud_api_down)?
        .ok_or_else(|| ApiError::forbidden("Cloud runtime access denied"))?;
    if grant.usable_providers().next().is_none() {
        return Err(ApiError::bad_request(
            "No organization provider is configured for cloud runtime execution.",
        )
        .with_code("missing_runtime_provider"));
    }
    let Some(plan) = grant.plan() else {
        let usage = st.store.usage(&grant.user.id, 0).await?;
        return Err(ApiError::forbidden(
            "An active subscription is required to create a cloud runtime session.",
        )
        .with_code("subscription_required")
        .with_field("usage", usage_field(usage)));
    };
    let new = NewSession {
        user_id: grant.user.id.clone(),
        organization_id: grant.organization_id(),
        conversation_id: conversation_id.clone(),
        project_id: project_id.or_else(|| grant.project.as_ref().map(|p| p.id.clone())),
        cloud_instance_id: Some(grant.cloud_instance.id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or(cloud_instance_id),
        model_provider: non_blank(body.model_provider).or_else(|| {
            grant
                .conversation
                .as_ref()
                .and_then(|c| c.model_provider.clone())
        }),
        model_id: non_blank(body.model_id)
            .or_else(|| grant.conversation.as_ref().and_then(|c| c.model_id.clone())),
        thinking_level,
        subscription_plan: plan.id.clone(),
        subscription_label: plan.label.clone(),
        parallel_sessions_limit: i32::try_from(plan.parallel_sessions_limit).unwrap_or(i32::MAX),
        context: Vec::new(),
    };
    let outcome = st
        .store
        .acquire(new, st.worker.owner(), st.config.lease_ttl)
        .await?;
    match outcome {
        AcquireOutcome::Created { session, usage } => {
            // The conversation may already have messages (an earlier session): they are the
            // new session's context. Never written back, so nothing is wiped.
            match st.grants.transcript(&token, &conversation_id).await {
                Ok(Some(messages)) if !messages.is_empty() => {
                    st.store.set_context(&session.id, &messages).await?;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot read the transcript for context.")
                }
            }
            st.publisher.spawn_event(
                &session,
                publish::runtime_status("ready", "Cloud runtime ready", &session.id),
            );
            Ok((
                StatusCode::CREATED,
                Json(json!({"id": session.id, "status": session.status.as_str(), "usage": usage})),
            )
                .into_response())
        }
        AcquireOutcome::Reused {
            session,
            taken_over,
            usage,
        } => {
            if taken_over {
                st.worker.recover_in_background(session.clone());
                st.worker.wake();
            }
            Ok(
                Json(json!({"id": session.id, "status": session.status.as_str(), "usage": usage}))
                    .into_response(),
            )
        }
        AcquireOutcome::QuotaExceeded { usage } => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "parallel_session_limit_reached",
            format!("Parallel session limit reached for {}.", plan.label),
        )
        .with_field("usage", usage_field(usage))),
    }
}

/// The session, if it is active and the caller's grant covers it. Anything else is 404 for a
/// valid token (so ids of other users' sessions cannot be told apart from unknown ones) and
/// 403 for an invalid one (so ids cannot be probed without signing in).
pub(super) async fn authorize(
    st: &AppState,
    token: &Secret,
    id: &str,
) -> ApiResult<(Session, RuntimeGrant)> {
    let row = st.store.get(id).await?.filter(|s| s.status.is_active());
    if let Some(s) = row {
        let req = AccessRequest {
            access_token: token.expose().to_owned(),
            cloud_instance_id: s.cloud_instance_id.clone(),
            project_id: s.project_id.clone(),
            conversation_id: Some(s.conversation_id.clone()),
        };
        match st.grants.runtime_access(&req).await {
            Ok(Some(g)) if g.user.id == s.user_id => return Ok((s, g)),
            Ok(_) => {}
            Err(e) => return Err(cloud_api_down(e)),
        }
    }
    match st.grants.token_is_valid(token).await {
        Ok(true) => Err(ApiError::not_found("Runtime session not found")),
        Ok(false) => Err(ApiError::forbidden("Cloud runtime session access denied")),
        Err(e) => Err(cloud_api_down(e)),
    }
}

/// The shipped desktop reads snapshots without `Authorization` and, on a 404, drops the session
/// and acquires a new one. Without a token the session id (a random UUID, handed only to its
/// user) is the read-only capability, while the session is active and cloud-api confirms that
/// its user still sees the conversation; commands and stop always need the token.
async fn authorize_by_session_id(st: &AppState, id: &str) -> ApiResult<Session> {
    let not_found = || ApiError::not_found("Runtime session not found");
    let session = st
        .store
        .get(id)
        .await?
        .filter(|s| s.status.is_active())
        .ok_or_else(not_found)?;
    let req = RuntimeSessionAccessRequest {
        user_id: session.user_id.clone(),
        cloud_instance_id: session.cloud_instance_id.clone(),
        conversation_id: session.conversation_id.clone(),
        project_id: session.project_id.clone(),
    };
    match st.grants.session_access(&req).await {
        Ok(true) => Ok(session),
        Ok(false) => Err(not_found()),
        Err(e) => Err(cloud_api_down(e)),
    }
}

pub async fn snapshot(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let session = match BearerToken::from_headers(&headers) {
        Some(token) => authorize(&st, &token, &id).await?.0,
        None if st.config.tokenless_snapshots => authorize_by_session_id(&st, &id).await?,
        None => return Err(ApiError::unauthorized("Missing bearer token")),
    };
    let view = views::SessionView::load(&st, &session).await?;
    let body = Json(json!({
        "id": session.id,
        "status": session.status.as_str(),
        "state": view.state(),
        "messages": view.messages_json(),
        "tokenUsage": view.token_usage(),
    }));
    Ok(([(header::CACHE_CONTROL, "no-store")], body).into_response())
}

pub async fn stop(
    State(st): State<AppState>,
    BearerToken(token): BearerToken,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (session, _) = authorize(&st, &token, &id).await?;
    if st.store.stop(&session.id).await? {
        st.worker.cancel_session(&session.id, CancelReason::Abort);
        st.publisher.spawn_event(
            &session,
            publish::runtime_status("stopped", "Cloud runtime stopped", &session.id),
        );
    }
    // Stopping keeps the conversation's workspace state (its branch, its files) for the next
    // session; only a deleted conversation loses it.
    match st
        .grants
        .conversation_exists(&token, &session.conversation_id)
        .await
    {
        Ok(false) => {
            if let Err(e) = st.workspaces.forget(&session.conversation_id).await {
                tracing::warn!(error = %e, "Cannot delete a deleted conversation's workspace.");
            }
        }
        Ok(true) => st.workspaces.evict(&session.conversation_id).await,
        Err(e) => tracing::warn!(error = %e, "Cannot tell whether the conversation still exists."),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The provider and model a turn runs with: the session's choice when the grant still offers
/// it, else the first usable provider's default model.
pub(super) fn choose_spec(
    session: &Session,
    grant: &RuntimeGrant,
    user_token: &Secret,
) -> Option<TurnSpec> {
    let usable: Vec<_> = grant.usable_providers().collect();
    let chosen = session
        .model_provider
        .as_deref()
        .and_then(|p| usable.iter().find(|x| names(x, p)));
    let provider = chosen.or(usable.first())?;
    let model = chosen
        .and(session.model_id.clone())
        .or_else(|| provider.default_model.clone())
        .or_else(|| provider.models.first().map(|m| m.id.clone()))
        .or_else(|| session.model_id.clone())?;
    let base_url = Some(provider.base_url.clone())
        .filter(|u| !u.trim().is_empty())
        .or_else(|| Providers::default_base_url(&provider.kind).map(str::to_owned))?;
    let parsed = url::Url::parse(&base_url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    Some(TurnSpec {
        provider_id: provider.id.clone(),
        provider_kind: provider.kind.clone(),
        base_url,
        model,
        secret: provider.secret.clone(),
        thinking_level: session.thinking_level.clone(),
        capability: grant.capability(),
        user_token: Some(user_token.expose().to_owned()),
        repository: grant.repo_spec(),
    })
}
