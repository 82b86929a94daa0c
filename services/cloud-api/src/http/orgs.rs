//! Organizations, members and invites. Owners and admins manage; only owners touch owners.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};

use super::extract::{Caller, ListQuery};
use crate::AppState;
use crate::app::organizations::{self, *};
use crate::app::providers::OrgListQuery;
use crate::views::*;

#[utoipa::path(get, path = "/v1/organizations", tag = "organizations", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = OrganizationListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<OrganizationListResponse>, ApiError> {
    organizations::list(&state, &caller, q).await.map(Json)
}

#[utoipa::path(post, path = "/v1/organizations", tag = "organizations", security(("bearer" = [])),
    request_body = CreateOrganizationBody,
    responses((status = 201, body = OrganizationResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrganizationBody>,
) -> Result<(StatusCode, Json<OrganizationResponse>), ApiError> {
    organizations::create(&state, &caller, body)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

/// Renames an organization (owner/admin). A `plan` field is refused with 403: the first system
/// let any member change their own paid plan here.
#[utoipa::path(patch, path = "/v1/organization", tag = "organizations", security(("bearer" = [])),
    request_body = UpdateOrganizationBody,
    responses((status = 200, body = OrganizationResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateOrganizationBody>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    organizations::update(&state, &caller, body).await.map(Json)
}

#[utoipa::path(post, path = "/v1/organization/active", tag = "organizations", security(("bearer" = [])),
    request_body = ActiveOrganizationBody,
    responses((status = 200, body = ActiveOrganizationResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_active(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ActiveOrganizationBody>,
) -> Result<Json<ActiveOrganizationResponse>, ApiError> {
    organizations::set_active(&state, &caller, body)
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/organization/members", tag = "organizations", security(("bearer" = [])),
    params(OrgListQuery),
    responses((status = 200, body = MemberListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrgListQuery>,
) -> Result<Json<MemberListResponse>, ApiError> {
    organizations::members(&state, &caller, q).await.map(Json)
}

/// Changes a member's role. Owners/admins may; only owners grant or take `owner`; the last
/// owner cannot be demoted.
#[utoipa::path(patch, path = "/v1/organization/members/{userId}", tag = "organizations",
    security(("bearer" = [])), params(("userId" = String, Path)), request_body = UpdateMemberBody,
    responses((status = 200, body = MemberResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "It would leave the organization without an owner", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<UpdateMemberBody>,
) -> Result<Json<MemberResponse>, ApiError> {
    organizations::update_member(&state, &caller, user_id, body)
        .await
        .map(Json)
}

/// Removes a member (owner/admin), or leaves (anyone, for themselves). Owners are removed only by
/// owners, and never the last one.
#[utoipa::path(delete, path = "/v1/organization/members/{userId}", tag = "organizations",
    security(("bearer" = [])), params(("userId" = String, Path), OrgQuery),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "It would leave the organization without an owner", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Json<OkBody>, ApiError> {
    organizations::remove_member(&state, &caller, user_id, q)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/organization/invites", tag = "organizations", security(("bearer" = [])),
    request_body = CreateInviteBody,
    responses((status = 201, body = InviteCreatedResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 429, description = "Too many invites this hour (per account or organization); see `Retry-After`", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateInviteBody>,
) -> Result<(StatusCode, Json<InviteCreatedResponse>), ApiError> {
    organizations::create_invite(&state, &caller, body)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

#[utoipa::path(get, path = "/v1/organization/invites", tag = "organizations", security(("bearer" = [])),
    params(OrgListQuery),
    responses((status = 200, body = InviteListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invites(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrgListQuery>,
) -> Result<Json<InviteListResponse>, ApiError> {
    organizations::invites(&state, &caller, q).await.map(Json)
}

#[utoipa::path(delete, path = "/v1/organization/invites/{inviteId}", tag = "organizations",
    security(("bearer" = [])), params(("inviteId" = String, Path), OrgQuery),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(invite_id): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> Result<Json<OkBody>, ApiError> {
    organizations::revoke_invite(&state, &caller, invite_id, q)
        .await
        .map(Json)
}

/// Accepts an invite addressed to the caller's email: membership with the invited role, and the
/// organization becomes active.
#[utoipa::path(post, path = "/v1/organization/invites/accept", tag = "organizations",
    security(("bearer" = [])), request_body = AcceptInviteBody,
    responses((status = 200, body = AcceptInviteResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn accept_invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AcceptInviteBody>,
) -> Result<Json<AcceptInviteResponse>, ApiError> {
    organizations::accept_invite(&state, &caller, body)
        .await
        .map(Json)
}
