//! Global administration: users, plans and complimentary grants. The only place plans change.

use axum::Json;
use axum::extract::{Path, State};
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Caller, ListQuery, apply_admin_list, next_cursor, require_admin};
use crate::AppState;
use crate::app::access::{self, Scope};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::store::PlanPatch;
use crate::views::*;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUsersResponse {
    pub users: Vec<UserView>,
    /// Every plan, hidden ones included.
    pub plans: Vec<PlanView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPlansResponse {
    pub plans: Vec<PlanView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserResponse {
    pub user: UserView,
    pub usage: UsageView,
    pub plans: Vec<PlanView>,
    pub organizations: Vec<OrganizationView>,
    pub active_organization_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanPatchBody {
    pub label: Option<String>,
    pub parallel_sessions_limit: Option<f64>,
    /// `true` makes it the default (clearing the others); `false` clears it.
    pub is_default: Option<bool>,
    pub is_hidden: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPatchBody {
    /// A plan id, or `null` to clear the base plan.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub subscription_plan: Option<Option<String>>,
    pub is_admin: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantBody {
    #[schema(required = true, schema_with = crate::schema::plan_id)]
    pub plan_id: Option<String>,
    /// Whole days (1-36500); absent or null = no expiry.
    #[schema(minimum = 1, maximum = 36500)]
    pub duration_days: Option<f64>,
}

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = AdminUsersResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AdminUsersResponse>, ApiError> {
    require_admin(&caller)?;
    let page = q.page()?;
    let plans = access::plans(&state).await?;
    let result = state.store.list_users(&page).await?;
    let now = now();
    Ok(Json(AdminUsersResponse {
        users: result
            .items
            .iter()
            .map(|u| {
                let mut u = u.clone();
                apply_admin_list(&state.config.admin_emails, &mut u);
                user_view(&u, &plans, now)
            })
            .collect(),
        plans: plans.iter().map(PlanView::from).collect(),
        next_cursor: next_cursor(&result),
    }))
}

#[utoipa::path(patch, path = "/v1/admin/plans/{planId}", tag = "admin", security(("bearer" = [])),
    params(("planId" = String, Path)), request_body = PlanPatchBody,
    responses((status = 200, body = AdminPlansResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(plan_id): Path<String>,
    ApiJson(body): ApiJson<PlanPatchBody>,
) -> Result<Json<AdminPlansResponse>, ApiError> {
    require_admin(&caller)?;
    let label = body
        .label
        .as_deref()
        .map(|l| rules::required(Some(l), MAX_NAME, "label must not be empty"))
        .transpose()?;
    let limit = match body.parallel_sessions_limit {
        Some(n) if n.is_finite() && (0.0..=100_000.0).contains(&n) => Some(n.floor() as i64),
        Some(_) => {
            return Err(ApiError::bad_request(
                "parallelSessionsLimit must be a number from 0 to 100000",
            ));
        }
        None => None,
    };
    let patch = PlanPatch {
        label,
        parallel_sessions_limit: limit,
        is_default: body.is_default,
        is_hidden: body.is_hidden,
    };
    let updated = state.store.update_plan(&plan_id, &patch).await;
    state.plan_cache.invalidate();
    match updated {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ApiError::not_found("Plan not found")),
        Err(e) => return Err(e.into()),
    }
    let plans = access::plans(&state).await?;
    Ok(Json(AdminPlansResponse {
        plans: plans.iter().map(PlanView::from).collect(),
    }))
}

async fn user_answer(state: &AppState, user: &User) -> Result<AdminUserResponse, ApiError> {
    let plans = access::plans(state).await?;
    let usage = access::usage(state, user, &plans).await?;
    let scope = Scope::load(state, &user.id, None).await?;
    let mut u = user.clone();
    apply_admin_list(&state.config.admin_emails, &mut u);
    Ok(AdminUserResponse {
        user: user_view(&u, &plans, now()),
        usage: UsageView::from(&usage),
        plans: plans.iter().map(PlanView::from).collect(),
        organizations: access::org_views(state, &scope).await?,
        active_organization_id: scope.active.map(|o| o.0),
    })
}

async fn target_user(state: &AppState, id: &str) -> Result<User, ApiError> {
    state
        .store
        .user(&UserId::from(id))
        .await?
        .ok_or_else(|| ApiError::not_found("User not found"))
}

async fn known_plan(state: &AppState, id: &str) -> Result<String, ApiError> {
    let plans = state.store.plans().await?;
    plans
        .iter()
        .find(|p| p.id == id.trim())
        .map(|p| p.id.clone())
        .ok_or_else(|| ApiError::bad_request("Invalid subscription plan"))
}

#[utoipa::path(patch, path = "/v1/admin/users/{userId}", tag = "admin", security(("bearer" = [])),
    params(("userId" = String, Path)), request_body = UserPatchBody,
    responses((status = 200, body = AdminUserResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<UserPatchBody>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    require_admin(&caller)?;
    let mut user = target_user(&state, &user_id).await?;
    match &body.subscription_plan {
        Some(Some(plan)) => user.subscription_plan = Some(known_plan(&state, plan).await?),
        Some(None) => user.subscription_plan = None,
        None => {}
    }
    if let Some(a) = body.is_admin {
        user.is_admin = a;
    }
    state.store.update_user_entitlements(&user).await?;
    Ok(Json(user_answer(&state, &user).await?))
}

#[utoipa::path(post, path = "/v1/admin/users/{userId}/grant-subscription", tag = "admin",
    security(("bearer" = [])), params(("userId" = String, Path)), request_body = GrantBody,
    responses((status = 200, body = AdminUserResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    require_admin(&caller)?;
    let plan = known_plan(&state, body.plan_id.as_deref().unwrap_or("")).await?;
    let days = match body.duration_days {
        None => None,
        Some(d) if d.is_finite() && d.floor() >= 1.0 && d <= 36_500.0 => Some(d.floor() as i64),
        Some(_) => {
            return Err(ApiError::bad_request(
                "durationDays must be at least 1 when provided",
            ));
        }
    };
    let mut user = target_user(&state, &user_id).await?;
    let now = now();
    user.complimentary = Some(ComplimentaryGrant {
        plan_id: plan,
        granted_at: now,
        expires_at: days.map(|d| now + chrono::Duration::days(d)),
    });
    state.store.update_user_entitlements(&user).await?;
    Ok(Json(user_answer(&state, &user).await?))
}

/// Revokes the complimentary grant (the first system had no way to).
#[utoipa::path(delete, path = "/v1/admin/users/{userId}/grant-subscription", tag = "admin",
    security(("bearer" = [])), params(("userId" = String, Path)),
    responses((status = 200, body = AdminUserResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn revoke_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    require_admin(&caller)?;
    let mut user = target_user(&state, &user_id).await?;
    user.complimentary = None;
    state.store.update_user_entitlements(&user).await?;
    Ok(Json(user_answer(&state, &user).await?))
}
