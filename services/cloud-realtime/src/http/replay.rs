//! `GET /v1/realtime/replay?cloudInstanceId=&afterSeq=[&epoch=]` — buffered events over HTTP.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cloud_common::ApiResult;
use cloud_common::auth::BearerToken;
use cloud_common::extract::ApiQuery;
use serde::Deserialize;

use super::{broker_error, check_access, instance_param};
use crate::AppState;
use crate::hub::{Audience, Cursor, StreamPlan};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayQuery {
    pub cloud_instance_id: Option<String>,
    pub after_seq: Option<String>,
    pub epoch: Option<String>,
}

/// Like the first system: a leading base-10 integer; anything else (absent, negative,
/// non-numeric) means "from the start of the buffer".
pub fn lenient_seq(raw: Option<&str>) -> u64 {
    let raw = raw.unwrap_or("").trim();
    let digits: String = raw.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

pub async fn replay(
    State(state): State<AppState>,
    bearer: BearerToken,
    ApiQuery(query): ApiQuery<ReplayQuery>,
) -> ApiResult<Response> {
    let instance = instance_param(query.cloud_instance_id.as_deref())?;
    let access = check_access(&state, &bearer, &instance).await?;
    let audience = Audience::from_access(&access);
    let mut after = lenient_seq(query.after_seq.as_deref());
    let mut replay = state
        .broker
        .read(&instance, after)
        .await
        .map_err(broker_error)?;
    let snapshot = &replay.snapshot;
    let truncated = match query
        .epoch
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(epoch) => {
            let position = Cursor {
                epoch: epoch.to_owned(),
                seq: after,
            };
            snapshot.plan(&position) == StreamPlan::Resync
        }
        None => snapshot.truncated_after(after) || after > snapshot.last_seq,
    };
    if truncated && after > 0 && query.epoch.is_some() {
        // The position is from another epoch or lost: hand over the whole buffer.
        after = 0;
        replay = state
            .broker
            .read(&instance, after)
            .await
            .map_err(broker_error)?;
    }
    state.realtime.replays.inc();
    let head = serde_json::json!({
        "cloudInstanceId": instance,
        "lastSeq": replay.snapshot.last_seq,
        "epoch": replay.snapshot.epoch,
        "truncated": truncated,
    })
    .to_string();
    // Events are spliced in as stored, never re-serialised.
    let mut body = Vec::with_capacity(head.len() + 64 * replay.events.len());
    body.extend_from_slice(head.trim_end_matches('}').as_bytes());
    body.extend_from_slice(b",\"events\":[");
    let mut first = true;
    for event in replay
        .events
        .iter()
        .filter(|e| audience.admits(e.organization_id.as_deref()))
    {
        if !first {
            body.push(b',');
        }
        first = false;
        body.extend_from_slice(event.json());
    }
    body.extend_from_slice(b"]}");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::lenient_seq;

    #[test]
    fn after_seq_is_parsed_like_the_first_system() {
        assert_eq!(lenient_seq(None), 0);
        assert_eq!(lenient_seq(Some("12")), 12);
        assert_eq!(lenient_seq(Some("12abc")), 12);
        assert_eq!(lenient_seq(Some("-3")), 0);
        assert_eq!(lenient_seq(Some("x")), 0);
    }
}
