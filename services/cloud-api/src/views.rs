//! Wire shapes (camelCase, as the first system and the desktop use them) and their derivation
//! from records. These types are also the OpenAPI schemas.

use cloud_common::time::iso;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Config;
use crate::domain::rules::{active_grant, effective_plan};
use crate::domain::*;

/// `{"error": <code>, "message": <text>}` (+ `usage` on `subscription_required`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OkBody {
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub id: String,
    pub label: String,
    pub parallel_sessions_limit: i64,
    pub is_default: bool,
    pub is_hidden: bool,
}

impl From<&Plan> for PlanView {
    fn from(p: &Plan) -> Self {
        Self {
            id: p.id.clone(),
            label: p.label.clone(),
            parallel_sessions_limit: p.parallel_sessions_limit,
            is_default: p.is_default,
            is_hidden: p.is_hidden,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    pub plan: PlanView,
    pub granted_at: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub email_verified: bool,
    pub created_at: String,
    /// The effective plan (an active complimentary grant first).
    pub subscription: PlanView,
    pub complimentary_grant: Option<GrantView>,
}

pub fn user_view(u: &User, plans: &[Plan], now: Timestamp) -> UserView {
    let grant = active_grant(u, now).map(|g| {
        let plan = plans
            .iter()
            .find(|p| p.id == g.plan_id)
            .cloned()
            .unwrap_or_else(crate::domain::rules::fallback_plan);
        GrantView {
            plan: PlanView::from(&plan),
            granted_at: iso(g.granted_at),
            expires_at: g.expires_at.map(iso),
        }
    });
    UserView {
        id: u.id.0.clone(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        is_admin: u.is_admin,
        email_verified: u.email_verified_at.is_some(),
        created_at: iso(u.created_at),
        subscription: PlanView::from(&effective_plan(u, plans, now)),
        complimentary_grant: grant,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    pub active_parallel_sessions: i64,
    pub parallel_sessions_limit: i64,
    pub remaining_parallel_sessions: i64,
}

impl From<&Usage> for UsageView {
    fn from(u: &Usage) -> Self {
        Self {
            active_parallel_sessions: u.active,
            parallel_sessions_limit: u.limit,
            remaining_parallel_sessions: u.remaining(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub access_token: String,
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: String,
    pub refresh_expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    pub id: String,
    pub organization_id: String,
    pub kind: String,
    pub label: String,
    /// `"set"` when a secret is stored, `""` otherwise. Never any character of the secret.
    pub secret_hint: String,
    pub base_url: String,
    pub credential_type: String,
    pub models: Vec<ModelView>,
    pub default_model: Option<String>,
    pub supports_cloud_runtime: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Provider> for ProviderView {
    fn from(p: &Provider) -> Self {
        Self {
            id: p.id.0.clone(),
            organization_id: p.organization_id.0.clone(),
            kind: p.kind.clone(),
            label: p.label.clone(),
            secret_hint: if p.secret.is_some() { "set" } else { "" }.into(),
            base_url: p.base_url.clone(),
            credential_type: p.credential_type.clone(),
            models: p
                .models
                .iter()
                .map(|m| ModelView {
                    id: m.id.clone(),
                    label: m.label.clone(),
                })
                .collect(),
            default_model: p.default_model.clone(),
            supports_cloud_runtime: p.supports_cloud_runtime,
            created_at: iso(p.created_at),
            updated_at: iso(p.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// The caller's role: `owner`, `admin`, `member` or `billing_viewer`.
    pub role: String,
    pub is_personal: bool,
    /// The organization's providers (first 200), secrets never included.
    pub providers: Vec<ProviderView>,
}

pub fn org_view(o: &Organization, role: Role, providers: &[Provider]) -> OrganizationView {
    OrganizationView {
        id: o.id.0.clone(),
        slug: o.slug.clone(),
        name: o.name.clone(),
        role: role.as_str().into(),
        is_personal: o.is_personal,
        providers: providers.iter().map(ProviderView::from).collect(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointsView {
    pub api_base_url: String,
    pub realtime_base_url: String,
    pub runtime_base_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudInstanceView {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub auth_mode: String,
    pub connection_status: String,
    pub last_error: Option<String>,
    pub endpoints: EndpointsView,
    /// Absent for the canonical `instance-<userId>`, which is never registered.
    pub created_at: Option<String>,
}

fn trim_slash(u: &url::Url) -> String {
    u.as_str().trim_end_matches('/').to_owned()
}

pub fn instance_view(
    config: &Config,
    id: &str,
    name: &str,
    created: Option<Timestamp>,
) -> CloudInstanceView {
    CloudInstanceView {
        id: id.to_owned(),
        name: name.to_owned(),
        base_url: trim_slash(&config.public_url),
        auth_mode: "oauth".into(),
        connection_status: "connected".into(),
        last_error: None,
        endpoints: EndpointsView {
            api_base_url: trim_slash(&config.public_url),
            realtime_base_url: config.realtime_public_url.as_str().to_owned(),
            runtime_base_url: trim_slash(&config.runtime_public_url),
        },
        created_at: created.map(iso),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryView {
    pub clone_url: String,
    pub default_branch: Option<String>,
    pub auth_mode: String,
    /// Whether an access token is stored (the token itself is never returned).
    pub has_access_token: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    pub id: String,
    pub organization_id: String,
    pub organization_name: String,
    pub name: String,
    pub repo_name: String,
    pub kind: String,
    pub workspace_capability: String,
    pub repository: Option<RepositoryView>,
    pub location: String,
    pub cloud_status: String,
    pub created_at: String,
    pub updated_at: String,
}

pub fn project_view(p: &Project, org_name: &str) -> ProjectView {
    ProjectView {
        id: p.id.0.clone(),
        organization_id: p.organization_id.0.clone(),
        organization_name: org_name.to_owned(),
        name: p.name.clone(),
        repo_name: p.repo_name.clone(),
        kind: p.kind.to_string(),
        workspace_capability: p.workspace_capability.to_string(),
        repository: p
            .repository
            .as_ref()
            .filter(|_| p.kind == ProjectKind::Repository)
            .map(|r| RepositoryView {
                clone_url: r.clone_url.clone(),
                default_branch: r.default_branch.clone(),
                auth_mode: r.auth_mode.clone(),
                has_access_token: r.token.is_some(),
            }),
        location: "cloud".into(),
        cloud_status: p.cloud_status.clone(),
        created_at: iso(p.created_at),
        updated_at: iso(p.updated_at),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub project_id: String,
    pub organization_id: String,
    pub runtime_location: String,
    pub title: String,
    pub status: String,
    pub model_provider: Option<String>,
    pub model_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Conversation> for ConversationView {
    fn from(c: &Conversation) -> Self {
        Self {
            id: c.id.0.clone(),
            project_id: c.project_id.0.clone(),
            organization_id: c.organization_id.0.clone(),
            runtime_location: "cloud".into(),
            title: c.title.clone(),
            status: c.status.to_string(),
            model_provider: c.model_provider.clone(),
            model_id: c.model_id.clone(),
            created_at: iso(c.created_at),
            updated_at: iso(c.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub role: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub content: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.clone(),
            role: m.role.clone(),
            timestamp: m.timestamp,
            content: m.content.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipView {
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryView {
    pub id: String,
    pub scope: String,
    pub kind: String,
    pub title: Option<String>,
    pub content: String,
    pub tags: Vec<String>,
    pub topic_key: String,
    pub confidence: f64,
    pub schema_version: i32,
    pub reinforced_at: Option<String>,
    pub last_used_at: Option<String>,
    pub times_used: i32,
    pub source_conversation_id: Option<String>,
    pub origin_type: String,
    pub status: String,
    pub visibility: String,
    pub fingerprint: String,
    pub archived: bool,
    pub source: String,
    pub created_at: String,
    pub updated_at: String,
    pub ownership: OwnershipView,
}

impl From<&Memory> for MemoryView {
    fn from(m: &Memory) -> Self {
        Self {
            id: m.id.0.clone(),
            scope: m.scope.to_string(),
            kind: m.kind.clone(),
            title: m.title.clone(),
            content: m.content.clone(),
            tags: m.tags.clone(),
            topic_key: m.topic_key.clone(),
            confidence: m.confidence,
            schema_version: m.schema_version,
            reinforced_at: m.reinforced_at.map(iso),
            last_used_at: m.last_used_at.map(iso),
            times_used: m.times_used,
            source_conversation_id: m.source_conversation_id.as_ref().map(|c| c.0.clone()),
            origin_type: m.origin_type.clone(),
            status: m.status.to_string(),
            visibility: m.visibility.clone(),
            fingerprint: m.fingerprint.clone(),
            archived: m.archived,
            source: m.source.clone(),
            created_at: iso(m.created_at),
            updated_at: iso(m.updated_at),
            ownership: OwnershipView {
                organization_id: Some(m.organization_id.0.clone()),
                user_id: m.user_id.as_ref().map(|u| u.0.clone()),
                project_id: m.project_id.as_ref().map(|p| p.0.clone()),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryHitView {
    #[serde(flatten)]
    pub memory: MemoryView,
    pub fts_rank: f64,
    pub score: f64,
    pub match_reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub joined_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            user_id: m.membership.user_id.0.clone(),
            email: m.email.clone(),
            display_name: m.display_name.clone(),
            role: m.membership.role.as_str().into(),
            joined_at: iso(m.membership.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteView {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub role: String,
    pub expires_at: String,
    pub created_at: String,
}

impl From<&Invite> for InviteView {
    fn from(i: &Invite) -> Self {
        Self {
            id: i.id.0.clone(),
            organization_id: i.organization_id.0.clone(),
            email: i.invited_email.clone(),
            role: i.role.as_str().into(),
            expires_at: iso(i.expires_at),
            created_at: iso(i.created_at),
        }
    }
}
