//! The admin area's templates and the rows they show, made from the admin answers of
//! `app::admin` and `app::audit` (the same shapes the JSON admin routes answer).

use serde_json::Value;

use super::*;
use crate::app::admin::{AdminOrganizationView, AdminUserResponse, AdminUserView};
use crate::app::audit::AuditEntryView;
use crate::views::PlanView;

/// A date-time as the pages show it: `2026-12-04 18:25` (UTC).
fn when(iso: &str) -> String {
    iso.get(..16).unwrap_or(iso).replace('T', " ")
}

pub(super) struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub plan: String,
    pub verified: bool,
    pub admin: bool,
    pub disabled: bool,
    pub created: String,
}

impl From<&AdminUserView> for UserRow {
    fn from(v: &AdminUserView) -> Self {
        let u = &v.user;
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.display_name.clone(),
            plan: u.subscription.label.clone(),
            verified: u.email_verified,
            admin: u.is_admin,
            disabled: v.disabled_at.is_some(),
            created: when(&u.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/admin_users.html")]
pub(super) struct AdminUsersPage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub q: String,
    pub users: Vec<UserRow>,
    pub next_url: Option<String>,
    pub first_url: Option<String>,
}

pub(super) struct UserDetail {
    pub id: String,
    pub email: String,
    pub name: String,
    pub verified: bool,
    pub admin: bool,
    pub disabled_at: Option<String>,
    pub created: String,
    /// The effective plan's label.
    pub plan: String,
    /// `Plan label until …` of an active complimentary grant.
    pub grant: Option<String>,
    pub active_sessions: i64,
    pub sessions_limit: i64,
}

impl From<&AdminUserResponse> for UserDetail {
    fn from(a: &AdminUserResponse) -> Self {
        let u = &a.user.user;
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.display_name.clone(),
            verified: u.email_verified,
            admin: u.is_admin,
            disabled_at: a.user.disabled_at.as_deref().map(when),
            created: when(&u.created_at),
            plan: u.subscription.label.clone(),
            grant: u.complimentary_grant.as_ref().map(|g| match &g.expires_at {
                Some(e) => format!("{} until {}", g.plan.label, when(e)),
                None => format!("{} (no expiry)", g.plan.label),
            }),
            active_sessions: a.usage.active_parallel_sessions,
            sessions_limit: a.usage.parallel_sessions_limit,
        }
    }
}

pub(super) struct PlanOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

/// Every plan as a choice, `current` selected.
pub(super) fn plan_options(plans: &[PlanView], current: &str) -> Vec<PlanOption> {
    plans
        .iter()
        .map(|p| PlanOption {
            id: p.id.clone(),
            label: if p.is_hidden {
                format!("{} (hidden)", p.label)
            } else {
                p.label.clone()
            },
            selected: p.id == current,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal/admin_user.html")]
pub(super) struct AdminUserPage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub u: UserDetail,
    /// The admin is looking at their own account (which they cannot disable).
    pub is_self: bool,
    pub plans: Vec<PlanOption>,
    /// (name, role) of each organization the user belongs to.
    pub orgs: Vec<(String, String)>,
    pub history: Vec<AuditRow>,
}

pub(super) struct PlanRow {
    pub id: String,
    pub label: String,
    pub limit: i64,
    pub is_default: bool,
    pub is_hidden: bool,
}

impl From<&PlanView> for PlanRow {
    fn from(p: &PlanView) -> Self {
        Self {
            id: p.id.clone(),
            label: p.label.clone(),
            limit: p.parallel_sessions_limit,
            is_default: p.is_default,
            is_hidden: p.is_hidden,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/admin_plans.html")]
pub(super) struct AdminPlansPage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub plans: Vec<PlanRow>,
}

pub(super) struct AdminOrgRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub personal: bool,
    pub owner_id: Option<String>,
    pub owner_email: String,
    pub created: String,
}

impl From<&AdminOrganizationView> for AdminOrgRow {
    fn from(o: &AdminOrganizationView) -> Self {
        Self {
            id: o.id.clone(),
            name: o.name.clone(),
            slug: o.slug.clone(),
            personal: o.is_personal,
            owner_id: o.owner_user_id.clone(),
            owner_email: o.owner_email.clone().unwrap_or_else(|| "—".into()),
            created: when(&o.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/admin_organizations.html")]
pub(super) struct AdminOrgsPage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub q: String,
    pub orgs: Vec<AdminOrgRow>,
    pub next_url: Option<String>,
    pub first_url: Option<String>,
}

pub(super) struct AuditRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// Where the target is shown (a user's page, the plans).
    pub target_url: Option<String>,
    pub details: String,
}

impl From<&AuditEntryView> for AuditRow {
    fn from(e: &AuditEntryView) -> Self {
        let target_url = match e.target_kind.as_str() {
            crate::app::audit::USER => Some(format!("/cloud/admin/users/{}", e.target_id)),
            crate::app::audit::PLAN => Some("/cloud/admin/plans".to_owned()),
            _ => None,
        };
        Self {
            when: when(&e.created_at),
            actor: e
                .actor_email
                .clone()
                .unwrap_or_else(|| e.actor_user_id.clone()),
            action: e.action.clone(),
            target: format!(
                "{} {}",
                e.target_kind,
                e.target_label.as_deref().unwrap_or(&e.target_id)
            ),
            target_url,
            details: details_text(&e.details),
        }
    }
}

/// An audit row's details as a line: `key: value` for every field set, a change as
/// `old → new`.
fn details_text(details: &Value) -> String {
    let Some(fields) = details.as_object() else {
        return String::new();
    };
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    };
    fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match (v.get("from"), v.get("to")) {
            (Some(from), Some(to)) => format!("{k}: {} → {}", show(from), show(to)),
            _ => format!("{k}: {}", show(v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Template)]
#[template(path = "portal/admin_audit.html")]
pub(super) struct AdminAuditPage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub rows: Vec<AuditRow>,
    pub next_url: Option<String>,
    pub first_url: Option<String>,
}
