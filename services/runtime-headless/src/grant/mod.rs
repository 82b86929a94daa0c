//! What runtime-headless asks cloud-api: the runtime grant (re-checked on every call), whether a
//! bearer token is valid at all, the transcript of a conversation, and transcript appends.
//!
//! The traits keep the HTTP layer and the worker testable; the one implementation talks to the
//! real cloud-api through [`CloudApiClient`].

mod cache;

pub use cache::CachedGrants;

use crate::domain::TranscriptMessage;
use async_trait::async_trait;
use cloud_common::Secret;
use cloud_common::internal::{CloudApiClient, InternalCallError, RuntimeSessionAccessRequest};

pub use cloud_common::internal::{
    GrantProvider, RuntimeAccessRequest as AccessRequest, RuntimeGrant,
    TranscriptAppendRequest as AppendRequest,
};

/// The plan limits a session is created under.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub label: String,
    pub parallel_sessions_limit: i64,
}

/// What the runtime reads from a grant (the wire types live in cloud-common; these are the
/// runtime's rules about them).
pub trait GrantRules {
    /// The plan sessions are created under; `None` without an active subscription (no own plan
    /// and no complimentary grant, whatever the effective default plan says).
    fn plan(&self) -> Option<Plan>;
    fn usable_providers(&self) -> impl Iterator<Item = &GrantProvider>;
    fn organization_id(&self) -> Option<String>;
    /// What the agent may do in this grant's project (no project: chat only).
    fn capability(&self) -> crate::domain::Capability;
    /// The repository to check out, for repository projects.
    fn repo_spec(&self) -> Option<crate::seal::RepoSpec>;
}

/// A provider turns can run with: cloud runtime allowed and a secret set.
pub fn usable(p: &GrantProvider) -> bool {
    p.supports_cloud_runtime && !p.secret.trim().is_empty()
}

/// Whether a desktop's provider name (id, kind or label) names this provider.
pub fn names(p: &GrantProvider, name: &str) -> bool {
    p.id == name || p.kind == name || p.label == name
}

impl GrantRules for RuntimeGrant {
    fn plan(&self) -> Option<Plan> {
        if self.user.subscription_plan.is_none() && self.user.complimentary_grant.is_none() {
            return None;
        }
        let sub = &self.user.subscription;
        (!sub.id.is_empty()).then(|| Plan {
            id: sub.id.clone(),
            label: if sub.label.is_empty() {
                sub.id.clone()
            } else {
                sub.label.clone()
            },
            parallel_sessions_limit: sub.parallel_sessions_limit,
        })
    }

    fn usable_providers(&self) -> impl Iterator<Item = &GrantProvider> {
        self.providers.iter().filter(|p| usable(p))
    }

    fn organization_id(&self) -> Option<String> {
        Some(self.organization.id.clone()).filter(|id| !id.is_empty())
    }

    fn capability(&self) -> crate::domain::Capability {
        self.project
            .as_ref()
            .map(|p| crate::domain::Capability::parse(&p.workspace_capability))
            .unwrap_or_default()
    }

    fn repo_spec(&self) -> Option<crate::seal::RepoSpec> {
        if self.project.as_ref()?.kind != "repository" {
            return None;
        }
        let r = self.repository.as_ref()?;
        Some(crate::seal::RepoSpec {
            clone_url: r.clone_url.clone(),
            default_branch: r.default_branch.clone().filter(|b| !b.trim().is_empty()),
            token: r
                .access_token
                .clone()
                .filter(|t| r.auth_mode == "token" && !t.trim().is_empty()),
        })
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

    /// Whether the session's user may still read its conversation, asked without a token (the
    /// desktop's snapshot request carries none): `false` on a clear denial.
    async fn session_access(
        &self,
        req: &RuntimeSessionAccessRequest,
    ) -> Result<bool, InternalCallError>;

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
        self.client.runtime_access(req).await
    }

    async fn token_is_valid(&self, token: &Secret) -> Result<bool, InternalCallError> {
        yes_no(
            &self.get_as_user(&["v1", "account"], token).await?,
            &[401, 403],
        )
    }

    async fn session_access(
        &self,
        req: &RuntimeSessionAccessRequest,
    ) -> Result<bool, InternalCallError> {
        Ok(self.client.runtime_session_access(req).await?.is_some())
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
        match self.client.append_transcript(conversation_id, req).await {
            Ok(Some(_)) => Ok(AppendOutcome::Appended),
            Ok(None) => Ok(AppendOutcome::Rejected),
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

    /// A grant as cloud-api sends it, changed by `edit`.
    pub fn grant_json(edit: impl FnOnce(&mut serde_json::Value)) -> RuntimeGrant {
        let plan = serde_json::json!({"id": "plus", "label": "Plus", "parallelSessionsLimit": 3});
        let mut v = serde_json::json!({
            "user": {"id": "u1", "email": "u@example.test", "displayName": "U", "isAdmin": false,
                     "createdAt": "2026-01-01T00:00:00Z", "subscriptionPlan": "plus",
                     "emailVerifiedAt": null, "subscription": plan, "complimentaryGrant": null},
            "subscription": plan,
            "usage": {"activeParallelSessions": 1, "parallelSessionsLimit": 3, "remainingParallelSessions": 2},
            "organization": {"id": "o1", "slug": "o", "name": "O", "role": "owner"},
            "cloudInstance": {"id": "i1", "name": "I", "baseUrl": "http://x", "authMode": "oidc",
                              "connectionStatus": "connected", "lastError": null,
                              "endpoints": {"apiBaseUrl": "a", "realtimeBaseUrl": "r", "runtimeBaseUrl": "t"}},
            "project": null, "conversation": null, "repository": null,
            "providers": [
                {"id": "p1", "kind": "openai", "label": "Main", "baseUrl": "http://x", "credentialType": "api-key",
                 "secret": "sk", "models": [{"id": "m", "label": "M"}], "defaultModel": null, "supportsCloudRuntime": true},
                {"id": "p2", "kind": "openai", "label": "Empty", "baseUrl": "", "credentialType": "api-key",
                 "secret": "  ", "models": [], "defaultModel": null, "supportsCloudRuntime": true}
            ]
        });
        edit(&mut v);
        serde_json::from_value(v).expect("a grant")
    }

    #[test]
    fn grant_plan_providers_and_capability() {
        let g = grant_json(|_| {});
        assert_eq!(g.plan().unwrap().parallel_sessions_limit, 3);
        assert_eq!(g.usable_providers().count(), 1);
        assert!(names(&g.providers[0], "Main") && names(&g.providers[0], "openai"));
        assert!(!format!("{g:?}").contains("\"sk\""));
        assert_eq!(g.capability(), crate::domain::Capability::ChatOnly);
        let lapsed = grant_json(|v| v["user"]["subscriptionPlan"] = serde_json::Value::Null);
        assert!(
            lapsed.plan().is_none(),
            "no own plan and no grant: no subscription"
        );
        let repo = grant_json(|v| {
            v["project"] = serde_json::json!({"id": "pr", "organizationId": "o1", "name": "R",
                "repoName": "r", "kind": "repository", "workspaceCapability": "full_tools"});
            v["repository"] = serde_json::json!({"cloneUrl": "https://g/r.git", "defaultBranch": "",
                "authMode": "token", "accessToken": "ghp_x"});
        });
        assert_eq!(repo.capability(), crate::domain::Capability::FullTools);
        let spec = repo.repo_spec().unwrap();
        assert_eq!(
            (spec.default_branch, spec.token.as_deref()),
            (None, Some("ghp_x"))
        );
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
