//! The admin area (`/cloud/admin`, global admins only): users (search, verify, disable, grant a
//! plan, make admin), plans, organizations and the audit log. Every page and form calls the
//! same `app::admin` / `app::audit` function as the JSON admin routes, so each change is checked
//! and audited once, there. Signed out → the login page; signed in but not an admin → 403.

use axum::Router;
use axum::routing::{get, post};

use super::admin_rows::*;
use super::*;
use crate::app::admin::{
    self, AdminOrganizationsQuery, AdminUsersQuery, GrantBody, PlanPatchBody, UserPatchBody,
};
use crate::app::audit::{self, AuditLogQuery};

/// The admin area's routes (merged into the portal's router).
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/cloud/admin", get(admin_home))
        .route("/cloud/admin/users", get(admin_users))
        .route("/cloud/admin/users/{id}", get(admin_user))
        .route("/cloud/admin/users/{id}/{action}", post(admin_user_action))
        .route("/cloud/admin/plans", get(admin_plans))
        .route("/cloud/admin/plans/{id}", post(admin_plan_update))
        .route("/cloud/admin/organizations", get(admin_organizations))
        .route("/cloud/admin/audit", get(admin_audit))
}

/// The signed-in global admin (else the login page, which comes back to `back`, or a 403).
fn admin_of(ctx: &Ctx, back: &str) -> Result<Caller, EarlyAnswer> {
    let caller = ctx.caller_or_login(back)?;
    if !caller.user.is_admin {
        return Err(ctx
            .notice(
                StatusCode::FORBIDDEN,
                "Admins only",
                "This area is for the administrators of this Chatons Cloud.",
                Some(("/cloud/account", "Back to your account")),
            )
            .into());
    }
    Ok(caller)
}

/// `?q=&cursor=&notice=` of the admin's lists.
#[derive(Debug, Default, Deserialize)]
pub struct AdminListQuery {
    q: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

const PAGE_SIZE: &str = "25";

pub async fn admin_home() -> Response {
    web::redirect("/cloud/admin/users", false, Vec::new())
}

// Users -------------------------------------------------------------------------------------------

pub async fn admin_users(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<AdminListQuery>,
) -> Page {
    let caller = admin_of(&ctx, "/cloud/admin/users")?;
    let query = AdminUsersQuery {
        q: q.q.clone(),
        limit: Some(PAGE_SIZE.into()),
        cursor: q.cursor.clone(),
    };
    let list = admin::users(&state, &caller, query)
        .await
        .map_err(|e| ok_or_page(&ctx, e))?;
    let search = q.q.unwrap_or_default();
    let page = AdminUsersPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: None,
        error: None,
        next_url: next_url("/cloud/admin/users", &search, list.next_cursor.as_deref()),
        first_url: q
            .cursor
            .is_some()
            .then(|| list_url("/cloud/admin/users", &search, None)),
        users: list.users.iter().map(UserRow::from).collect(),
        q: search,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

const USER_NOTICES: &[(&str, &str)] = &[
    ("verify", "Email marked as verified."),
    ("disable", "User disabled; their sessions are revoked."),
    ("enable", "User enabled."),
    ("grant", "Complimentary plan granted."),
    ("revoke-grant", "Complimentary plan revoked."),
    ("make-admin", "User is now a global admin."),
    ("remove-admin", "User is no longer a global admin."),
    ("set-plan", "Base plan saved."),
];

pub async fn admin_user(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<AdminListQuery>,
) -> Page {
    let caller = admin_of(&ctx, &format!("/cloud/admin/users/{id}"))?;
    let notice = notice_of(USER_NOTICES, q.notice.as_deref());
    render_user(&state, &ctx, &caller, &id, notice, None).await
}

/// The fields of the user page's forms (each action reads its own).
#[derive(Debug, Default, Deserialize)]
pub struct AdminUserForm {
    plan_id: Option<String>,
    duration_days: Option<String>,
    subscription_plan: Option<String>,
}

/// A number typed in a form: empty is `None`, anything else not a number is the field's error.
fn form_number(raw: Option<&str>, what: &str) -> DomainResult<Option<f64>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .map(Some)
            .map_err(|_| DomainError::invalid(format!("{what} must be a number"))),
    }
}

pub async fn admin_user_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    form: Posted<AdminUserForm>,
) -> Page {
    let back = format!("/cloud/admin/users/{id}");
    let Posted(ctx, form) = form;
    let caller = admin_of(&ctx, &back)?;
    let result = match action.as_str() {
        "verify" => admin::verify_email(&state, &caller, &id).await,
        "disable" => admin::disable(&state, &caller, &id).await,
        "enable" => admin::enable(&state, &caller, &id).await,
        "revoke-grant" => admin::revoke_grant(&state, &caller, &id).await,
        "make-admin" | "remove-admin" => {
            let body = UserPatchBody {
                is_admin: Some(action == "make-admin"),
                ..Default::default()
            };
            admin::update_user(&state, &caller, &id, body).await
        }
        "set-plan" => {
            let plan = form.subscription_plan.filter(|p| !p.trim().is_empty());
            let body = UserPatchBody {
                subscription_plan: Some(plan),
                ..Default::default()
            };
            admin::update_user(&state, &caller, &id, body).await
        }
        "grant" => match form_number(form.duration_days.as_deref(), "Duration (days)") {
            Ok(days) => {
                let body = GrantBody {
                    plan_id: form.plan_id,
                    duration_days: days,
                };
                admin::grant(&state, &caller, &id, body).await
            }
            Err(e) => Err(e),
        },
        _ => return Err(ctx.notice(StatusCode::NOT_FOUND, "Not found", "No such action.", None)),
    };
    match result {
        Ok(_) => Ok(after_post(&format!("{back}?notice={action}"))),
        Err(e) if e.is_client_error() => {
            let e = ApiError::from(e);
            let error = Some((e.status, e.message.to_string()));
            render_user(&state, &ctx, &caller, &id, None, error).await
        }
        Err(e) => Err(ok_or_page(&ctx, e)),
    }
}

async fn render_user(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Page {
    let answer = admin::user(state, caller, id)
        .await
        .map_err(|e| ok_or_page(ctx, e))?;
    let history = audit::log(
        state,
        caller,
        AuditLogQuery {
            target_kind: Some(audit::USER.into()),
            target_id: Some(id.to_owned()),
            limit: Some("10".into()),
            cursor: None,
        },
    )
    .await
    .map_err(|e| ok_or_page(ctx, e))?;
    let (status, error) = status_and_error(error);
    let page = AdminUserPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice,
        error,
        is_self: answer.user.user.id == caller.user.id.0,
        plans: plan_options(&answer.plans, answer.user.user.subscription.id.as_str()),
        orgs: answer
            .organizations
            .iter()
            .map(|o| (o.name.clone(), o.role.clone()))
            .collect(),
        history: history.entries.iter().map(AuditRow::from).collect(),
        u: UserDetail::from(&answer),
    };
    Ok(ctx.page(status, &page))
}

// Plans -------------------------------------------------------------------------------------------

const PLAN_NOTICES: &[(&str, &str)] = &[("saved", "Plan saved.")];

pub async fn admin_plans(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<AdminListQuery>,
) -> Page {
    let caller = admin_of(&ctx, "/cloud/admin/plans")?;
    let notice = notice_of(PLAN_NOTICES, q.notice.as_deref());
    render_plans(&state, &ctx, &caller, notice, None).await
}

async fn render_plans(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Page {
    // The users answer carries every plan, hidden ones included; one user is enough.
    let list = admin::users(
        state,
        caller,
        AdminUsersQuery {
            limit: Some("1".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| ok_or_page(ctx, e))?;
    let (status, error) = status_and_error(error);
    let page = AdminPlansPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice,
        error,
        plans: list.plans.iter().map(PlanRow::from).collect(),
    };
    Ok(ctx.page(status, &page))
}

#[derive(Debug, Default, Deserialize)]
pub struct PlanForm {
    label: Option<String>,
    parallel_sessions_limit: Option<String>,
    /// Checkboxes: present (`on`) when ticked.
    is_default: Option<String>,
    is_hidden: Option<String>,
}

pub async fn admin_plan_update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<PlanForm>,
) -> Page {
    let Posted(ctx, form) = form;
    let caller = admin_of(&ctx, "/cloud/admin/plans")?;
    let result = match form_number(form.parallel_sessions_limit.as_deref(), "Parallel sessions") {
        Ok(limit) => {
            let body = PlanPatchBody {
                label: form.label,
                parallel_sessions_limit: limit,
                is_default: Some(form.is_default.is_some()),
                is_hidden: Some(form.is_hidden.is_some()),
            };
            admin::update_plan(&state, &caller, &id, body).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(after_post("/cloud/admin/plans?notice=saved")),
        Err(e) if e.is_client_error() => {
            let e = ApiError::from(e);
            let error = Some((e.status, e.message.to_string()));
            render_plans(&state, &ctx, &caller, None, error).await
        }
        Err(e) => Err(ok_or_page(&ctx, e)),
    }
}

// Organizations and the audit log -----------------------------------------------------------------

pub async fn admin_organizations(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<AdminListQuery>,
) -> Page {
    let caller = admin_of(&ctx, "/cloud/admin/organizations")?;
    let query = AdminOrganizationsQuery {
        q: q.q.clone(),
        limit: Some(PAGE_SIZE.into()),
        cursor: q.cursor.clone(),
    };
    let list = admin::organizations(&state, &caller, query)
        .await
        .map_err(|e| ok_or_page(&ctx, e))?;
    let search = q.q.unwrap_or_default();
    const PATH: &str = "/cloud/admin/organizations";
    let page = AdminOrgsPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: None,
        error: None,
        next_url: next_url(PATH, &search, list.next_cursor.as_deref()),
        first_url: q.cursor.is_some().then(|| list_url(PATH, &search, None)),
        orgs: list.organizations.iter().map(AdminOrgRow::from).collect(),
        q: search,
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

pub async fn admin_audit(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<AdminListQuery>,
) -> Page {
    let caller = admin_of(&ctx, "/cloud/admin/audit")?;
    let query = AuditLogQuery {
        limit: Some(PAGE_SIZE.into()),
        cursor: q.cursor.clone(),
        ..Default::default()
    };
    let log = audit::log(&state, &caller, query)
        .await
        .map_err(|e| ok_or_page(&ctx, e))?;
    const PATH: &str = "/cloud/admin/audit";
    let page = AdminAuditPage {
        signed_in: true,
        csrf_token: ctx.csrf.clone(),
        notice: None,
        error: None,
        next_url: next_url(PATH, "", log.next_cursor.as_deref()),
        first_url: q.cursor.is_some().then(|| list_url(PATH, "", None)),
        rows: log.entries.iter().map(AuditRow::from).collect(),
    };
    Ok(ctx.page(StatusCode::OK, &page))
}

/// `path?q=…&cursor=…` (the parts that are set).
fn list_url(path: &str, q: &str, cursor: Option<&str>) -> String {
    let mut pairs = Vec::new();
    if !q.is_empty() {
        pairs.push(("q", q));
    }
    if let Some(c) = cursor {
        pairs.push(("cursor", c));
    }
    if pairs.is_empty() {
        return path.to_owned();
    }
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

/// The link to the page after this one, when there is one.
fn next_url(path: &str, q: &str, cursor: Option<&str>) -> Option<String> {
    cursor.map(|c| list_url(path, q, Some(c)))
}
