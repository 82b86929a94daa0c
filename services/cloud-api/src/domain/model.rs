//! Records as the stores keep them. Wire shapes are in `http::views`; secrets appear here only
//! as ciphertext ([`Sealed`]) or hashes.

use chrono::DateTime;

use super::Timestamp;
use super::ids::*;
use super::states::*;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Plan {
    pub id: String,
    pub label: String,
    #[sqlx(try_from = "i32")]
    pub parallel_sessions_limit: i64,
    pub is_default: bool,
    pub is_hidden: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComplimentaryGrant {
    pub plan_id: String,
    pub granted_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    /// Lower-cased.
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub subscription_plan: Option<String>,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    pub email_verified_at: Option<Timestamp>,
    pub complimentary: Option<ComplimentaryGrant>,
    /// Set by a global admin: a disabled user signs in nowhere and their tokens authenticate
    /// nothing (`None` = enabled).
    pub disabled_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// One issued access/refresh pair. Tokens themselves are never stored, only their SHA-256.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Session {
    pub id: SessionId,
    pub family_id: FamilyId,
    pub user_id: UserId,
    pub client_id: String,
    pub scope: String,
    pub access_token_hash: String,
    pub refresh_token_hash: Option<String>,
    pub active_organization_id: Option<OrgId>,
    pub auth_time: Timestamp,
    pub expires_at: Timestamp,
    pub refresh_expires_at: Option<Timestamp>,
    pub rotated_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// How the user authenticated, as OIDC `amr` values separated by spaces (`pwd`, `pwd otp
    /// mfa`, `hwk user`): carried from the sign-in to every token issued from it.
    pub amr: String,
}

/// The `amr` (RFC 8176) of a password sign-in.
pub const AMR_PASSWORD: &str = "pwd";
/// A password and a one-time code (TOTP or a recovery code).
pub const AMR_PASSWORD_AND_OTP: &str = "pwd otp mfa";
/// A passkey: proof of possession of a key, verified by the authenticator (PIN, biometrics).
pub const AMR_PASSKEY: &str = "pop mfa";

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq)]
pub enum RotateOutcome {
    /// The old pair is rotated; the new one (already stored) is returned.
    Rotated(Box<Session>),
    /// Presented again within the grace window after its rotation: the successor issued then
    /// (already stored, unrevoked) is returned again and nothing changes.
    Repeated(Box<Session>),
    /// The token was already rotated or revoked: its whole family is now revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Organization {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub owner_user_id: Option<UserId>,
    pub is_personal: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Membership {
    pub organization_id: OrgId,
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: Timestamp,
}

/// A member with the user fields the members list shows.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Member {
    #[sqlx(flatten)]
    pub membership: Membership,
    pub email: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Invite {
    pub id: InviteId,
    pub token_hash: String,
    pub organization_id: OrgId,
    pub invited_email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub inviter_user_id: Option<UserId>,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// AES-256-GCM ciphertext with its nonce and the id of the key that sealed it (for rotation).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_id: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealed(key {}, {} bytes)",
            self.key_id,
            self.ciphertext.len()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderModel {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub id: ProviderId,
    pub organization_id: OrgId,
    pub kind: String,
    pub label: String,
    pub base_url: String,
    pub credential_type: String,
    pub models: Vec<ProviderModel>,
    pub default_model: Option<String>,
    pub supports_cloud_runtime: bool,
    pub secret: Option<Sealed>,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Repository {
    pub clone_url: String,
    pub default_branch: Option<String>,
    /// `none` or `token`.
    pub auth_mode: String,
    pub token: Option<Sealed>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: ProjectId,
    pub organization_id: OrgId,
    pub created_by: Option<UserId>,
    pub name: String,
    pub repo_name: String,
    pub kind: ProjectKind,
    pub workspace_capability: WorkspaceCapability,
    /// Only ever set for `repository` projects.
    pub repository: Option<Repository>,
    pub cloud_status: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Conversation {
    pub id: ConversationId,
    pub organization_id: OrgId,
    pub project_id: ProjectId,
    pub created_by: Option<UserId>,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub status: ConversationStatus,
    pub model_provider: Option<String>,
    pub model_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Message {
    pub id: String,
    pub role: String,
    #[sqlx(rename = "timestamp_ms")]
    pub timestamp: i64,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Instance {
    pub id: InstanceId,
    pub user_id: UserId,
    pub name: String,
    pub created_at: Timestamp,
}

/// Result of registering a desktop's instance id.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterOutcome {
    Created(Instance),
    /// Already registered by the same user.
    Existing(Instance),
    /// Held by another user.
    Taken,
    /// The user already holds the maximum number of instances.
    LimitReached,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Memory {
    pub id: MemoryId,
    pub organization_id: OrgId,
    /// Set for global scope (the owner).
    pub user_id: Option<UserId>,
    /// Set for project scope.
    pub project_id: Option<ProjectId>,
    #[sqlx(try_from = "String")]
    pub scope: MemoryScope,
    pub kind: String,
    pub title: Option<String>,
    pub content: String,
    #[sqlx(rename = "tags_json", json)]
    pub tags: Vec<String>,
    pub topic_key: String,
    pub confidence: f64,
    pub schema_version: i32,
    pub reinforced_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub times_used: i32,
    pub source_conversation_id: Option<ConversationId>,
    pub origin_type: String,
    #[sqlx(try_from = "String")]
    pub status: MemoryStatus,
    pub visibility: String,
    pub fingerprint: String,
    pub archived: bool,
    pub source: String,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which memories a list, search or stats call looks at. The store applies the visibility rule:
/// rows of `organization_id` that are global and owned by `user_id`, or project-scoped in one of
/// `project_ids` (projects the caller can access).
#[derive(Debug, Clone, Default)]
pub struct MemoryFilter {
    pub organization_id: OrgId,
    pub user_id: UserId,
    /// One scope, or `None` for both.
    pub scope: Option<MemoryScope>,
    pub project_id: Option<ProjectId>,
    pub kind: Option<String>,
    pub include_archived: bool,
    pub active_only: bool,
}

/// Parallel runtime sessions in use against the effective plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub active: i64,
    pub limit: i64,
}

impl Usage {
    pub fn remaining(&self) -> i64 {
        (self.limit - self.active).max(0)
    }
}

/// Keyset position in a sorted list: the sort key and id of the last item returned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    pub key: String,
    pub id: String,
}

/// A page request: at most `limit` items after `after`.
#[derive(Debug, Clone, Default)]
pub struct PageReq {
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl PageReq {
    pub fn first(limit: usize) -> Self {
        Self { limit, after: None }
    }
}

/// A page: the items and, when more follow, the cursor of the last one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Cuts `fetched` (the store fetched `limit + 1`) to `limit` and derives the next cursor.
    pub fn from_fetched(mut fetched: Vec<T>, limit: usize, cursor: impl Fn(&T) -> Cursor) -> Self {
        let next = if fetched.len() > limit {
            fetched.truncate(limit);
            fetched.last().map(&cursor)
        } else {
            None
        };
        Self {
            items: fetched,
            next,
        }
    }
}

/// Sort key of lists ordered by creation time: microseconds since the epoch, zero-padded so the
/// string order is the time order.
pub fn time_key(t: Timestamp) -> String {
    format!("{:020}", t.timestamp_micros().max(0))
}

pub fn parse_time_key(key: &str) -> Option<Timestamp> {
    key.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
}
