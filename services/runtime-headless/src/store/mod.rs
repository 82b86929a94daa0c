//! Persistence of sessions, leases and the turn queue: one trait, a Postgres implementation
//! (many replicas) and an in-memory one (one replica, no `DATABASE_URL`). Both pass the same
//! contract suite (`tests/it/store_contract.rs`).
//!
//! Fencing rule: every write a worker makes on behalf of a lease carries that [`Lease`]; the
//! write only applies while the row still has that owner and version, so a worker that lost
//! its lease (and did not notice yet) cannot overwrite the new owner's state.

pub mod memory;
pub mod postgres;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::message::{AgentMessage, TokenUsage};
use crate::domain::{
    AcquireOutcome, Lease, NewSession, Preferences, Recovery, Session, SessionStatus,
    TranscriptMessage, Turn, TurnKind, TurnStatus, Usage, UserInput,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable(e.to_string())
            }
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<StoreError> for cloud_common::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "Database unavailable.");
                cloud_common::ApiError::unavailable("The database is unavailable; retry later.")
            }
            StoreError::Other(m) => cloud_common::ApiError::internal(m),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Settings a command changes (`None` leaves the value alone).
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    pub model: Option<(Option<String>, Option<String>)>,
    pub thinking_level: Option<Option<String>>,
    pub preferences: Option<Preferences>,
}

/// What a finished turn cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    pub usage: TokenUsage,
    pub steps: i32,
}

/// One stored agent message and the turn whose run wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub turn_id: Option<i64>,
    pub message: AgentMessage,
}

/// What `get_state` needs of a session's messages, without decoding them: their ids in the
/// order they were first written (to count them beside the transcript context) and the tokens
/// of every assistant step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageTally {
    pub ids: Vec<String>,
    pub usage: TokenUsage,
}

/// What `abort` did: queued turns it cancelled outright, and running turns whose owner was
/// asked to stop.
#[derive(Debug, Clone, Default)]
pub struct AbortResult {
    pub cancelled_queued: Vec<i64>,
    pub running: Vec<i64>,
}

/// A finished turn whose messages still have to reach the conversation transcript.
#[derive(Debug, Clone)]
pub struct PendingTranscript {
    pub turn: Turn,
    pub user_id: String,
    pub organization_id: Option<String>,
    pub conversation_id: String,
}

/// Sessions and their leases.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// `"postgres"` or `"memory"` (reported by `/healthz`).
    fn kind(&self) -> &'static str;

    /// Reuses the user's active session of the conversation (checked first, so a user at the
    /// quota can always get back to an existing session; an expired lease is taken over by
    /// `owner`), else creates one if the user is under the limit. Atomic per user across
    /// replicas.
    async fn acquire(
        &self,
        new: NewSession,
        owner: &str,
        ttl: Duration,
    ) -> StoreResult<AcquireOutcome>;

    /// Any session by id, whatever its status.
    async fn get(&self, id: &str) -> StoreResult<Option<Session>>;

    async fn usage(&self, user_id: &str, limit: i64) -> StoreResult<Usage>;

    /// Not fenced: any replica serving the user's command may change settings.
    async fn update_settings(&self, id: &str, update: SettingsUpdate) -> StoreResult<bool>;

    async fn touch_activity(&self, id: &str) -> StoreResult<()>;

    /// Records the conversation's transcript as of session creation (context for its turns).
    async fn set_context(&self, id: &str, context: &[TranscriptMessage]) -> StoreResult<()>;

    /// Stops an active session: status `stopped`, owner cleared and version bumped (fencing out
    /// every worker), its queued and running turns aborted. `false` when it was not active.
    async fn stop(&self, id: &str) -> StoreResult<bool>;

    /// Takes over one session whose lease has expired (or that `owner` already holds).
    async fn take_over(&self, id: &str, owner: &str, ttl: Duration)
    -> StoreResult<Option<Session>>;

    /// Extends every lease `owner` holds; returns the sessions (id, version) still held.
    async fn heartbeat(&self, owner: &str, ttl: Duration) -> StoreResult<Vec<(String, i64)>>;

    /// Takes over up to `limit` active sessions whose lease expired, bumping their version.
    async fn claim_expired(
        &self,
        owner: &str,
        ttl: Duration,
        limit: i64,
    ) -> StoreResult<Vec<Session>>;

    /// Takes over (version bump) every active session still recorded as `owner`'s — used at
    /// start-up, when a restarted worker with the same id must recover its own turns.
    async fn reclaim_own(&self, owner: &str, ttl: Duration) -> StoreResult<Vec<Session>>;

    /// Ends `owner`'s leases now (shutdown), so another worker takes them over at once.
    async fn release(&self, owner: &str) -> StoreResult<u64>;

    /// Stops active sessions idle for longer than `idle` with no queued or running turn.
    async fn expire_idle(&self, idle: Duration) -> StoreResult<Vec<Session>>;

    /// Fenced status change of an active session.
    async fn set_status(&self, id: &str, lease: &Lease, status: SessionStatus)
    -> StoreResult<bool>;

    async fn count_active(&self) -> StoreResult<i64>;
}

/// The turn queue: what users asked for, claimed by the lease owner, settled once.
#[async_trait]
pub trait TurnStore: Send + Sync + 'static {
    async fn enqueue_turn(
        &self,
        session_id: &str,
        kind: TurnKind,
        input: &UserInput,
        request_id: Option<String>,
        spec_sealed: Vec<u8>,
    ) -> StoreResult<Turn>;

    /// Fenced: delivers up to `limit` queued turns of `kind` inside the running turn `into`
    /// (oldest first): they are marked succeeded and merged, and returned for their messages.
    async fn take_queued(
        &self,
        session_id: &str,
        lease: &Lease,
        into: i64,
        kind: TurnKind,
        limit: i64,
    ) -> StoreResult<Vec<Turn>>;

    /// Claims the next queued turn of a session `owner` holds a live lease on, if that session
    /// has no running turn (`FOR UPDATE SKIP LOCKED`). Steering messages go first.
    async fn claim_turn(&self, owner: &str) -> StoreResult<Option<(Turn, Lease)>>;

    async fn turns_of(&self, session_id: &str) -> StoreResult<Vec<Turn>>;

    /// How many of the session's turns wait in the queue.
    async fn queued_turns(&self, session_id: &str) -> StoreResult<usize>;

    async fn mark_output_started(&self, turn_id: i64, lease: &Lease) -> StoreResult<bool>;

    /// Fenced: records the outcome of a running turn.
    async fn finish_turn(
        &self,
        turn_id: i64,
        lease: &Lease,
        status: TurnStatus,
        output: &str,
        error: Option<&str>,
        stats: TurnStats,
    ) -> StoreResult<bool>;

    /// After a takeover: turns left `running` under an older lease are re-queued (nothing was
    /// streamed) or failed.
    async fn recover_turns(
        &self,
        session_id: &str,
        lease: &Lease,
    ) -> StoreResult<Vec<(Turn, Recovery)>>;

    async fn request_abort(&self, session_id: &str) -> StoreResult<AbortResult>;

    /// Which of these running turn ids must stop (abort requested, or no longer running).
    async fn turns_to_cancel(&self, turn_ids: &[i64]) -> StoreResult<Vec<i64>>;

    /// Claims up to `limit` finished turns whose transcript append is pending (marking them
    /// done; [`Store::unmark_synced`] puts one back after a failed append).
    async fn claim_transcripts(&self, limit: i64) -> StoreResult<Vec<PendingTranscript>>;

    async fn unmark_synced(&self, turn_id: i64) -> StoreResult<()>;

    async fn queue_depth(&self) -> StoreResult<i64>;

    /// Sessions (id) with a turn `owner` claimed more than `older_than` ago that is still
    /// `running` — the caller keeps the ones it is not actually running (orphans).
    async fn running_claimed_by(
        &self,
        owner: &str,
        older_than: Duration,
    ) -> StoreResult<Vec<(i64, String)>>;
}

/// Everything a worker and the HTTP layer need of sessions and turns (one object implements
/// both aggregates; [`MessageStore`] is separate).
pub trait Store: SessionStore + TurnStore {}

impl<T: SessionStore + TurnStore> Store for T {}

/// The agent messages of sessions: written by the lease owner after each step, read by
/// `get_messages`, the snapshot, the transcript sync and the next step's context.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Fenced: stores (or replaces, by id) messages of `turn_id`'s run, in order.
    async fn append_messages(
        &self,
        session_id: &str,
        lease: &Lease,
        turn_id: i64,
        messages: &[AgentMessage],
    ) -> StoreResult<bool>;

    /// Every message of the session, in the order they were first written.
    async fn session_messages(&self, session_id: &str) -> StoreResult<Vec<StoredMessage>>;

    /// The messages of one turn's run, in order.
    async fn turn_messages(&self, turn_id: i64) -> StoreResult<Vec<AgentMessage>>;

    /// The session's message ids and token totals (`get_state` is polled; a long session's
    /// messages are too many to decode for a count).
    async fn session_tally(&self, session_id: &str) -> StoreResult<MessageTally>;
}

/// What kind of workspace a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceKind {
    Scratch,
    Repository,
}

impl WorkspaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scratch => "scratch",
            Self::Repository => "repository",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scratch" => Some(Self::Scratch),
            "repository" => Some(Self::Repository),
            _ => None,
        }
    }
}

/// The durable state of one conversation's workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSnapshot {
    pub conversation_id: String,
    pub kind: WorkspaceKind,
    /// Set by the store on save.
    pub generation: i64,
    pub data: Vec<u8>,
    pub base_commit: Option<String>,
    pub branch: Option<String>,
    pub saved_by: String,
    pub turn_id: Option<i64>,
}

/// Workspace snapshots, one per conversation, outside every pod.
#[async_trait]
pub trait WorkspaceStore: Send + Sync + 'static {
    /// Stores the snapshot (replacing the previous one) and returns its new generation.
    async fn save_snapshot(&self, snapshot: &WorkspaceSnapshot) -> StoreResult<i64>;

    /// The generation of the stored snapshot, without its bytes.
    async fn snapshot_generation(&self, conversation_id: &str) -> StoreResult<Option<i64>>;

    async fn load_snapshot(&self, conversation_id: &str) -> StoreResult<Option<WorkspaceSnapshot>>;

    async fn delete_snapshot(&self, conversation_id: &str) -> StoreResult<bool>;
}
