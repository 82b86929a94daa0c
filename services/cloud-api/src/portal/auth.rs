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

/// A field that must be there, not blank (trimmed), or 400 with `message`.
fn required(value: Option<&str>, message: &'static str) -> Result<String, ApiError> {
    rules::trimmed(value).ok_or_else(|| ApiError::bad_request(message))
}

/// `POST /v1/web/forgot-password {email}` → always `200 {"ok":true}`.
#[tracing::instrument(skip_all)]
pub async fn forgot_json(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<ForgotBody>,
) -> Result<Json<OkBody>, ApiError> {
    let email = required(body.email.as_deref(), "email is required")?;
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
    let missing = || ApiError::bad_request("token and password are required");
    let token = rules::trimmed(body.token.as_deref()).ok_or_else(missing)?;
    let password = body.password.as_deref().filter(|p| !p.is_empty());
    reset_password(&state, &token, password.ok_or_else(missing)?).await?;
    Ok(Json(OkBody { ok: true }))
}

/// `POST /v1/web/verify-email {token}`.
#[tracing::instrument(skip_all)]
pub async fn verify_json(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<OkBody>, ApiError> {
    let token = required(body.token.as_deref(), "token is required")?;
    verify_email(&state, &token).await?;
    Ok(Json(OkBody { ok: true }))
}
