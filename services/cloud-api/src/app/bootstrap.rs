//! The account summary (`GET /v1/account`) and the desktop bootstrap (`GET /v1/bootstrap`):
//! everything the desktop needs at start, whole or by pages.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::app::instances::registered_view;
use crate::domain::*;
use crate::paging::page_req;
use crate::views::*;
use crate::web::caller::Caller;

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

pub async fn account(state: &AppState, caller: &Caller) -> Result<AccountResponse, DomainError> {
    let summary = access::summary(
        state,
        &caller.user,
        caller.session.active_organization_id.as_ref(),
    )
    .await?;
    Ok(AccountResponse {
        user: summary.user,
        usage: summary.usage,
        plans: summary
            .plans
            .iter()
            .filter(|p| !p.is_hidden)
            .map(PlanView::from)
            .collect(),
        organizations: summary.organizations,
        active_organization_id: summary.active_organization_id,
    })
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
    fn decode(raw: &str) -> Result<Self, DomainError> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| DomainError::invalid("Invalid cursor"))
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

/// One page of a bootstrap list, from where the cursor left it (nothing once it is done).
async fn bootstrap_page<T, Fut>(
    done: bool,
    after: Option<(String, String)>,
    limit: usize,
    fetch: impl FnOnce(PageReq) -> Fut,
) -> Result<Page<T>, DomainError>
where
    Fut: std::future::Future<Output = crate::store::StoreResult<Page<T>>>,
{
    if done {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    let page = PageReq {
        limit,
        after: to_cursor(after),
    };
    Ok(fetch(page).await?)
}

pub async fn bootstrap(
    state: &AppState,
    caller: &Caller,
    q: BootstrapQuery,
) -> Result<BootstrapResponse, DomainError> {
    access::require_subscription(state, &caller.user).await?;
    let scope = Scope::of(state, caller).await?;
    let plans = access::plans(state).await?;
    let usage = access::usage(state, &caller.user, &plans).await?;
    let orgs = scope.org_ids();
    let paged = [q.limit.as_deref(), q.cursor.as_deref()]
        .iter()
        .any(|v| v.is_some_and(|v| !v.trim().is_empty()));
    let (store, orgs) = (&state.store, &orgs);
    let (projects, conversations, next_cursor) = if paged {
        let limit = page_req(q.limit.as_deref(), None, 50, 200)?.limit;
        let at = match q.cursor.as_deref().filter(|c| !c.trim().is_empty()) {
            Some(c) => BootstrapCursor::decode(c)?,
            None => BootstrapCursor::default(),
        };
        let projects = bootstrap_page(at.projects_done, at.projects, limit, |page| async move {
            store.projects(orgs, &page).await
        })
        .await?;
        let conversations = bootstrap_page(
            at.conversations_done,
            at.conversations,
            limit,
            |page| async move { store.conversations(orgs, None, &page).await },
        )
        .await?;
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
    let user = &caller.user.id;
    let registered =
        access::all_pages(|page| async move { store.instances_of(user, &page).await }).await?;
    instances.extend(
        registered
            .iter()
            .filter(|i| i.id != canonical)
            .map(|i| registered_view(state, i)),
    );
    Ok(BootstrapResponse {
        user: user_view(&caller.user, &plans, now()),
        organizations: access::org_views(state, &scope).await?,
        active_organization_id: scope.active.as_ref().map(|o| o.0.clone()),
        cloud_instances: instances,
        projects: projects
            .iter()
            .map(|p| project_view(p, &scope.org_name(&p.organization_id)))
            .collect(),
        conversations: conversations.iter().map(ConversationView::from).collect(),
        usage: UsageView::from(&usage),
        next_cursor,
    })
}
