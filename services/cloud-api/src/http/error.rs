//! The one mapping from domain and store errors to the HTTP error envelope.

use axum::http::StatusCode;
use cloud_common::ApiError;

use crate::domain::{DomainError, StoreError};
use crate::views::UsageView;

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::bad_request(m),
            DomainError::NotFound(m) => ApiError::not_found(m),
            DomainError::Forbidden(m) => ApiError::forbidden(m),
            DomainError::Conflict(m) => ApiError::conflict(m),
            DomainError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid email or password",
            ),
            DomainError::Unauthorized(m) => ApiError::unauthorized(m),
            DomainError::SecondFactorRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "second_factor_required",
                e.to_string(),
            ),
            DomainError::InvalidToken(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_token", m)
            }
            DomainError::RateLimited(secs) => ApiError::too_many_requests(secs),
            DomainError::SubscriptionRequired(usage) => {
                ApiError::forbidden("An active subscription is required to use Chatons Cloud.")
                    .with_code("subscription_required")
                    .with_field("usage", UsageView::from(usage.as_ref()))
            }
            DomainError::Refused { code, message } => ApiError::conflict(message).with_code(code),
            DomainError::Internal(cause) => ApiError::internal(cause),
            DomainError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("Not found"),
            // The constraint name is a schema detail: logged, never sent.
            StoreError::Conflict(what) => {
                tracing::info!(constraint = %what, "Write refused by a unique constraint.");
                ApiError::conflict("Conflicts with an existing record")
            }
            StoreError::Invalid(m) => ApiError::bad_request(m),
            // A well-formed request that the organization's current state refuses: 409.
            StoreError::LastOwner => {
                ApiError::conflict("An organization keeps at least one owner.")
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "Storage unavailable.");
                ApiError::unavailable("The database is unavailable; retry later.")
            }
            StoreError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl From<crate::password::HashError> for DomainError {
    fn from(e: crate::password::HashError) -> Self {
        DomainError::Store(StoreError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_never_reach_a_client() {
        let e = ApiError::from(StoreError::Conflict("cloud_organizations_slug_uidx".into()));
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.code, "conflict");
        assert!(!e.message.contains("uidx"), "{}", e.message);
    }
}
