//! The periodic access re-check of an open socket: the token's answer was a snapshot, so the
//! socket asks cloud-api again which organizations its user belongs to now.

use std::time::Duration;

use cloud_common::internal::RealtimeAudienceRequest;

use crate::AppState;
use crate::hub::Audience;

/// What a re-check decided.
pub enum Recheck {
    /// cloud-api did not answer (down, slow, failing): the last answer stands.
    Keep,
    /// The audience as of now.
    Now(Audience),
    /// The user no longer holds the instance (or is gone): close the socket.
    Revoked,
}

pub async fn recheck(state: &AppState, current: &Audience, instance: &str) -> Recheck {
    let request = RealtimeAudienceRequest {
        user_id: current.user_id.clone(),
        cloud_instance_id: instance.to_owned(),
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        state.cloud_api.realtime_audience(&request),
    )
    .await;
    match answer {
        Ok(Ok(Some(access))) => {
            let now = Audience::from_access(&access);
            // The organization the socket acts in stays, unless the user left it.
            let organization_id = if now.organization_ids.contains(&current.organization_id) {
                current.organization_id.clone()
            } else {
                now.organization_id.clone()
            };
            Recheck::Now(Audience {
                organization_id,
                ..now
            })
        }
        Ok(Ok(None)) => {
            tracing::info!(%instance, "Realtime access revoked; socket closed.");
            Recheck::Revoked
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "Access re-check failed; keeping the last answer.");
            Recheck::Keep
        }
        Err(_) => {
            tracing::debug!("Access re-check timed out; keeping the last answer.");
            Recheck::Keep
        }
    }
}
