//! Plain types and rules of the control plane. Nothing here does I/O: handlers validate input
//! into these types, the store persists them, and the rules (who may do what, how a plan or a
//! memory is derived) are functions a test can call directly.

pub mod audit;
pub mod ids;
pub mod memory;
pub mod model;
pub mod rules;
pub mod states;

pub use audit::*;
pub use ids::*;
pub use model::*;
pub use states::*;

use chrono::{DateTime, Utc};

/// An instant in UTC, as every record keeps its times.
pub type Timestamp = DateTime<Utc>;

/// The current time at the precision Postgres keeps (microseconds), so a record read back from
/// either store compares equal to the one written.
pub fn now() -> Timestamp {
    let t = Utc::now();
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

/// What a store can fail with. Mapped to HTTP once, in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The change would leave an organization without an owner (checked atomically with it).
    #[error("an organization keeps at least one owner")]
    LastOwner,
    /// The database refused a value (e.g. a NUL character in text).
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            // 22021: invalid byte sequence (a NUL in text); 22P05: untranslatable character
            // (`\u0000` in JSONB). Client input, not a server fault.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                StoreError::Invalid("Text must not contain NUL characters".into())
            }
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// Every way a request can be refused by the domain. Each variant has exactly one HTTP mapping.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// 400 `invalid_request`.
    #[error("{0}")]
    Invalid(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(&'static str),
    /// 403 `forbidden`.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 409 `conflict`.
    #[error("{0}")]
    Conflict(String),
    /// 401 `invalid_credentials`.
    #[error("Invalid email or password")]
    InvalidCredentials,
    /// 401 `unauthorized`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401 `second_factor_required`: the password was right, the account wants a code too.
    #[error("This account has two-step sign-in on: a code from the authenticator app is required.")]
    SecondFactorRequired,
    /// 400 `invalid_token`.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 429 `rate_limited` with `Retry-After` (seconds).
    #[error("Too many requests; retry in {0} s")]
    RateLimited(u64),
    /// 403 `subscription_required` with the usage.
    #[error("An active subscription is required to use Chatons Cloud.")]
    SubscriptionRequired(Box<Usage>),
    /// 409 with its own code (a limit the request would pass, e.g. `instance_limit_reached`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// 500: a failure of ours (sealing a secret), logged with its cause, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// Whether the request is refused (a 4xx), as opposed to a failure of ours or the database.
    pub fn is_client_error(&self) -> bool {
        match self {
            Self::Internal(_) => false,
            Self::Store(s) => !matches!(s, StoreError::Internal(_) | StoreError::Unavailable(_)),
            _ => true,
        }
    }

    /// Whether this is a conflict with an existing record (a rule's or a unique constraint's).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Conflict(_) | Self::Store(StoreError::Conflict(_))
        )
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
