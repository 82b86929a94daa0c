//! Page handlers. GET renders; POST checks CSRF, calls the shared logic and either redirects
//! (303) or re-renders the page with the error.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cloud_common::ApiError;
use serde::Deserialize;

use super::{Ctx, EarlyAnswer, Posted, ReturnTo, return_query, safe_return, to_login};
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
mod account_settings;
mod admin_pages;
mod admin_rows;
mod desktop;
mod device;
mod email;
mod home;
mod org_pages;
mod passkey_pages;
mod provider_pages;
mod security;
mod sign_in;

pub use account::*;
pub use account_settings::*;
pub use admin_pages::*;
pub use desktop::*;
pub use device::*;
pub use email::*;
pub use home::*;
pub use org_pages::*;
pub use passkey_pages::*;
pub use provider_pages::*;
pub use security::*;
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
    /// A global admin sees the link to the admin area.
    is_admin: bool,
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

fn ok_or_page(ctx: &Ctx, e: impl Into<ApiError>) -> Response {
    let e: ApiError = e.into();
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

/// What a page handler answers: `Err` is a response that ends the request early (the login
/// redirect, a refused form, an error page), so handlers can stop with `?`.
pub(crate) type Page = Result<Response, Response>;

/// The organizations `caller` belongs to, or the error page.
async fn memberships(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
) -> Result<Vec<(Organization, Role)>, Response> {
    match Scope::of(state, caller).await {
        Ok(scope) => Ok(scope.memberships),
        Err(e) => Err(ok_or_page(ctx, e)),
    }
}

/// The first page (up to 200 items) of an organization's list.
fn first_page_of(org_id: &str) -> OrgListQuery {
    OrgListQuery {
        organization_id: Some(org_id.to_owned()),
        limit: Some("200".into()),
        cursor: None,
    }
}

/// The status of a page shown again with a form's error (200 without one) and its message.
fn status_and_error(error: Option<(StatusCode, String)>) -> (StatusCode, Option<String>) {
    match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    }
}

/// The page that lists what a form changes (organizations or providers), shown again with the
/// form's error.
#[derive(Clone, Copy)]
enum Listing {
    Organizations,
    Providers,
}

/// A form a signed-in user posted on a listing page, about organization `org`: where a
/// refused action shows that listing again.
struct ListingPost {
    listing: Listing,
    ctx: Ctx,
    caller: Caller,
    org: Option<String>,
}

impl ListingPost {
    /// `result` of the form's action, or the answer when it failed: a client error shows the
    /// listing again (for `org`) with the message, anything else is the error page.
    async fn check<T>(&self, state: &AppState, result: DomainResult<T>) -> Result<T, Response> {
        let e = match result.map_err(ApiError::from) {
            Ok(value) => return Ok(value),
            Err(e) if e.status.is_client_error() => e,
            Err(e) => return Err(ok_or_page(&self.ctx, e)),
        };
        let error = Some((e.status, e.message.to_string()));
        let (ctx, caller, org) = (&self.ctx, &self.caller, self.org.as_deref());
        let page = self
            .listing
            .render(state, ctx, caller, org, None, error)
            .await;
        Err(page.unwrap_or_else(|r| r))
    }
}

const ORGS: &str = "/cloud/organizations";
const PROVIDERS: &str = "/cloud/providers";

impl Listing {
    /// The page's path and the messages of its `?notice=` keys.
    fn path_and_notices(self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        match self {
            Listing::Organizations => (
                ORGS,
                &[
                    ("created", "Organization created."),
                    ("renamed", "Organization renamed."),
                    ("invited", "Invitation sent."),
                    ("joined", "You joined the organization."),
                ],
            ),
            Listing::Providers => (
                PROVIDERS,
                &[
                    ("added", "Provider added."),
                    ("saved", "Provider saved."),
                    ("deleted", "Provider deleted."),
                ],
            ),
        }
    }

    /// A signed-in user's `form` on this listing (else the login page), about the organization
    /// `org_of` the fields name.
    fn post<T: serde::de::DeserializeOwned + Default>(
        self,
        form: Posted<T>,
        org_of: fn(&T) -> Option<String>,
    ) -> Result<(ListingPost, T), EarlyAnswer> {
        let (back, _) = self.path_and_notices();
        let (ctx, caller, form) = form.signed_in(back)?;
        let org = org_of(&form);
        let post = ListingPost {
            listing: self,
            ctx,
            caller,
            org,
        };
        Ok((post, form))
    }

    /// Where a form about organization `org` leads once done: this listing of it, with the
    /// message of `notice`.
    fn done(self, org: &str, notice: &str) -> Response {
        let (path, _) = self.path_and_notices();
        after_post(&format!("{path}?org={org}&notice={notice}"))
    }

    /// `GET`: the listing for `?org=`, with the message of `?notice=`.
    async fn page(self, state: &AppState, ctx: Ctx, q: OrgQuery) -> Page {
        let (back, notices) = self.path_and_notices();
        let caller = ctx.caller_or_login(back)?;
        let notice = notice_of(notices, q.notice.as_deref());
        self.render(state, &ctx, &caller, q.org.as_deref(), notice, None)
            .await
    }

    async fn render(
        self,
        state: &AppState,
        ctx: &Ctx,
        caller: &Caller,
        org: Option<&str>,
        notice: Option<String>,
        error: Option<(StatusCode, String)>,
    ) -> Page {
        let memberships = memberships(state, ctx, caller).await?;
        let (status, error) = status_and_error(error);
        let shown = Shown {
            state,
            ctx,
            caller,
            memberships,
            org,
            notice,
            status,
            error,
        };
        match self {
            Listing::Organizations => render_orgs(shown).await,
            Listing::Providers => render_providers(shown).await,
        }
    }
}

/// What a listing page is made of: who looks (and their organizations), the organization asked
/// for, a notice, and the status and message of a refused form.
struct Shown<'a> {
    state: &'a AppState,
    ctx: &'a Ctx,
    caller: &'a Caller,
    memberships: Vec<(Organization, Role)>,
    org: Option<&'a str>,
    notice: Option<String>,
    status: StatusCode,
    error: Option<String>,
}

/// The message of a `?notice=` key (`None` for a key not in `table`).
fn notice_of(table: &[(&str, &str)], key: Option<&str>) -> Option<String> {
    let key = key?;
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, message)| (*message).to_owned())
}

/// A refused action: a client error is the notice (400, `title`, `message`, `link`), anything
/// else the error page.
fn refused(
    ctx: &Ctx,
    e: DomainError,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Response {
    if e.is_client_error() {
        ctx.notice(StatusCode::BAD_REQUEST, title, message, link)
    } else {
        ok_or_page(ctx, e)
    }
}

const TOO_MANY: &str = "Too many attempts. Wait a minute and try again.";
