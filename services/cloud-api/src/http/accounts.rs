//! Password accounts (JSON), the account summary and the desktop bootstrap (the rules are in
//! `app::web_accounts` and `app::bootstrap`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloud_common::ApiError;
use cloud_common::extract::ApiJson;

use super::extract::ClientIp;
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
    web_accounts::login(&state, ip.0, body)
        .await
        .map(Json)
        .map_err(ApiError::from)
}

json_routes! { tag = "accounts";
    /// Revokes the presented session and every token rotated from it.
    logout: post "/v1/web/logout" [] -> 200 OkBody [401] => web_accounts::logout;
    account: get "/v1/account" [] -> 200 AccountResponse [401] => bootstrap::account;
    bootstrap: get "/v1/bootstrap" [query BootstrapQuery;]
        -> 200 BootstrapResponse [400, 401, 403] => bootstrap::bootstrap;
}
