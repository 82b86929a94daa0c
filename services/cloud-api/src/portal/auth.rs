//! The JSON routes `POST /v1/web/{verify-email,forgot-password,reset-password}` (the rules are
//! in [`crate::app::email`]).

use axum::Json;
use axum::extract::State;
use cloud_common::ApiError;
use cloud_common::extract::ApiJson;
use serde::Deserialize;

use crate::AppState;
use crate::app::email::{forgot_password_detached, reset_password, throttle_forgot, verify_email};
use crate::domain::rules;
use crate::views::OkBody;
use crate::web::client_ip::ClientIp;

#[derive(Debug, Default, Deserialize)]
pub struct ForgotBody {
    pub email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResetBody {
    pub token: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VerifyBody {
    pub token: Option<String>,
}

/// `POST /v1/web/forgot-password {email}` → always `200 {"ok":true}`.
#[tracing::instrument(skip_all)]
pub async fn forgot_json(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<ForgotBody>,
) -> Result<Json<OkBody>, ApiError> {
    let email = rules::trimmed(body.email.as_deref())
        .ok_or_else(|| ApiError::bad_request("email is required"))?;
    throttle_forgot(&state, &ip, &email)?;
    forgot_password_detached(&state, email);
    Ok(Json(OkBody { ok: true }))
}

/// `POST /v1/web/reset-password {token, password}`.
#[tracing::instrument(skip_all)]
pub async fn reset_json(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<OkBody>, ApiError> {
    let (Some(token), Some(password)) = (
        rules::trimmed(body.token.as_deref()),
        body.password.as_deref().filter(|p| !p.is_empty()),
    ) else {
        return Err(ApiError::bad_request("token and password are required"));
    };
    reset_password(&state, &token, password).await?;
    Ok(Json(OkBody { ok: true }))
}

/// `POST /v1/web/verify-email {token}`.
#[tracing::instrument(skip_all)]
pub async fn verify_json(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<OkBody>, ApiError> {
    let token = rules::trimmed(body.token.as_deref())
        .ok_or_else(|| ApiError::bad_request("token is required"))?;
    verify_email(&state, &token).await?;
    Ok(Json(OkBody { ok: true }))
}
