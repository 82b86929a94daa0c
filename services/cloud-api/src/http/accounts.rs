//! Password accounts (JSON), the account summary and the desktop bootstrap (the rules are in
//! `app::web_accounts` and `app::bootstrap`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::{Caller, ClientIp};
use crate::AppState;
use crate::app::bootstrap::{self, *};
use crate::app::web_accounts::{self, *};
use crate::views::*;

/// Creates an account with its personal organization (owner) and a default project. Where the
/// server verifies addresses by mail (SMTP configured, or the production profile) the answer is
/// 202 with no session, the same whether or not the address already had an account (its owner
/// is told by mail): sign in once the address is confirmed. A development server without SMTP
/// keeps the first system's answer: 201 with a session, 409 for a taken address.
#[utoipa::path(post, path = "/v1/web/signup", tag = "accounts", request_body = SignupBody,
    responses((status = 201, body = SignupResponse), (status = 202, body = SignupPendingResponse),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn signup(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<Response, ApiError> {
    Ok(match web_accounts::signup(&state, ip.0, body).await? {
        SignupAnswer::Created(r) => (StatusCode::CREATED, Json(r)).into_response(),
        SignupAnswer::Pending(r) => (StatusCode::ACCEPTED, Json(r)).into_response(),
    })
}

/// Signs in with email and password. Unknown email and wrong password answer the same 401 in
/// the same time.
#[utoipa::path(post, path = "/v1/web/login", tag = "accounts", request_body = LoginBody,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<LoginResponse>, ApiError> {
    web_accounts::login(&state, ip.0, body).await.map(Json)
}

/// Revokes the presented session and every token rotated from it.
#[utoipa::path(post, path = "/v1/web/logout", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OkBody>, ApiError> {
    web_accounts::logout(&state, &caller).await.map(Json)
}

#[utoipa::path(get, path = "/v1/account", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = AccountResponse), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn account(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AccountResponse>, ApiError> {
    bootstrap::account(&state, &caller).await.map(Json)
}

#[utoipa::path(get, path = "/v1/bootstrap", tag = "accounts", security(("bearer" = [])),
    params(BootstrapQuery),
    responses((status = 200, body = BootstrapResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn bootstrap(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<BootstrapQuery>,
) -> Result<Json<BootstrapResponse>, ApiError> {
    bootstrap::bootstrap(&state, &caller, q).await.map(Json)
}
