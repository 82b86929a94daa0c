//! Persistence behind one trait, with a Postgres and an in-memory implementation that pass the
//! same contract suite (`tests/it/store_contract.rs`). Handlers and services only see
//! `Arc<dyn Store>`; no SQL exists outside `postgres.rs`.
//!
//! Methods are small and do not check permissions: callers (the `service` layer) resolve the
//! caller's memberships first and pass ids they have already authorised. Operations that must be
//! atomic (signup, refresh rotation, invite acceptance, transcript append, instance registration)
//! are single methods so each implementation can make them atomic.

pub mod audit;
pub mod listing;
pub mod memory;
pub mod plan_cache;
pub mod postgres;
pub mod self_service;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::*;
pub use audit::{AdminChange, AuditStore, DirectoryStore};
pub use self_service::*;

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a new account starts with, written in one transaction.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user: User,
    pub organization: Organization,
    pub default_project: Project,
}

/// Admin changes to a plan; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PlanPatch {
    pub label: Option<String>,
    pub parallel_sessions_limit: Option<i64>,
    pub is_default: Option<bool>,
    pub is_hidden: Option<bool>,
}

/// Accounts: the user row, its password hash and the admin-managed entitlements.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates the user, the personal organization (user = owner) and its default project.
    /// `Conflict` when the email (case-insensitive) is taken.
    async fn create_account(&self, account: NewAccount) -> StoreResult<()>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Users by creation time.
    async fn list_users(&self, page: &PageReq) -> StoreResult<Page<User>>;
    /// Writes the admin-managed fields: `is_admin`, `subscription_plan`, `complimentary`.
    async fn update_user_entitlements(&self, user: &User) -> StoreResult<()>;
    /// Replaces the password hash only if it is still `old` (a legacy hash upgraded at login
    /// must not overwrite a password reset that happened meanwhile); true when replaced.
    async fn replace_password_hash(&self, id: &UserId, old: &str, new: &str) -> StoreResult<bool>;
    /// Atomically (self-service): if the hash is still `old_hash`, replaces it, deletes the
    /// user's password reset tokens and revokes every session of theirs outside the family
    /// `keep`; false (nothing changed) when the hash moved meanwhile or the user is gone.
    async fn change_password(&self, change: PasswordChange<'_>) -> StoreResult<bool>;
    /// Atomically: unless the user is the last owner of an organization with other members
    /// ([`AccountDeletion::LastOwner`], nothing changes), deletes the user, their personal
    /// organization and every organization they are the only member of, with what cascades
    /// (memberships, sessions, tokens, instances, providers, projects, conversations, memories).
    /// `NotFound` when there is no such user.
    async fn delete_account(&self, id: &UserId) -> StoreResult<AccountDeletion>;
}

/// Issued token pairs (hashes only), rotation and revocation.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// The unrevoked, unexpired session whose access token hashes to `hash`.
    async fn session_by_access_hash(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Session>>;
    /// The session a refresh token belongs to, whatever its state (revocation looks it up).
    async fn session_by_refresh_hash(&self, hash: &str) -> StoreResult<Option<Session>>;
    /// Atomically: if `refresh_hash` belongs to a live, unrotated session, marks it rotated and
    /// stores `next` (same family, user, client, scope, organization and auth time). If it was
    /// rotated less than `grace` ago and its family is not revoked, returns the stored session
    /// whose access hash is `next.access_token_hash` (the successor issued then: successors are
    /// derived from the presented token, so the same token always names the same successor) and
    /// changes nothing. Any other re-use revokes the family.
    async fn rotate_refresh(&self, rotation: Rotation<'_>) -> StoreResult<RotateOutcome>;
    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> StoreResult<()>;
    async fn revoke_family(&self, family: &FamilyId, now: Timestamp) -> StoreResult<()>;
    /// Deletes sessions whose access and refresh tokens both expired before `before`
    /// (housekeeping); rotated rows are kept until then, for re-use detection.
    async fn purge_sessions(&self, before: Timestamp) -> StoreResult<u64>;
    /// Sets the active organization on every live session of the user.
    async fn set_active_organization(&self, user: &UserId, org: &OrgId) -> StoreResult<()>;
    /// The user's live session families, one [`LiveSession`] each, newest first, at most
    /// `limit`. A family is live while one of its rows is unrevoked with an unexpired access
    /// token or an unrotated, unexpired refresh token.
    async fn live_sessions(
        &self,
        user: &UserId,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<LiveSession>>;
    /// Revokes the family when it is the user's and live (as in [`Self::live_sessions`]);
    /// false, changing nothing, otherwise (another user's family is not found).
    async fn revoke_user_family(
        &self,
        user: &UserId,
        family: &FamilyId,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Revokes every unrevoked session of the user outside the family `keep`; how many live
    /// families (as in [`Self::live_sessions`]) that ended.
    async fn revoke_other_families(
        &self,
        user: &UserId,
        keep: &FamilyId,
        now: Timestamp,
    ) -> StoreResult<u64>;
}

/// Subscription plans and the runtime sessions counted against them.
#[async_trait]
pub trait PlanStore: Send + Sync + 'static {
    async fn plans(&self) -> StoreResult<Vec<Plan>>;
    /// `NotFound` for an unknown plan. Setting `is_default` clears it on the others.
    async fn update_plan(&self, id: &str, patch: &PlanPatch) -> StoreResult<()>;
    /// Runtime sessions of the user not stopped/errored whose lease has not expired.
    async fn active_runtime_sessions(&self, user: &UserId, now: Timestamp) -> StoreResult<i64>;
}

/// Organizations and their members.
#[async_trait]
pub trait OrganizationStore: Send + Sync + 'static {
    /// Creates an organization with `owner` as its owner.
    async fn create_organization(&self, org: &Organization, owner: &UserId) -> StoreResult<()>;
    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>>;
    /// Every organization the user is a member of, with the role, personal one first.
    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(Organization, Role)>>;
    async fn role_in(&self, org: &OrgId, user: &UserId) -> StoreResult<Option<Role>>;
    /// `Conflict` when the slug is taken.
    async fn rename_organization(&self, org: &OrgId, name: &str, slug: &str) -> StoreResult<()>;
    /// Members ordered by join time.
    async fn members(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Member>>;
    /// `NotFound` when the user is not a member; `LastOwner` when it would demote the last
    /// owner (checked atomically: two owners demoting each other at once keep one).
    async fn set_role(&self, org: &OrgId, user: &UserId, role: Role) -> StoreResult<()>;
    /// `NotFound` when the user is not a member; `LastOwner` as for [`Self::set_role`].
    async fn remove_member(&self, org: &OrgId, user: &UserId) -> StoreResult<()>;
    /// Owners of the organization (to keep at least one).
    async fn owner_count(&self, org: &OrgId) -> StoreResult<i64>;
}

/// Pending organization invites.
#[async_trait]
pub trait InviteStore: Send + Sync + 'static {
    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()>;
    async fn invite_by_token_hash(&self, hash: &str) -> StoreResult<Option<Invite>>;
    /// Pending (not accepted, not revoked) invites, newest last.
    async fn invites(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Invite>>;
    /// Atomically: marks the invite accepted (only if still pending and unexpired) and adds the
    /// membership (keeping a higher existing role). `NotFound` when no longer acceptable.
    async fn accept_invite(&self, id: &InviteId, user: &UserId, now: Timestamp) -> StoreResult<()>;
    /// Invites created after `since` (accepted and revoked ones included): `(in org, by inviter)`.
    async fn recent_invite_counts(
        &self,
        org: &OrgId,
        inviter: &UserId,
        since: Timestamp,
    ) -> StoreResult<(u64, u64)>;
    /// `NotFound` unless the invite is pending in `org`.
    async fn revoke_invite(&self, org: &OrgId, id: &InviteId, now: Timestamp) -> StoreResult<()>;
}

/// Desktop instance ids and who holds them.
#[async_trait]
pub trait InstanceStore: Send + Sync + 'static {
    /// Registers `instance` to its user unless the id is held (by them: `Existing`; by someone
    /// else: `Taken`) or the user already holds `max` instances (`LimitReached`). Atomic with
    /// respect to concurrent registrations of the same user.
    async fn register_instance(
        &self,
        instance: &Instance,
        max: usize,
    ) -> StoreResult<RegisterOutcome>;
    /// Removes the user's instance; false when the user holds no such instance.
    async fn delete_instance(&self, user: &UserId, id: &InstanceId) -> StoreResult<bool>;
    async fn instance(&self, id: &InstanceId) -> StoreResult<Option<Instance>>;
    async fn instances_of(&self, user: &UserId, page: &PageReq) -> StoreResult<Page<Instance>>;
}

/// LLM provider settings with their sealed secrets.
#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    async fn insert_provider(&self, provider: &Provider) -> StoreResult<()>;
    async fn provider(&self, id: &ProviderId) -> StoreResult<Option<Provider>>;
    /// Providers of an organization by creation time.
    async fn providers(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Provider>>;
    async fn update_provider(&self, provider: &Provider) -> StoreResult<()>;
    async fn delete_provider(&self, id: &ProviderId) -> StoreResult<()>;
    /// Up to `limit` providers (by id, after `after`) whose secret is sealed under a key other
    /// than `key_id`: what `cloud-api reseal-secrets` still has to do.
    async fn providers_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&ProviderId>,
        limit: usize,
    ) -> StoreResult<Vec<Provider>>;
    /// Replaces a provider's sealed secret only if it is still the one sealed with `old_nonce`
    /// (a secret edited meanwhile is left alone); true when replaced.
    async fn reseal_provider_secret(
        &self,
        id: &ProviderId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> StoreResult<bool>;
}

/// Projects and their repository settings.
#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    async fn insert_project(&self, project: &Project) -> StoreResult<()>;
    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;
    /// Projects of these organizations ordered by (name, id).
    async fn projects(&self, orgs: &[OrgId], page: &PageReq) -> StoreResult<Page<Project>>;
    async fn update_project(&self, project: &Project) -> StoreResult<()>;
    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()>;
}

/// Conversations and their append-only transcripts.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    async fn insert_conversation(&self, conversation: &Conversation) -> StoreResult<()>;
    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>>;
    /// Conversations of these organizations (optionally one project) ordered by (title, id).
    async fn conversations(
        &self,
        orgs: &[OrgId],
        project: Option<&ProjectId>,
        page: &PageReq,
    ) -> StoreResult<Page<Conversation>>;
    async fn update_conversation(&self, conversation: &Conversation) -> StoreResult<()>;
    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()>;
    /// Appends the messages whose id is not yet in the transcript, in order, atomically with
    /// respect to concurrent appends. Returns (appended, total).
    async fn append_messages(
        &self,
        conversation: &ConversationId,
        messages: &[Message],
    ) -> StoreResult<(u64, u64)>;
    /// Messages in transcript order; the cursor key is the position.
    async fn messages(&self, id: &ConversationId, page: &PageReq) -> StoreResult<Page<Message>>;
}

/// Memories: visibility, full-text candidates and supersession.
#[async_trait]
pub trait MemoriesStore: Send + Sync + 'static {
    async fn memory(&self, id: &MemoryId) -> StoreResult<Option<Memory>>;
    /// Inserts or replaces the row with this id.
    async fn save_memory(&self, memory: &Memory) -> StoreResult<()>;
    /// Marks other active rows of `fingerprint` in `org` superseded (except `keep`).
    async fn supersede_memories(
        &self,
        org: &OrgId,
        fingerprint: &str,
        keep: &MemoryId,
    ) -> StoreResult<()>;
    /// The row with this fingerprint in `org`, if any (newest first).
    async fn memory_by_fingerprint(
        &self,
        org: &OrgId,
        fingerprint: &str,
    ) -> StoreResult<Option<Memory>>;
    /// Visible memories (see [`MemoryFilter`]) by `updated_at` desc.
    async fn memories(&self, filter: &MemoryFilter, page: &PageReq) -> StoreResult<Page<Memory>>;
    /// Search candidates with a full-text rank in [0, 1], best first, at most `limit`.
    async fn memory_candidates(
        &self,
        filter: &MemoryFilter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Memory, f64)>>;
    async fn touch_memory(&self, id: &MemoryId, now: Timestamp) -> StoreResult<()>;
    async fn mark_memories_seen(&self, ids: &[MemoryId], now: Timestamp) -> StoreResult<()>;
    async fn delete_memory(&self, id: &MemoryId) -> StoreResult<()>;
}

/// One-time email verification and password reset tokens.
#[async_trait]
pub trait EmailTokenStore: Send + Sync + 'static {
    /// Stores a fresh verification or password-reset token (its SHA-256 hash).
    async fn insert_email_token(&self, token: &EmailToken) -> StoreResult<()>;
    /// Deletes verification, reset and change-of-address tokens that expired before `before`
    /// (housekeeping).
    async fn purge_email_tokens(&self, before: Timestamp) -> StoreResult<u64>;
    /// Atomically: deletes the unexpired verification token `hash` (single use) and marks the
    /// user's email verified. The user, or `None` when the token is unknown or expired.
    async fn verify_email_token(&self, hash: &str, now: Timestamp) -> StoreResult<Option<UserId>>;
    /// Atomically: deletes the unexpired reset token `hash` and every other reset token of its
    /// user, replaces the password hash and revokes all the user's sessions. `None` when the
    /// token is unknown or expired.
    async fn reset_password_with_token(
        &self,
        hash: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<UserId>>;
    /// Stores a pending change of address (its token's hash), replacing any earlier one of the
    /// user: only the latest link works.
    async fn insert_email_change(&self, change: &EmailChange) -> StoreResult<()>;
    /// Atomically: deletes the change token `hash` (single use); when it had not expired and no
    /// other account has the address (case-insensitive), sets it as the user's address,
    /// verified, and deletes the user's verification and reset tokens (links mailed to the old
    /// address stop working).
    async fn confirm_email_change(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<EmailChangeOutcome>;
}

/// Every aggregate's store in one object (what the application holds); each implementation
/// implements the per-aggregate traits and this.
pub trait Store:
    UserStore
    + SessionStore
    + PlanStore
    + OrganizationStore
    + InviteStore
    + InstanceStore
    + ProviderStore
    + ProjectStore
    + ConversationStore
    + MemoriesStore
    + EmailTokenStore
    + AuditStore
    + DirectoryStore
{
    /// Cheap liveness probe (readiness is handled by the pool check).
    fn kind(&self) -> &'static str;
}

/// A refresh: the hash of the presented refresh token, its successor, the time and the grace
/// period of a repeated refresh (see [`SessionStore::rotate_refresh`]).
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    pub refresh_hash: &'a str,
    pub next: Session,
    pub now: Timestamp,
    pub grace: std::time::Duration,
}

impl<'a> Rotation<'a> {
    pub fn into_parts(self) -> (&'a str, Session, Timestamp, std::time::Duration) {
        (self.refresh_hash, self.next, self.now, self.grace)
    }
}

/// The two kinds of one-time tokens mailed to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenKind {
    Verification,
    PasswordReset,
}

/// A one-time token mailed to `user`, as stored: the SHA-256 `hash` of the token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    pub kind: EmailTokenKind,
    pub hash: String,
    pub user: UserId,
    pub expires_at: Timestamp,
}

pub type DynStore = Arc<dyn Store>;
