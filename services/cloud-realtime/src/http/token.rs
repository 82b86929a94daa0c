//! `GET /v1/realtime/token?cloudInstanceId=` — a single-use websocket token.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use cloud_common::ApiResult;
use cloud_common::auth::BearerToken;
use cloud_common::extract::ApiQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{broker_error, check_access, instance_param};
use crate::AppState;
use crate::broker::TokenGrant;
use crate::hub::Audience;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceQuery {
    pub cloud_instance_id: Option<String>,
}

/// 256 random bits, hex.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub async fn token(
    State(state): State<AppState>,
    bearer: BearerToken,
    ApiQuery(query): ApiQuery<InstanceQuery>,
) -> ApiResult<Json<Value>> {
    let instance = instance_param(query.cloud_instance_id.as_deref())?;
    let access = check_access(&state, &bearer, &instance).await?;
    let ttl = state.config.token_ttl;
    let expires_at = cloud_common::time::iso(
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(300)),
    );
    let token = new_token();
    let grant = TokenGrant {
        cloud_instance_id: instance,
        audience: Audience::from_access(&access),
        expires_at: expires_at.clone(),
    };
    state
        .broker
        .put_token(&token, &grant, ttl)
        .await
        .map_err(broker_error)?;
    Ok(Json(json!({
        "token": token,
        "expiresAt": expires_at,
        "websocketUrl": state.config.public_url.as_str(),
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn minted_tokens_are_well_formed_and_others_are_not() {
        let token = super::new_token();
        assert!(crate::broker::token_is_well_formed(&token), "{token}");
        for bad in [
            "",
            "meta",
            "id:e1",
            &token[..63],
            &token.to_uppercase(),
            &format!("{token}0"),
        ] {
            assert!(!crate::broker::token_is_well_formed(bad), "{bad}");
        }
    }
}
