//! The internal endpoints of cloud-api that the other two services call, as typed requests and
//! a typed client. Bearer = `CHATONS_INTERNAL_SERVICE_TOKEN`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Secret;

pub const REALTIME_ACCESS_PATH: &str = "/v1/internal/realtime/access";
pub const REALTIME_AUDIENCE_PATH: &str = "/v1/internal/realtime/audience";
pub const RUNTIME_ACCESS_PATH: &str = "/v1/internal/runtime/access";
pub const RUNTIME_SESSION_ACCESS_PATH: &str = "/v1/internal/runtime/session-access";
pub const MEMORY_UPSERT_PATH: &str = "/v1/internal/memory/upsert";

/// `POST /v1/internal/conversations/{conversationId}/messages` (transcript append).
pub fn transcript_path(conversation_id: &str) -> String {
    let mut out = String::from("/v1/internal/conversations/");
    for b in conversation_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str("/messages");
    out
}

/// Longest desktop instance id accepted anywhere.
pub const MAX_INSTANCE_ID_LEN: usize = 200;

/// A desktop instance id names Redis keys and appears in URLs, so every service accepts the same
/// safe alphabet: ASCII letters, digits, `-`, `_` and `.`, 1 to [`MAX_INSTANCE_ID_LEN`] long
/// (the desktop's UUIDs and the canonical `instance-<userId>` both fit). Returns the trimmed id.
pub fn validate_instance_id(raw: &str) -> Result<&str, String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err("Missing cloudInstanceId".into());
    }
    if id.len() > MAX_INSTANCE_ID_LEN {
        return Err(format!(
            "cloudInstanceId is longer than {MAX_INSTANCE_ID_LEN} characters"
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("cloudInstanceId may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(id)
}

/// `POST /v1/internal/realtime/access` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeAccessRequest {
    /// Missing reads as empty, which cloud-api refuses with a clear 400.
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub cloud_instance_id: String,
}

/// `POST /v1/internal/realtime/audience` body: re-checks an open socket's access without the
/// access token it was opened with. Answer: [`RealtimeAccess`] as of now (`organizationIds` =
/// the user's current organizations), or 404 when the user is gone or no longer holds the
/// instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeAudienceRequest {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub cloud_instance_id: String,
}

/// `POST /v1/internal/realtime/access` answer: who the user is and which organization's events
/// the user may see on that instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeAccess {
    pub user_id: String,
    pub cloud_instance_id: String,
    pub organization_id: String,
    /// Every organization the user belongs to (events of any of them are visible).
    #[serde(default)]
    pub organization_ids: Vec<String>,
}

/// `POST /v1/internal/runtime/access` body. The user is the owner of `accessToken`; the instance
/// must be registered by that user (or be the canonical `instance-<userId>`); a given project or
/// conversation must belong to one of the user's organizations (else 404).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeAccessRequest {
    /// Missing reads as empty, which cloud-api refuses with a clear 400.
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub cloud_instance_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// `POST /v1/internal/runtime/session-access` body: whether the user of a runtime session may
/// still read its conversation, asked without an access token (the shipped desktop reads
/// snapshots without `Authorization`). Answer: [`RuntimeSessionAccess`], or 404 when the user is
/// gone, no longer holds the instance, or no longer sees the conversation (or its project).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSessionAccessRequest {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub cloud_instance_id: String,
    #[serde(default)]
    pub conversation_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// `POST /v1/internal/runtime/session-access` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSessionAccess {
    pub user_id: String,
    pub conversation_id: String,
}

/// A subscription plan as every service sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantPlan {
    pub id: String,
    pub label: String,
    pub parallel_sessions_limit: i64,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub is_hidden: bool,
}

/// Parallel runtime sessions in use against the plan's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantUsage {
    pub active_parallel_sessions: i64,
    pub parallel_sessions_limit: i64,
    pub remaining_parallel_sessions: i64,
}

/// An active complimentary grant: both the first system's raw form (`planId`) and the public form
/// (`plan`), so readers of either keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantComplimentary {
    pub plan_id: String,
    pub plan: GrantPlan,
    pub granted_at: String,
    pub expires_at: Option<String>,
}

/// The grant's user: a superset of the first system's raw user state and the public user record,
/// so `user.subscription.*` is always there (the first system's grant lacked it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub created_at: String,
    pub subscription_plan: Option<String>,
    pub email_verified_at: Option<String>,
    /// The effective plan (complimentary grant first, then the base plan).
    pub subscription: GrantPlan,
    pub complimentary_grant: Option<GrantComplimentary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantOrganization {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// The user's role there: `owner`, `admin`, `member` or `billing_viewer`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantEndpoints {
    pub api_base_url: String,
    pub realtime_base_url: String,
    pub runtime_base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantCloudInstance {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub auth_mode: String,
    pub connection_status: String,
    pub last_error: Option<String>,
    pub endpoints: GrantEndpoints,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantProject {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub repo_name: String,
    /// `repository` or `conversation_only`.
    pub kind: String,
    /// `full_tools` or `chat_only`.
    pub workspace_capability: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantConversation {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub status: String,
    pub model_provider: Option<String>,
    pub model_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantModel {
    pub id: String,
    pub label: String,
}

/// A provider with its decrypted secret: only ever sent over the internal endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantProvider {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub base_url: String,
    pub credential_type: String,
    pub secret: String,
    pub models: Vec<GrantModel>,
    pub default_model: Option<String>,
    pub supports_cloud_runtime: bool,
}

impl std::fmt::Debug for GrantProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantProvider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("baseUrl", &self.base_url)
            .field("secret", &"***")
            .finish_non_exhaustive()
    }
}

/// The project's repository with its decrypted access token (internal only).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRepository {
    pub clone_url: String,
    pub default_branch: Option<String>,
    /// `none` or `token`.
    pub auth_mode: String,
    pub access_token: Option<String>,
}

impl std::fmt::Debug for GrantRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRepository")
            .field("cloneUrl", &self.clone_url)
            .field("accessToken", &self.access_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// `POST /v1/internal/runtime/access` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeGrant {
    pub user: GrantUser,
    /// Same as `user.subscription`: the effective plan, complimentary grants included.
    pub subscription: GrantPlan,
    pub usage: GrantUsage,
    pub organization: GrantOrganization,
    pub cloud_instance: GrantCloudInstance,
    pub project: Option<GrantProject>,
    pub conversation: Option<GrantConversation>,
    pub providers: Vec<GrantProvider>,
    pub repository: Option<GrantRepository>,
}

/// One transcript message, as the desktop and the runtime exchange them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptMessage {
    pub id: String,
    pub role: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub content: String,
}

/// `POST /v1/internal/conversations/{id}/messages` body: appends (never replaces); a message whose
/// `id` is already in the transcript is skipped, so retries are harmless. 404 unless the
/// conversation belongs to an organization `userId` is a member of.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptAppendRequest {
    pub user_id: String,
    pub messages: Vec<TranscriptMessage>,
}

/// Answer of the transcript append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptAppendResponse {
    pub conversation_id: String,
    /// How many of the sent messages were new.
    pub appended: u64,
    /// Messages in the transcript after the append.
    pub total: u64,
}

/// `POST /v1/internal/memory/upsert` body; `input` is the public `POST /v1/memory` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryUpsertRequest {
    pub organization_id: String,
    pub user_id: String,
    pub input: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum InternalCallError {
    #[error("cloud-api is unreachable: {0}")]
    Unreachable(String),
    #[error("cloud-api answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("cloud-api answered an unexpected body: {0}")]
    Decode(String),
}

/// Client for cloud-api's internal endpoints.
#[derive(Clone)]
pub struct CloudApiClient {
    base: Url,
    token: Secret,
    http: reqwest::Client,
}

impl CloudApiClient {
    pub fn new(base: Url, token: Secret) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self { base, token, http }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `Ok(None)` when cloud-api denies access (401/404); errors only for outages.
    pub async fn realtime_access(
        &self,
        req: &RealtimeAccessRequest,
    ) -> Result<Option<RealtimeAccess>, InternalCallError> {
        self.post_internal(REALTIME_ACCESS_PATH, req).await
    }

    /// The current audience of an open socket; `Ok(None)` when the user lost access.
    pub async fn realtime_audience(
        &self,
        req: &RealtimeAudienceRequest,
    ) -> Result<Option<RealtimeAccess>, InternalCallError> {
        self.post_internal(REALTIME_AUDIENCE_PATH, req).await
    }

    /// The runtime grant; `Ok(None)` when denied (unknown token, foreign instance/project/conversation).
    pub async fn runtime_access(
        &self,
        req: &RuntimeAccessRequest,
    ) -> Result<Option<RuntimeGrant>, InternalCallError> {
        self.post_internal(RUNTIME_ACCESS_PATH, req).await
    }

    /// Whether a runtime session's user may still read its conversation; `Ok(None)` when not.
    pub async fn runtime_session_access(
        &self,
        req: &RuntimeSessionAccessRequest,
    ) -> Result<Option<RuntimeSessionAccess>, InternalCallError> {
        self.post_internal(RUNTIME_SESSION_ACCESS_PATH, req).await
    }

    /// Appends messages to a conversation's transcript; `Ok(None)` when the conversation is not
    /// visible to `req.user_id`.
    pub async fn append_transcript(
        &self,
        conversation_id: &str,
        req: &TranscriptAppendRequest,
    ) -> Result<Option<TranscriptAppendResponse>, InternalCallError> {
        self.post_internal(&transcript_path(conversation_id), req)
            .await
    }

    /// Upserts a memory as `req.user_id`; answers `{"item": Memory}`.
    pub async fn memory_upsert(
        &self,
        req: &MemoryUpsertRequest,
    ) -> Result<Option<serde_json::Value>, InternalCallError> {
        self.post_internal(MEMORY_UPSERT_PATH, req).await
    }

    /// POSTs JSON to an internal path; 401/403/404 are "denied" (`Ok(None)`).
    pub async fn post_internal<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Option<T>, InternalCallError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| InternalCallError::Unreachable(e.to_string()))?;
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| InternalCallError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403 | 404) {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(InternalCallError::Status {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        response
            .json::<T>()
            .await
            .map(Some)
            .map_err(|e| InternalCallError::Decode(e.to_string()))
    }

    /// The underlying HTTP client, for calls made with a user's own bearer token.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_keep_to_the_safe_alphabet() {
        assert_eq!(
            validate_instance_id(" 3f2c9a1e-0b7d-4c55-9e21-6a8f0d1b2c3d "),
            Ok("3f2c9a1e-0b7d-4c55-9e21-6a8f0d1b2c3d")
        );
        assert!(validate_instance_id("instance-user-1.a_b").is_ok());
        assert!(validate_instance_id("").is_err());
        assert!(validate_instance_id("a/b").is_err());
        assert!(validate_instance_id("a:b").is_err());
        assert!(validate_instance_id(&"x".repeat(MAX_INSTANCE_ID_LEN + 1)).is_err());
    }

    #[test]
    fn transcript_path_escapes_the_id() {
        assert_eq!(
            transcript_path("conversation-1"),
            "/v1/internal/conversations/conversation-1/messages"
        );
        assert_eq!(
            transcript_path("a/b c"),
            "/v1/internal/conversations/a%2Fb%20c/messages"
        );
    }

    #[test]
    fn provider_debug_hides_the_secret() {
        let p = GrantProvider {
            id: "provider-1".into(),
            kind: "openai".into(),
            label: "x".into(),
            base_url: "http://x".into(),
            credential_type: "api_key".into(),
            secret: "sk-live-123".into(),
            models: vec![],
            default_model: None,
            supports_cloud_runtime: true,
        };
        assert!(!format!("{p:?}").contains("sk-live"));
    }
}
