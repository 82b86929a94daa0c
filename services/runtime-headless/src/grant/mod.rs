//! What runtime-headless asks cloud-api: the runtime grant (re-checked on every call), whether a
//! bearer token is valid at all, the transcript of a conversation, and transcript appends.
//!
//! The traits keep the HTTP layer and the worker testable; the one implementation talks to the
//! real cloud-api through [`CloudApiClient`].

mod cache;

pub use cache::CachedGrants;

use async_trait::async_trait;
use cloud_common::Secret;
use cloud_common::internal::{CloudApiClient, InternalCallError, RUNTIME_ACCESS_PATH};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::TranscriptMessage;

/// `POST /v1/internal/runtime/access` body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequest {
    pub access_token: String,
    pub cloud_instance_id: String,
    pub project_id: Option<String>,
    pub conversation_id: Option<String>,
}

fn secret_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub parallel_sessions_limit: Option<i64>,
}

/// `None` when absent, `Some(None)` when `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantUser {
    pub id: String,
    /// The effective plan (cloud-api always sends one, the default plan included).
    #[serde(default)]
    pub subscription: Option<Subscription>,
    /// The user's own plan id; `null` (with no complimentary grant) means no subscription.
    #[serde(default, deserialize_with = "present")]
    pub subscription_plan: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub complimentary_grant: Option<Option<serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantUsage {
    #[serde(default)]
    pub active_parallel_sessions: Option<i64>,
    #[serde(default)]
    pub parallel_sessions_limit: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdOnly {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantProject {
    pub id: String,
    #[serde(default)]
    pub kind: Option<String>,
    /// `full_tools` or `chat_only`; anything else (or nothing) is chat only.
    #[serde(default)]
    pub workspace_capability: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantConversation {
    pub id: String,
    #[serde(default)]
    pub model_provider: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    /// Present when cloud-api sends the transcript with the grant.
    #[serde(default)]
    pub messages: Option<Vec<TranscriptMessage>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderModel {
    pub id: String,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantProvider {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default, deserialize_with = "secret_opt")]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub models: Vec<ProviderModel>,
    #[serde(default)]
    pub default_model: Option<String>,
    #[serde(default = "default_true")]
    pub supports_cloud_runtime: bool,
}

impl GrantProvider {
    pub fn usable(&self) -> bool {
        self.supports_cloud_runtime && self.secret.is_some()
    }

    pub fn matches(&self, name: &str) -> bool {
        self.id == name || self.kind == name || self.label.as_deref() == Some(name)
    }
}

/// The project's repository with its decrypted token (internal answer only).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRepository {
    pub clone_url: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub auth_mode: Option<String>,
    #[serde(default, deserialize_with = "secret_opt")]
    pub access_token: Option<Secret>,
}

impl std::fmt::Debug for GrantRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRepository")
            .field("clone_url", &self.clone_url)
            .field("default_branch", &self.default_branch)
            .finish_non_exhaustive()
    }
}

/// The grant cloud-api answers with (a superset is fine; unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeGrant {
    pub user: GrantUser,
    #[serde(default)]
    pub subscription: Option<Subscription>,
    #[serde(default)]
    pub usage: Option<GrantUsage>,
    #[serde(default)]
    pub organization: Option<IdOnly>,
    #[serde(default)]
    pub cloud_instance: Option<IdOnly>,
    #[serde(default)]
    pub project: Option<GrantProject>,
    #[serde(default)]
    pub conversation: Option<GrantConversation>,
    #[serde(default)]
    pub providers: Vec<GrantProvider>,
    #[serde(default)]
    pub repository: Option<GrantRepository>,
}

/// The plan limits a session is created under.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub label: String,
    pub parallel_sessions_limit: i64,
}

impl RuntimeGrant {
    /// The user's plan: `user.subscription`, else the top-level `subscription`; the limit may
    /// also come from `usage`. `None` means no active subscription.
    pub fn plan(&self) -> Option<Plan> {
        // cloud-api's grant carries the raw fields: no own plan and no complimentary grant
        // means no active subscription, whatever the effective (default) plan says.
        if matches!(self.user.subscription_plan, Some(None))
            && !matches!(self.user.complimentary_grant, Some(Some(ref g)) if !g.is_null())
        {
            return None;
        }
        let sub = self
            .user
            .subscription
            .as_ref()
            .or(self.subscription.as_ref())?;
        let id = sub.id.clone().filter(|s| !s.is_empty())?;
        let limit = sub
            .parallel_sessions_limit
            .or_else(|| self.usage.as_ref().and_then(|u| u.parallel_sessions_limit))?;
        Some(Plan {
            label: sub.label.clone().unwrap_or_else(|| id.clone()),
            id,
            parallel_sessions_limit: limit,
        })
    }

    pub fn usable_providers(&self) -> impl Iterator<Item = &GrantProvider> {
        self.providers.iter().filter(|p| p.usable())
    }

    pub fn organization_id(&self) -> Option<String> {
        self.organization.as_ref().map(|o| o.id.clone())
    }

    /// The repository to check out, for repository projects.
    pub fn repo_spec(&self) -> Option<crate::seal::RepoSpec> {
        let project = self.project.as_ref()?;
        if project.kind.as_deref() != Some("repository") {
            return None;
        }
        let r = self.repository.as_ref()?;
        Some(crate::seal::RepoSpec {
            clone_url: r.clone_url.clone(),
            default_branch: r.default_branch.clone().filter(|b| !b.trim().is_empty()),
            token: r
                .access_token
                .as_ref()
                .filter(|_| r.auth_mode.as_deref() == Some("token"))
                .map(|t| t.expose().to_owned()),
        })
    }

    /// What the agent may do in this grant's project (no project: chat only).
    pub fn capability(&self) -> crate::domain::Capability {
        self.project
            .as_ref()
            .and_then(|p| p.workspace_capability.as_deref())
            .map(crate::domain::Capability::parse)
            .unwrap_or_default()
    }
}

#[async_trait]
pub trait GrantClient: Send + Sync + 'static {
    /// `Ok(None)` when cloud-api denies access.
    async fn runtime_access(
        &self,
        req: &AccessRequest,
    ) -> Result<Option<RuntimeGrant>, InternalCallError>;

    /// Whether `token` identifies a signed-in user at all (used to answer 404 rather than 403
    /// for unknown session ids, without letting anonymous callers probe ids).
    async fn token_is_valid(&self, token: &Secret) -> Result<bool, InternalCallError>;

    /// Whether the conversation still exists for the user (`false` only on a clear 404).
    async fn conversation_exists(
        &self,
        token: &Secret,
        conversation_id: &str,
    ) -> Result<bool, InternalCallError>;

    /// The conversation's transcript read with the user's own token; `None` when unavailable.
    async fn transcript(
        &self,
        token: &Secret,
        conversation_id: &str,
    ) -> Result<Option<Vec<TranscriptMessage>>, InternalCallError>;
}

/// One append: the finished turn's messages, identified so re-sending is idempotent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendRequest {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    pub messages: Vec<TranscriptMessage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// cloud-api refused it for good (conversation gone): do not retry.
    Rejected,
}

#[async_trait]
pub trait TranscriptSink: Send + Sync + 'static {
    async fn append(
        &self,
        conversation_id: &str,
        req: &AppendRequest,
    ) -> Result<AppendOutcome, InternalCallError>;
}

/// cloud-api over HTTP.
#[derive(Clone)]
pub struct CloudApi {
    client: CloudApiClient,
}

impl CloudApi {
    pub fn new(client: CloudApiClient) -> Self {
        Self { client }
    }

    fn url(&self, segments: &[&str]) -> Result<url::Url, InternalCallError> {
        let mut url = self.client.base().clone();
        url.path_segments_mut()
            .map_err(|_| InternalCallError::Unreachable("CHATONS_CLOUD_API_URL".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }
}

fn unreachable(e: reqwest::Error) -> InternalCallError {
    InternalCallError::Unreachable(e.without_url().to_string())
}

impl CloudApi {
    /// `GET` on a public cloud-api route with the user's own token.
    async fn get_as_user(
        &self,
        segments: &[&str],
        token: &Secret,
    ) -> Result<reqwest::Response, InternalCallError> {
        let url = self.url(segments)?;
        self.client
            .http()
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(unreachable)
    }
}

/// `Ok(yes)` for a 2xx answer, `Ok(no)` for `no_when`, else an error.
fn yes_no(resp: &reqwest::Response, no_when: &[u16]) -> Result<bool, InternalCallError> {
    match resp.status().as_u16() {
        200..=299 => Ok(true),
        s if no_when.contains(&s) => Ok(false),
        status => Err(InternalCallError::Status {
            status,
            body: String::new(),
        }),
    }
}

#[async_trait]
impl GrantClient for CloudApi {
    async fn runtime_access(
        &self,
        req: &AccessRequest,
    ) -> Result<Option<RuntimeGrant>, InternalCallError> {
        self.client.post_internal(RUNTIME_ACCESS_PATH, req).await
    }

    async fn token_is_valid(&self, token: &Secret) -> Result<bool, InternalCallError> {
        yes_no(
            &self.get_as_user(&["v1", "account"], token).await?,
            &[401, 403],
        )
    }

    async fn conversation_exists(
        &self,
        token: &Secret,
        conversation_id: &str,
    ) -> Result<bool, InternalCallError> {
        let resp = self
            .get_as_user(&["v1", "conversations", conversation_id], token)
            .await?;
        yes_no(&resp, &[404])
    }

    async fn transcript(
        &self,
        token: &Secret,
        conversation_id: &str,
    ) -> Result<Option<Vec<TranscriptMessage>>, InternalCallError> {
        let resp = self
            .get_as_user(&["v1", "conversations", conversation_id, "messages"], token)
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| InternalCallError::Decode(e.to_string()))?;
        Ok(Some(parse_transcript(&body)))
    }
}

/// Accepts `[...]`, `{"messages": [...]}` or `{"items": [...]}`; messages whose content is a
/// list of parts keep their text parts.
pub fn parse_transcript(body: &serde_json::Value) -> Vec<TranscriptMessage> {
    let list = body
        .as_array()
        .or_else(|| body.get("messages").and_then(|m| m.as_array()))
        .or_else(|| body.get("items").and_then(|m| m.as_array()));
    let Some(list) = list else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|m| {
            let role = m.get("role")?.as_str()?.to_owned();
            let content = match m.get("content")? {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n\n"),
                _ => return None,
            };
            Some(TranscriptMessage {
                id: m
                    .get("id")
                    .and_then(|i| i.as_str())
                    .map(str::to_owned)
                    .unwrap_or_default(),
                role,
                timestamp: m.get("timestamp").and_then(|t| t.as_i64()).unwrap_or(0),
                content,
            })
        })
        .collect()
}

#[async_trait]
impl TranscriptSink for CloudApi {
    async fn append(
        &self,
        conversation_id: &str,
        req: &AppendRequest,
    ) -> Result<AppendOutcome, InternalCallError> {
        let url = self.url(&[
            "v1",
            "internal",
            "conversations",
            conversation_id,
            "messages",
        ])?;
        let path = url.path().to_owned();
        match self
            .client
            .post_internal::<_, serde_json::Value>(&path, req)
            .await
        {
            Ok(Some(_)) => Ok(AppendOutcome::Appended),
            Ok(None) => Ok(AppendOutcome::Rejected),
            Err(InternalCallError::Decode(_)) => Ok(AppendOutcome::Appended),
            Err(InternalCallError::Status { status, body }) if (400..500).contains(&status) => {
                tracing::warn!(status, %body, "cloud-api refused a transcript append.");
                Ok(AppendOutcome::Rejected)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_plan_and_providers() {
        let g: RuntimeGrant = serde_json::from_value(serde_json::json!({
            "user": {"id": "u1", "subscription": {"id": "plus", "label": "Plus", "parallelSessionsLimit": 3}},
            "usage": {"activeParallelSessions": 1, "parallelSessionsLimit": 3},
            "organization": {"id": "o1"},
            "providers": [
                {"id": "p1", "kind": "openai", "secret": "sk", "baseUrl": "http://x", "models": [{"id": "m"}]},
                {"id": "p2", "kind": "openai", "secret": "  "}
            ]
        }))
        .unwrap();
        let plan = g.plan().unwrap();
        assert_eq!(plan.parallel_sessions_limit, 3);
        assert_eq!(g.usable_providers().count(), 1);
        assert!(!format!("{g:?}").contains("sk\""));
        let no_sub: RuntimeGrant =
            serde_json::from_value(serde_json::json!({"user": {"id": "u"}})).unwrap();
        assert!(no_sub.plan().is_none());
        let lapsed: RuntimeGrant = serde_json::from_value(serde_json::json!({"user": {
            "id": "u", "subscriptionPlan": null, "complimentaryGrant": null,
            "subscription": {"id": "plus", "label": "Plus", "parallelSessionsLimit": 3}}}))
        .unwrap();
        assert!(lapsed.plan().is_none());
        let granted: RuntimeGrant = serde_json::from_value(serde_json::json!({"user": {
            "id": "u", "subscriptionPlan": null, "complimentaryGrant": {"planId": "pro"},
            "subscription": {"id": "pro", "label": "Pro", "parallelSessionsLimit": 10}}}))
        .unwrap();
        assert_eq!(granted.plan().unwrap().parallel_sessions_limit, 10);
    }

    #[test]
    fn transcript_shapes() {
        let v = serde_json::json!({"messages": [
            {"id": "a", "role": "user", "content": "hi", "timestamp": 5},
            {"id": "b", "role": "assistant", "content": [{"type": "text", "text": "yo"}]}
        ]});
        let t = parse_transcript(&v);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].content, "yo");
    }
}
