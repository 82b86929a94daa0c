//! The grants of the internal endpoints for cloud-realtime and runtime-headless (the adapter
//! checks the service token). Denials are 404 `Cloud access grant not found` whatever the reason, as callers treat 401/404
//! alike and a reason would only help an attacker holding the service token probe tokens.

use cloud_common::internal::*;
use cloud_common::time::iso;
use serde::Deserialize;

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::app::conversations::{MessageInput, append_checked, parse_messages};
use crate::app::instances::{Claim, claim, holds};
use crate::app::tokens;
use crate::domain::rules::{self, active_grant, effective_plan};
use crate::domain::*;
use crate::views::instance_view;

fn denied() -> DomainError {
    DomainError::NotFound("Cloud access grant not found")
}

/// Resolves the user of an access token and checks the instance binding.
async fn user_and_scope(
    state: &AppState,
    token: &str,
    instance: &str,
) -> Result<(User, Scope, String), DomainError> {
    if token.is_empty() || instance.is_empty() {
        return Err(DomainError::invalid(
            "accessToken and cloudInstanceId are required",
        ));
    }
    let (session, user) = tokens::authenticate(state, token)
        .await?
        .ok_or_else(denied)?;
    // An unknown id is claimed by this caller on first use (the shipped desktop never registers
    // its locally generated id); one held by someone else, or beyond the limit, is denied.
    let instance = match claim(state, &user.id, Some(instance), "Chatons Desktop".into()).await {
        Ok(Claim::Created(i) | Claim::Held(i)) => i.id.0,
        Err(e) if e.is_client_error() => {
            tracing::info!(user = %user.id, reason = %e, "Instance not usable by this user.");
            return Err(denied());
        }
        Err(e) => return Err(e),
    };
    let scope = Scope::load(state, &user.id, session.active_organization_id.as_ref()).await?;
    Ok((user, scope, instance))
}

pub async fn realtime_access(
    state: &AppState,
    body: RealtimeAccessRequest,
) -> Result<RealtimeAccess, DomainError> {
    let (user, scope, instance) =
        user_and_scope(state, &body.access_token, &body.cloud_instance_id).await?;
    realtime_grant(user.id, instance, &scope)
}

/// cloud-realtime re-checks each open socket with this (it holds no access token): the user
/// must still exist and hold the instance; the answer lists the organizations the user is a
/// member of now, so a member removed from one stops receiving its events.
pub async fn realtime_audience(
    state: &AppState,
    body: RealtimeAudienceRequest,
) -> Result<RealtimeAccess, DomainError> {
    let (user, instance) = (body.user_id.trim(), body.cloud_instance_id.trim());
    if user.is_empty() || instance.is_empty() {
        return Err(DomainError::invalid(
            "userId and cloudInstanceId are required",
        ));
    }
    let (user, scope) = holder_scope(state, user, instance).await?;
    realtime_grant(user, instance.to_owned(), &scope)
}

/// What cloud-realtime may deliver to the user: the active organization's events and those of
/// every organization the user is a member of.
fn realtime_grant(
    user: UserId,
    instance: String,
    scope: &Scope,
) -> Result<RealtimeAccess, DomainError> {
    let organization_id = scope.active.clone().ok_or_else(denied)?;
    Ok(RealtimeAccess {
        user_id: user.0,
        cloud_instance_id: instance,
        organization_id: organization_id.0,
        organization_ids: scope.org_ids().into_iter().map(|o| o.0).collect(),
    })
}

/// The user's current scope, for callers that hold no access token: the user must still exist
/// and hold the instance. The canonical `instance-<userId>` is implicitly the user's (never
/// stored); any other id must be registered to them.
async fn holder_scope(
    state: &AppState,
    user: &str,
    instance: &str,
) -> Result<(UserId, Scope), DomainError> {
    let user = UserId::from(user);
    if !holds(state, &user, instance).await? || state.store.user(&user).await?.is_none() {
        return Err(denied());
    }
    let scope = Scope::load(state, &user, None).await?;
    Ok((user, scope))
}

/// runtime-headless asks this before it serves a snapshot without an access token: the
/// session's user must still hold the instance and see the conversation (and its project).
pub async fn runtime_session_access(
    state: &AppState,
    body: RuntimeSessionAccessRequest,
) -> Result<RuntimeSessionAccess, DomainError> {
    let (user, instance, conversation) = (
        body.user_id.trim(),
        body.cloud_instance_id.trim(),
        body.conversation_id.trim(),
    );
    if user.is_empty() || instance.is_empty() || conversation.is_empty() {
        return Err(DomainError::invalid(
            "userId, cloudInstanceId and conversationId are required",
        ));
    }
    let (user, scope) = holder_scope(state, user, instance).await?;
    let found = scope
        .conversation(state, conversation)
        .await
        .map_err(|_| denied())?;
    let project = body.project_id.as_deref().map(str::trim);
    if project.is_some_and(|p| !p.is_empty() && p != found.project_id.as_str()) {
        return Err(denied());
    }
    Ok(RuntimeSessionAccess {
        user_id: user.0,
        conversation_id: found.id.0,
    })
}

fn plan_wire(p: &Plan) -> GrantPlan {
    GrantPlan {
        id: p.id.clone(),
        label: p.label.clone(),
        parallel_sessions_limit: p.parallel_sessions_limit,
        is_default: p.is_default,
        is_hidden: p.is_hidden,
    }
}

pub async fn runtime_access(
    state: &AppState,
    body: RuntimeAccessRequest,
) -> Result<RuntimeGrant, DomainError> {
    let (user, scope, instance) =
        user_and_scope(state, &body.access_token, &body.cloud_instance_id).await?;
    let project_id = body
        .project_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let conversation_id = body
        .conversation_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let conversation = match conversation_id {
        Some(id) => Some(scope.conversation(state, id).await.map_err(|_| denied())?),
        None => None,
    };
    let project = match (project_id, &conversation) {
        (Some(p), Some(c)) if c.project_id.0 != p => return Err(denied()),
        (_, Some(c)) => Some(
            scope
                .project(state, c.project_id.as_str())
                .await
                .map_err(|_| denied())?,
        ),
        (Some(p), None) => Some(scope.project(state, p).await.map_err(|_| denied())?),
        (None, None) => None,
    };
    // The organization whose credentials are used is the project's, never the caller's own
    // (the first system used the wrong organization's providers for shared projects).
    let org_id = project
        .as_ref()
        .map(|p| p.organization_id.clone())
        .or_else(|| scope.active.clone())
        .ok_or_else(denied)?;
    let (org, role) = scope.org(&org_id).cloned().ok_or_else(denied)?;
    let now = now();
    let plans = access::plans(state).await?;
    let plan = effective_plan(&user, &plans, now);
    let usage = access::usage(state, &user, &plans).await?;

    let mut providers = Vec::new();
    for p in access::all_providers(state, &org.id).await? {
        let Some(sealed) = &p.secret else { continue };
        match state.secrets.open(sealed, p.id.as_str()) {
            Ok(secret) => providers.push(GrantProvider {
                id: p.id.0.clone(),
                kind: p.kind.clone(),
                label: p.label.clone(),
                base_url: p.base_url.clone(),
                credential_type: p.credential_type.clone(),
                secret,
                models: p
                    .models
                    .iter()
                    .map(|m| GrantModel {
                        id: m.id.clone(),
                        label: m.label.clone(),
                    })
                    .collect(),
                default_model: p.default_model.clone(),
                supports_cloud_runtime: p.supports_cloud_runtime,
            }),
            Err(e) => {
                tracing::error!(provider = %p.id, error = %e, "Provider secret cannot be opened; left out of the grant.");
            }
        }
    }

    let repository = match project.as_ref().and_then(|p| {
        p.repository
            .as_ref()
            .filter(|_| p.kind == ProjectKind::Repository)
            .map(|r| (p, r))
    }) {
        Some((p, r)) => {
            let token = match &r.token {
                Some(sealed) => match state.secrets.open(sealed, p.id.as_str()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(project = %p.id, error = %e, "Repository token cannot be opened.");
                        None
                    }
                },
                None => None,
            };
            Some(GrantRepository {
                clone_url: r.clone_url.clone(),
                default_branch: r.default_branch.clone(),
                auth_mode: r.auth_mode.clone(),
                access_token: token,
            })
        }
        None => None,
    };

    let grant = active_grant(&user, now).map(|g| GrantComplimentary {
        plan_id: g.plan_id.clone(),
        plan: plan_wire(
            &plans
                .iter()
                .find(|p| p.id == g.plan_id)
                .cloned()
                .unwrap_or_else(crate::domain::rules::fallback_plan),
        ),
        granted_at: iso(g.granted_at),
        expires_at: g.expires_at.map(iso),
    });
    let inst = instance_view(&state.config, &instance, "Chatons Cloud", None);
    Ok(RuntimeGrant {
        user: GrantUser {
            id: user.id.0.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            is_admin: user.is_admin,
            created_at: iso(user.created_at),
            subscription_plan: user.subscription_plan.clone(),
            email_verified_at: user.email_verified_at.map(iso),
            subscription: plan_wire(&plan),
            complimentary_grant: grant,
        },
        subscription: plan_wire(&plan),
        usage: GrantUsage {
            active_parallel_sessions: usage.active,
            parallel_sessions_limit: usage.limit,
            remaining_parallel_sessions: usage.remaining(),
        },
        organization: GrantOrganization {
            id: org.id.0.clone(),
            slug: org.slug.clone(),
            name: org.name.clone(),
            role: role.as_str().into(),
        },
        cloud_instance: GrantCloudInstance {
            id: inst.id,
            name: inst.name,
            base_url: inst.base_url,
            auth_mode: inst.auth_mode,
            connection_status: inst.connection_status,
            last_error: None,
            endpoints: GrantEndpoints {
                api_base_url: inst.endpoints.api_base_url,
                realtime_base_url: inst.endpoints.realtime_base_url,
                runtime_base_url: inst.endpoints.runtime_base_url,
            },
        },
        project: project.as_ref().map(|p| GrantProject {
            id: p.id.0.clone(),
            organization_id: p.organization_id.0.clone(),
            name: p.name.clone(),
            repo_name: p.repo_name.clone(),
            kind: p.kind.to_string(),
            workspace_capability: p.workspace_capability.to_string(),
        }),
        conversation: conversation.as_ref().map(|c| GrantConversation {
            id: c.id.0.clone(),
            project_id: c.project_id.0.clone(),
            title: c.title.clone(),
            status: c.status.to_string(),
            model_provider: c.model_provider.clone(),
            model_id: c.model_id.clone(),
        }),
        providers,
        repository,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptBody {
    pub user_id: Option<String>,
    #[serde(default)]
    pub messages: Vec<MessageInput>,
}

/// Appends to a transcript on behalf of `userId` (who must see the conversation).
pub async fn append_transcript(
    state: &AppState,
    id: &str,
    body: TranscriptBody,
) -> Result<TranscriptAppendResponse, DomainError> {
    let user = rules::trimmed(body.user_id.as_deref())
        .ok_or_else(|| DomainError::invalid("userId is required"))?;
    let messages = parse_messages(body.messages)?;
    let scope = Scope::load(state, &UserId::from(user.as_str()), None).await?;
    let conversation = scope.conversation(state, id).await?;
    let (appended, total) = append_checked(state, &conversation, &messages).await?;
    Ok(TranscriptAppendResponse {
        conversation_id: conversation.id.0,
        appended,
        total,
    })
}
