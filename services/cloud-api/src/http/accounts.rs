//! Password accounts (JSON), the account summary and the desktop bootstrap.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};
use cloud_common::time::iso;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Caller, ClientIp, apply_admin_list};
use crate::AppState;
use crate::app::access::{self, Scope};
use crate::app::accounts::{Attempt, Signup};
use crate::domain::rules;
use crate::domain::*;
use crate::sessions::{self, IssuedTokens, SessionPolicy, SessionRequest};
use crate::views::*;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupBody {
    #[schema(required = true, nullable = false, format = Email, min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(required = true, schema_with = crate::schema::name)]
    pub display_name: Option<String>,
    #[schema(required = true, nullable = false, min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(required = true, nullable = false, format = Email, min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 1024)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    pub user: UserView,
    pub session: SessionView,
    pub requires_email_verification: bool,
}

/// The signup answer that tells nothing about the address (see `signup`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupPendingResponse {
    pub ok: bool,
    pub requires_email_verification: bool,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserView,
    pub session: SessionView,
}

pub fn policy(state: &AppState) -> SessionPolicy {
    SessionPolicy {
        access_ttl: state.config.access_token_ttl,
        refresh_ttl: state.config.refresh_token_ttl,
    }
}

/// Sessions of the JSON account API: issued to the desktop client id with a refresh token.
fn json_api_session(state: &AppState, user: &UserId, active_org: Option<OrgId>) -> SessionRequest {
    SessionRequest {
        user: user.clone(),
        client_id: state.config.client_id.clone(),
        scope: "openid profile email offline_access".into(),
        active_org,
        with_refresh: true,
        auth_time: now(),
    }
}

pub fn session_view(t: &IssuedTokens) -> SessionView {
    SessionView {
        access_token: t.access_token.clone(),
        refresh_token: t.refresh_token.clone().unwrap_or_default(),
        expires_at: iso(t.session.expires_at),
        refresh_expires_at: t.session.refresh_expires_at.map(iso),
    }
}

fn throttle(
    state: &AppState,
    ip: &ClientIp,
    kind: Attempt,
    email: Option<&str>,
) -> Result<(), ApiError> {
    Ok(crate::app::accounts::throttle(state, ip.0, kind, email)?)
}

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
    throttle(&state, &ip, Attempt::Signup, body.email.as_deref())?;
    let (email, name, password) = (
        body.email.as_deref(),
        body.display_name.as_deref(),
        body.password.as_deref(),
    );
    let registered = if state.config.signup_hides_accounts() {
        match crate::app::accounts::sign_up(&state, email, name, password).await? {
            Signup::Created(r) if r.user.email_verified_at.is_some() => *r,
            Signup::Created(_) | Signup::AlreadyRegistered => {
                let pending = SignupPendingResponse {
                    ok: true,
                    requires_email_verification: true,
                    message: "If the address can be used, a mail was sent to it: open its link, then sign in.".into(),
                };
                return Ok((StatusCode::ACCEPTED, Json(pending)).into_response());
            }
        }
    } else {
        crate::app::accounts::register(&state, email, name, password).await?
    };
    let crate::app::accounts::Registered {
        user,
        organization: org_id,
        plans,
    } = registered;
    let now = now();
    let tokens = sessions::issue_session(
        state.store.as_ref(),
        policy(&state),
        &json_api_session(&state, &user.id, Some(org_id)),
    )
    .await?;
    let mut user = user;
    apply_admin_list(&state.config.admin_emails, &mut user);
    let created = SignupResponse {
        user: user_view(&user, &plans, now),
        session: session_view(&tokens),
        requires_email_verification: user.email_verified_at.is_none(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
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
    let (Some(email), Some(password)) = (
        rules::trimmed(body.email.as_deref()),
        body.password.as_deref().filter(|p| !p.is_empty()),
    ) else {
        return Err(ApiError::bad_request("email and password are required"));
    };
    if password.chars().count() > rules::MAX_PASSWORD {
        return Err(DomainError::InvalidCredentials.into());
    }
    let Some(mut user) =
        crate::app::accounts::sign_in_with_password(&state, ip.0, &email, password).await?
    else {
        return Err(DomainError::InvalidCredentials.into());
    };
    let scope = Scope::load(&state, &user.id, None).await?;
    let tokens = sessions::issue_session(
        state.store.as_ref(),
        policy(&state),
        &json_api_session(&state, &user.id, scope.active.clone()),
    )
    .await?;
    apply_admin_list(&state.config.admin_emails, &mut user);
    let plans = access::plans(&state).await?;
    Ok(Json(LoginResponse {
        user: user_view(&user, &plans, now()),
        session: session_view(&tokens),
    }))
}

/// Revokes the presented session and every token rotated from it.
#[utoipa::path(post, path = "/v1/web/logout", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OkBody>, ApiError> {
    sessions::revoke_family(state.store.as_ref(), &caller.session.family_id).await?;
    Ok(Json(OkBody { ok: true }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountResponse {
    pub user: UserView,
    pub usage: UsageView,
    /// Plans a user can see (hidden plans removed).
    pub plans: Vec<PlanView>,
    pub organizations: Vec<OrganizationView>,
    pub active_organization_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/account", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = AccountResponse), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn account(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AccountResponse>, ApiError> {
    let scope = Scope::of(&state, &caller).await?;
    let plans = access::plans(&state).await?;
    let usage = access::usage(&state, &caller.user, &plans).await?;
    Ok(Json(AccountResponse {
        user: user_view(&caller.user, &plans, now()),
        usage: UsageView::from(&usage),
        plans: plans
            .iter()
            .filter(|p| !p.is_hidden)
            .map(PlanView::from)
            .collect(),
        organizations: access::org_views(&state, &scope).await?,
        active_organization_id: scope.active.map(|o| o.0),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapResponse {
    pub user: UserView,
    pub organizations: Vec<OrganizationView>,
    pub active_organization_id: Option<String>,
    /// The canonical `instance-<userId>` first, then the user's registered instances.
    pub cloud_instances: Vec<CloudInstanceView>,
    /// Projects of all the user's organizations, by name: all of them, unless the request asked
    /// for pages (`limit` or `cursor`).
    pub projects: Vec<ProjectView>,
    /// Conversations of those organizations, by title (all of them, or one page).
    pub conversations: Vec<ConversationView>,
    pub usage: UsageView,
    /// Only when pages were asked for: where the next page of projects and conversations starts
    /// (`null` on the last page). Absent otherwise, since nothing was left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Option<String>>,
}

/// Where a paged bootstrap goes on: the position in each of the two lists, or done.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BootstrapCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    projects: Option<(String, String)>,
    #[serde(default)]
    projects_done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conversations: Option<(String, String)>,
    #[serde(default)]
    conversations_done: bool,
}

impl BootstrapCursor {
    fn decode(raw: &str) -> Result<Self, ApiError> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| ApiError::bad_request("Invalid cursor"))
    }

    fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

fn to_cursor(pair: Option<(String, String)>) -> Option<Cursor> {
    pair.map(|(key, id)| Cursor { key, id })
}

fn from_cursor(c: &Cursor) -> (String, String) {
    (c.key.clone(), c.id.clone())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BootstrapQuery {
    /// Page size for projects and conversations, 1-200. Without `limit` and `cursor` the answer
    /// holds every project and conversation (the desktop does not paginate).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
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
    access::require_subscription(&state, &caller.user).await?;
    let scope = Scope::of(&state, &caller).await?;
    let plans = access::plans(&state).await?;
    let usage = access::usage(&state, &caller.user, &plans).await?;
    let orgs = scope.org_ids();
    let paged = [q.limit.as_deref(), q.cursor.as_deref()]
        .iter()
        .any(|v| v.is_some_and(|v| !v.trim().is_empty()));
    let (projects, conversations, next_cursor) = if paged {
        let limit = super::extract::page_req(q.limit.as_deref(), None, 50, 200)?.limit;
        let at = match q.cursor.as_deref().filter(|c| !c.trim().is_empty()) {
            Some(c) => BootstrapCursor::decode(c)?,
            None => BootstrapCursor::default(),
        };
        let projects = if at.projects_done {
            Page {
                items: Vec::new(),
                next: None,
            }
        } else {
            let page = PageReq {
                limit,
                after: to_cursor(at.projects),
            };
            state.store.projects(&orgs, &page).await?
        };
        let conversations = if at.conversations_done {
            Page {
                items: Vec::new(),
                next: None,
            }
        } else {
            let page = PageReq {
                limit,
                after: to_cursor(at.conversations),
            };
            state.store.conversations(&orgs, None, &page).await?
        };
        let next = BootstrapCursor {
            projects_done: projects.next.is_none(),
            projects: projects.next.as_ref().map(from_cursor),
            conversations_done: conversations.next.is_none(),
            conversations: conversations.next.as_ref().map(from_cursor),
        };
        let more = !(next.projects_done && next.conversations_done);
        (
            projects.items,
            conversations.items,
            Some(more.then(|| next.encode())),
        )
    } else {
        let (store, orgs) = (&state.store, &orgs);
        let projects =
            access::all_pages(|page| async move { store.projects(orgs, &page).await }).await?;
        let conversations =
            access::all_pages(|page| async move { store.conversations(orgs, None, &page).await })
                .await?;
        (projects, conversations, None)
    };
    let canonical = InstanceId::canonical(&caller.user.id);
    let mut instances = vec![instance_view(
        &state.config,
        canonical.as_str(),
        "Chatons Cloud",
        None,
    )];
    let (store, user) = (&state.store, &caller.user.id);
    let registered =
        access::all_pages(|page| async move { store.instances_of(user, &page).await }).await?;
    instances.extend(
        registered
            .iter()
            .filter(|i| i.id != canonical)
            .map(|i| instance_view(&state.config, i.id.as_str(), &i.name, Some(i.created_at))),
    );
    Ok(Json(BootstrapResponse {
        user: user_view(&caller.user, &plans, now()),
        organizations: access::org_views(&state, &scope).await?,
        active_organization_id: scope.active.as_ref().map(|o| o.0.clone()),
        cloud_instances: instances,
        projects: projects
            .iter()
            .map(|p| project_view(p, &scope.org_name(&p.organization_id)))
            .collect(),
        conversations: conversations.iter().map(ConversationView::from).collect(),
        usage: UsageView::from(&usage),
        next_cursor,
    }))
}
