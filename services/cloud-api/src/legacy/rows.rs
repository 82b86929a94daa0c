//! The first system's rows, as its Postgres schema holds them (reference §6). Columns are read
//! by name; JSON columns stay `serde_json::Value` because the first system wrote them unchecked.

use serde_json::Value;

use crate::domain::Timestamp;

#[derive(Debug, sqlx::FromRow)]
pub struct LegacyPlan {
    pub id: String,
    pub label: String,
    pub parallel_sessions_limit: i32,
    pub is_default: bool,
}

#[derive(Debug, sqlx::FromRow)]
pub struct LegacyUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub created_at: Timestamp,
    pub subscription_plan: Option<String>,
    pub password_hash: Option<String>,
    pub email_verified_at: Option<Timestamp>,
    pub complimentary_plan_id: Option<String>,
    pub complimentary_granted_at: Option<Timestamp>,
    pub complimentary_expires_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
pub struct LegacySession {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub active_organization_id: Option<String>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

#[derive(Debug, sqlx::FromRow)]
pub struct LegacyOrg {
    pub id: String,
    pub owner_user_id: String,
    pub slug: String,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, sqlx::FromRow)]
pub struct LegacyMembership {
    pub user_id: String,
    pub role: String,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
pub struct LegacyProvider {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub base_url: String,
    pub credential_type: String,
    pub models_json: Value,
    pub default_model: Option<String>,
    pub supports_cloud_runtime: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// From `cloud_organization_provider_secrets` (plaintext there).
    pub secret: Option<String>,
}

#[derive(sqlx::FromRow)]
pub struct LegacyProject {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub repo_name: String,
    pub project_kind: String,
    pub workspace_capability: String,
    pub repository_json: Option<Value>,
    pub cloud_status: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// From `cloud_project_repository_secrets` (plaintext there).
    pub access_token: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct LegacyConversation {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    pub title: String,
    pub status: String,
    pub model_provider: Option<String>,
    pub model_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// From `cloud_conversation_messages` (one JSON array per conversation).
    pub messages_json: Option<Value>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct LegacyMemory {
    pub id: String,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub scope: String,
    pub kind: String,
    pub title: Option<String>,
    pub content: String,
    pub tags_json: Value,
    pub topic_key: String,
    pub confidence: Option<f64>,
    pub schema_version: Option<i32>,
    pub reinforced_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub times_used: Option<i32>,
    pub source_conversation_id: Option<String>,
    pub origin_type: Option<String>,
    pub status: Option<String>,
    pub visibility: Option<String>,
    pub fingerprint: String,
    pub archived: Option<bool>,
    pub source: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
