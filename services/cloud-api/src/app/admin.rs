//! Global administration: users, plans and complimentary grants. The only place plans change;
//! every function requires a global admin.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::{ListQuery, page_views};
use crate::store::PlanPatch;
use crate::views::*;
use crate::web::caller::{Caller, apply_admin_list, require_admin};

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

fn plan_views(plans: &[Plan]) -> Vec<PlanView> {
    plans.iter().map(PlanView::from).collect()
}

pub async fn users(
    state: &AppState,
    caller: &Caller,
    q: ListQuery,
) -> Result<AdminUsersResponse, DomainError> {
    require_admin(caller)?;
    let page = q.page()?;
    let plans = access::plans(state).await?;
    let result = state.store.list_users(&page).await?;
    let now = now();
    let (users, next_cursor) = page_views(&result, |u| {
        let mut u = u.clone();
        apply_admin_list(&state.config.admin_emails, &mut u);
        user_view(&u, &plans, now)
    });
    Ok(AdminUsersResponse {
        users,
        plans: plan_views(&plans),
        next_cursor,
    })
}

pub async fn update_plan(
    state: &AppState,
    caller: &Caller,
    plan_id: &str,
    body: PlanPatchBody,
) -> Result<AdminPlansResponse, DomainError> {
    require_admin(caller)?;
    let label = body
        .label
        .as_deref()
        .map(|l| rules::required(Some(l), MAX_NAME, "label must not be empty"))
        .transpose()?;
    let limit = match body.parallel_sessions_limit {
        Some(n) if n.is_finite() && (0.0..=100_000.0).contains(&n) => Some(n.floor() as i64),
        Some(_) => {
            return Err(DomainError::invalid(
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
    let updated = state.store.update_plan(plan_id, &patch).await;
    state.plan_cache.invalidate();
    match updated {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(DomainError::NotFound("Plan not found")),
        Err(e) => return Err(e.into()),
    }
    let plans = access::plans(state).await?;
    Ok(AdminPlansResponse {
        plans: plan_views(&plans),
    })
}

async fn user_answer(state: &AppState, user: &User) -> Result<AdminUserResponse, DomainError> {
    let mut u = user.clone();
    apply_admin_list(&state.config.admin_emails, &mut u);
    let summary = access::summary(state, &u, None).await?;
    Ok(AdminUserResponse {
        user: summary.user,
        usage: summary.usage,
        plans: plan_views(&summary.plans),
        organizations: summary.organizations,
        active_organization_id: summary.active_organization_id,
    })
}

async fn target_user(state: &AppState, id: &str) -> Result<User, DomainError> {
    state
        .store
        .user(&UserId::from(id))
        .await?
        .ok_or(DomainError::NotFound("User not found"))
}

/// Saves the user's entitlements and answers with the user as an admin sees it.
async fn save_entitlements(
    state: &AppState,
    user: &User,
) -> Result<AdminUserResponse, DomainError> {
    state.store.update_user_entitlements(user).await?;
    user_answer(state, user).await
}

async fn known_plan(state: &AppState, id: &str) -> Result<String, DomainError> {
    let plans = state.store.plans().await?;
    plans
        .iter()
        .find(|p| p.id == id.trim())
        .map(|p| p.id.clone())
        .ok_or_else(|| DomainError::invalid("Invalid subscription plan"))
}

pub async fn update_user(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    body: UserPatchBody,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let mut user = target_user(state, user_id).await?;
    match &body.subscription_plan {
        Some(Some(plan)) => user.subscription_plan = Some(known_plan(state, plan).await?),
        Some(None) => user.subscription_plan = None,
        None => {}
    }
    if let Some(a) = body.is_admin {
        user.is_admin = a;
    }
    save_entitlements(state, &user).await
}

pub async fn grant(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    body: GrantBody,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let plan = known_plan(state, body.plan_id.as_deref().unwrap_or("")).await?;
    let days = match body.duration_days {
        None => None,
        Some(d) if d.is_finite() && d.floor() >= 1.0 && d <= 36_500.0 => Some(d.floor() as i64),
        Some(_) => {
            return Err(DomainError::invalid(
                "durationDays must be at least 1 when provided",
            ));
        }
    };
    let mut user = target_user(state, user_id).await?;
    let now = now();
    user.complimentary = Some(ComplimentaryGrant {
        plan_id: plan,
        granted_at: now,
        expires_at: days.map(|d| now + chrono::Duration::days(d)),
    });
    save_entitlements(state, &user).await
}

/// Revokes the complimentary grant (the first system had no way to).
pub async fn revoke_grant(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let mut user = target_user(state, user_id).await?;
    user.complimentary = None;
    save_entitlements(state, &user).await
}
