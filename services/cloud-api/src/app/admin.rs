//! Global administration: users, plans, complimentary grants and organizations. The only place
//! plans change; every function requires a global admin, and every change is written together
//! with its audit row (`app::audit`), for the JSON routes and the portal's admin pages alike.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access;
use crate::app::audit::{self, event};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::page_views;
use crate::store::{AdminChange, PlanPatch};
use crate::views::*;
use crate::web::caller::{Caller, apply_admin_list, require_admin};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUsersResponse {
    pub users: Vec<AdminUserView>,
    /// Every plan, hidden ones included.
    pub plans: Vec<PlanView>,
    pub next_cursor: Option<String>,
}

/// A user as an admin sees them: the user's own view and whether they are disabled.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    #[serde(flatten)]
    pub user: UserView,
    /// When an admin disabled the account (`null`: enabled).
    pub disabled_at: Option<String>,
    /// The base plan id (`subscription` is the effective plan, a complimentary grant first).
    pub subscription_plan: Option<String>,
}

fn admin_user_view(u: &User, plans: &[Plan], now: Timestamp) -> AdminUserView {
    AdminUserView {
        user: user_view(u, plans, now),
        disabled_at: u.disabled_at.map(cloud_common::time::iso),
        subscription_plan: u.subscription_plan.clone(),
    }
}

page_query! {
    /// `?q=&limit=&cursor=` of the admin's user list.
    AdminUsersQuery {
        /// Only users whose email or display name contains this (case-insensitive).
        q,
    } limit "1-200, default 50." default 50 max 200
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminPlansResponse {
    pub plans: Vec<PlanView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserResponse {
    pub user: AdminUserView,
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
    q: AdminUsersQuery,
) -> Result<AdminUsersResponse, DomainError> {
    require_admin(caller)?;
    let page = q.page()?;
    let search = search_text(q.q.as_deref())?;
    let plans = access::plans(state).await?;
    let result = state.store.search_users(&search, &page).await?;
    let now = now();
    let (users, next_cursor) = page_views(&result, |u| {
        let mut u = u.clone();
        apply_admin_list(&state.config.admin_emails, &mut u);
        admin_user_view(&u, &plans, now)
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
    let before = state.store.plans().await?;
    let before = before.iter().find(|p| p.id == plan_id);
    let details = json!({
        "label": before.and_then(|b| changed(&b.label, patch.label.as_ref())),
        "parallelSessionsLimit":
            before.and_then(|b| changed(&b.parallel_sessions_limit, patch.parallel_sessions_limit.as_ref())),
        "isDefault": before.and_then(|b| changed(&b.is_default, patch.is_default.as_ref())),
        "isHidden": before.and_then(|b| changed(&b.is_hidden, patch.is_hidden.as_ref())),
    });
    let change = AdminChange::Plan {
        id: plan_id,
        patch: &patch,
    };
    let ev = event(caller, audit::PLAN_UPDATE, audit::PLAN, plan_id, details);
    let updated = state.store.audited(change, &ev).await;
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
        user: AdminUserView {
            user: summary.user,
            disabled_at: u.disabled_at.map(cloud_common::time::iso),
            subscription_plan: u.subscription_plan.clone(),
        },
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

/// Saves the user's entitlements with the audit row `ev` and answers with the user as an admin
/// sees it.
async fn save_entitlements(
    state: &AppState,
    user: &User,
    ev: AuditEvent,
) -> Result<AdminUserResponse, DomainError> {
    let change = AdminChange::Entitlements(user);
    match state.store.audited(change, &ev).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(DomainError::NotFound("User not found")),
        Err(e) => return Err(e.into()),
    }
    user_answer(state, user).await
}

/// `{"from": old, "to": new}` when `new` is given and differs from `old` (what an audit row
/// says changed), else `null`.
fn changed<T: PartialEq + Serialize>(old: &T, new: Option<&T>) -> Option<Value> {
    new.filter(|n| *n != old)
        .map(|n| json!({ "from": old, "to": n }))
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
    let before = target_user(state, user_id).await?;
    let mut user = before.clone();
    match &body.subscription_plan {
        Some(Some(plan)) => user.subscription_plan = Some(known_plan(state, plan).await?),
        Some(None) => user.subscription_plan = None,
        None => {}
    }
    if let Some(a) = body.is_admin {
        user.is_admin = a;
    }
    let details = json!({
        "subscriptionPlan": changed(&before.subscription_plan, Some(&user.subscription_plan)),
        "isAdmin": changed(&before.is_admin, Some(&user.is_admin)),
    });
    let ev = event(caller, audit::USER_UPDATE, audit::USER, &user.id.0, details);
    save_entitlements(state, &user, ev).await
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
    let expires_at = days.map(|d| now + chrono::Duration::days(d));
    let details = json!({
        "planId": plan,
        "expiresAt": expires_at.map(cloud_common::time::iso),
        "replacedPlanId": user.complimentary.as_ref().map(|g| g.plan_id.clone()),
    });
    user.complimentary = Some(ComplimentaryGrant {
        plan_id: plan,
        granted_at: now,
        expires_at,
    });
    let ev = event(caller, audit::USER_GRANT, audit::USER, &user.id.0, details);
    save_entitlements(state, &user, ev).await
}

/// Revokes the complimentary grant (the first system had no way to).
pub async fn revoke_grant(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let mut user = target_user(state, user_id).await?;
    let details = json!({
        "planId": user.complimentary.take().map(|g| g.plan_id),
    });
    let ev = event(
        caller,
        audit::USER_REVOKE_GRANT,
        audit::USER,
        &user.id.0,
        details,
    );
    save_entitlements(state, &user, ev).await
}

/// A user as an admin sees them (plan, usage, organizations, disabled or not).
pub async fn user(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let user = target_user(state, user_id).await?;
    user_answer(state, &user).await
}

/// Applies an admin change to a user with its audit row (unknown user → 404), and answers with
/// the user as it is now.
async fn audited_user_change(
    state: &AppState,
    user_id: &UserId,
    change: AdminChange<'_>,
    ev: AuditEvent,
) -> Result<AdminUserResponse, DomainError> {
    match state.store.audited(change, &ev).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(DomainError::NotFound("User not found")),
        Err(e) => return Err(e.into()),
    }
    let user = target_user(state, user_id.as_str()).await?;
    user_answer(state, &user).await
}

/// Marks the user's address verified, as following the mailed link would (an address already
/// verified keeps its time; the action is recorded either way, it was asked for).
pub async fn verify_email(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let user = target_user(state, user_id).await?;
    let details = json!({ "alreadyVerified": user.email_verified_at.is_some() });
    let ev = event(caller, audit::USER_VERIFY, audit::USER, &user.id.0, details);
    let change = AdminChange::VerifyEmail {
        user: &user.id,
        at: now(),
    };
    audited_user_change(state, &user.id, change, ev).await
}

/// Disables the user: every session of theirs is revoked in the same step, they can no longer
/// sign in, and no token of theirs authenticates. An admin cannot disable themselves (nobody
/// would be left to undo it from that session).
pub async fn disable(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let user = target_user(state, user_id).await?;
    if user.id == caller.user.id {
        return Err(DomainError::invalid("You cannot disable your own account"));
    }
    let details = json!({ "alreadyDisabled": user.disabled_at.is_some() });
    let ev = event(
        caller,
        audit::USER_DISABLE,
        audit::USER,
        &user.id.0,
        details,
    );
    let change = AdminChange::Disabled {
        user: &user.id,
        at: Some(now()),
    };
    audited_user_change(state, &user.id, change, ev).await
}

/// Enables a disabled user again (their revoked sessions stay revoked: they sign in anew).
pub async fn enable(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
) -> Result<AdminUserResponse, DomainError> {
    require_admin(caller)?;
    let user = target_user(state, user_id).await?;
    let details = json!({ "wasDisabled": user.disabled_at.is_some() });
    let ev = event(caller, audit::USER_ENABLE, audit::USER, &user.id.0, details);
    let change = AdminChange::Disabled {
        user: &user.id,
        at: None,
    };
    audited_user_change(state, &user.id, change, ev).await
}

/// A search as the stores take it: trimmed, at most 200 characters.
fn search_text(q: Option<&str>) -> Result<String, DomainError> {
    let q = q.unwrap_or("").trim();
    if q.chars().count() > 200 {
        return Err(DomainError::invalid("q must be at most 200 characters"));
    }
    Ok(q.to_owned())
}

page_query! {
    /// `?q=&limit=&cursor=` of the admin's organization list.
    AdminOrganizationsQuery {
        /// Only organizations whose name or slug contains this (case-insensitive).
        q,
    } limit "1-200, default 50." default 50 max 200
}

/// An organization as an admin lists it, with its owner's address.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminOrganizationView {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub is_personal: bool,
    pub owner_user_id: Option<String>,
    pub owner_email: Option<String>,
    pub created_at: String,
}

page_response! {
    /// Every organization (or those matching `q`), by creation time.
    AdminOrganizationsResponse { organizations: AdminOrganizationView }
}

/// Every organization, or those whose name or slug contains `q`.
pub async fn organizations(
    state: &AppState,
    caller: &Caller,
    q: AdminOrganizationsQuery,
) -> Result<AdminOrganizationsResponse, DomainError> {
    require_admin(caller)?;
    let page = q.page()?;
    let search = search_text(q.q.as_deref())?;
    let result = state.store.search_organizations(&search, &page).await?;
    let mut organizations = Vec::with_capacity(result.items.len());
    for o in &result.items {
        let owner = match &o.owner_user_id {
            Some(id) => state.store.user(id).await?.map(|u| u.email),
            None => None,
        };
        organizations.push(AdminOrganizationView {
            id: o.id.0.clone(),
            name: o.name.clone(),
            slug: o.slug.clone(),
            is_personal: o.is_personal,
            owner_user_id: o.owner_user_id.as_ref().map(|u| u.0.clone()),
            owner_email: owner,
            created_at: cloud_common::time::iso(o.created_at),
        });
    }
    Ok(AdminOrganizationsResponse {
        organizations,
        next_cursor: crate::paging::next_cursor(&result),
    })
}
