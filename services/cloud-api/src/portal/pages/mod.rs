//! Page handlers. GET renders; POST checks CSRF, calls the shared logic and either redirects
//! (303) or re-renders the page with the error.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cloud_common::ApiError;
use serde::Deserialize;

use super::{Ctx, parse_form, return_query, safe_return, to_login};
use crate::AppState;
use crate::app::access::Scope;
use crate::app::accounts::Attempt;
use crate::app::providers::{ModelInput, OrgListQuery};
use crate::app::{accounts, organizations as orgs, providers};
use crate::domain::*;
use crate::mail::templates as mails;
use crate::web;
use crate::web::caller::Caller;
use crate::web::client_ip::ClientIp;

mod account;
mod desktop;
mod email;
mod home;
mod org_pages;
mod provider_pages;
mod sign_in;

pub use account::*;
pub use desktop::*;
pub use email::*;
pub use home::*;
pub use org_pages::*;
pub use provider_pages::*;
pub use sign_in::*;

// Templates ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/notice.html")]
pub(crate) struct NoticePage {
    pub signed_in: bool,
    pub csrf_token: String,
    pub title: String,
    pub message: String,
    pub is_error: bool,
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    return_to: String,
    return_query: String,
    email: String,
    display_name: String,
}

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    return_to: String,
    return_query: String,
    email: String,
}

#[derive(Template)]
#[template(path = "portal/forgot.html")]
struct ForgotPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/reset.html")]
struct ResetPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    token: String,
}

#[derive(Template)]
#[template(path = "portal/verify.html")]
struct VerifyPage {
    signed_in: bool,
    csrf_token: String,
    token: String,
}

struct OrgRow {
    id: String,
    name: String,
    slug: String,
    role: String,
    personal: bool,
}

#[derive(Template)]
#[template(path = "portal/account.html")]
struct AccountPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    name: String,
    email: String,
    verified: bool,
    orgs: Vec<OrgRow>,
}

struct MemberRow {
    display_name: String,
    email: String,
    role: String,
}

struct InviteRow {
    email: String,
    role: String,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "portal/organizations.html")]
struct OrgsPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    orgs: Vec<OrgRow>,
    selected_id: String,
    selected: Option<OrgRow>,
    can_manage: bool,
    members: Vec<MemberRow>,
    invites: Vec<InviteRow>,
}

struct ProviderRow {
    id: String,
    label: String,
    kind: String,
    base_url: String,
    models: String,
    default_model: Option<String>,
    secret_set: bool,
}

#[derive(Template)]
#[template(path = "portal/providers.html")]
struct ProvidersPage {
    signed_in: bool,
    csrf_token: String,
    notice: Option<String>,
    error: Option<String>,
    orgs: Vec<OrgRow>,
    org_id: String,
    can_manage: bool,
    providers: Vec<ProviderRow>,
}

#[derive(Template)]
#[template(path = "portal/provider_edit.html")]
struct ProviderEditPage {
    signed_in: bool,
    csrf_token: String,
    error: Option<String>,
    id: String,
    org_id: String,
    kind: String,
    label: String,
    base_url: String,
    models: String,
    default_model: String,
    secret_set: bool,
}

#[derive(Template)]
#[template(path = "portal/accept_invite.html")]
struct AcceptPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
    token: String,
}

#[derive(Template)]
#[template(path = "portal/desktop.html")]
struct DesktopPage {
    signed_in: bool,
    csrf_token: String,
    email: String,
}

// Helpers -----------------------------------------------------------------------------------------

fn ok_or_page(ctx: &Ctx, e: ApiError) -> Response {
    if e.status.is_server_error() {
        tracing::error!(error = %e.message, "Portal request failed.");
        return ctx.notice(
            e.status,
            "Something went wrong",
            "Please try again in a moment.",
            None,
        );
    }
    ctx.notice(
        e.status,
        "Not possible",
        &e.message,
        Some(("/cloud/account", "Back to your account")),
    )
}

fn org_rows(memberships: &[(Organization, Role)]) -> Vec<OrgRow> {
    memberships
        .iter()
        .map(|(o, r)| OrgRow {
            id: o.id.0.clone(),
            name: o.name.clone(),
            slug: o.slug.clone(),
            role: r.as_str().to_owned(),
            personal: o.is_personal,
        })
        .collect()
}

fn lines(raw: Option<&str>) -> Vec<ModelInput> {
    raw.unwrap_or("")
        .split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|id| ModelInput {
            id: Some(id.to_owned()),
            label: None,
        })
        .collect()
}

fn after_post(location: &str) -> Response {
    web::redirect(location, true, Vec::new())
}

const TOO_MANY: &str = "Too many attempts. Wait a minute and try again.";
