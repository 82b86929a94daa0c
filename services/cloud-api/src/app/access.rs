//! Tenant scoping. Every route that takes an id resolves it here, against the caller's
//! memberships: an id of another tenant is indistinguishable from an id that does not exist
//! (404), so ids cannot be probed.

use crate::AppState;
use crate::domain::rules::{effective_plan, has_subscription};
use crate::domain::*;
use crate::store::StoreResult;
use crate::web::caller::Caller;

/// The caller's organizations and which one is active.
#[derive(Debug, Clone)]
pub struct Scope {
    pub memberships: Vec<(Organization, Role)>,
    pub active: Option<OrgId>,
}

impl Scope {
    pub async fn load(
        state: &AppState,
        user: &UserId,
        session_active: Option<&OrgId>,
    ) -> Result<Self, DomainError> {
        let memberships = state.store.memberships_of(user).await?;
        let active = session_active
            .filter(|a| memberships.iter().any(|(o, _)| &o.id == *a))
            .cloned()
            .or_else(|| memberships.first().map(|(o, _)| o.id.clone()));
        Ok(Self {
            memberships,
            active,
        })
    }

    pub async fn of(state: &AppState, caller: &Caller) -> Result<Self, DomainError> {
        Self::load(
            state,
            &caller.user.id,
            caller.session.active_organization_id.as_ref(),
        )
        .await
    }

    pub fn org_ids(&self) -> Vec<OrgId> {
        self.memberships.iter().map(|(o, _)| o.id.clone()).collect()
    }

    pub fn role(&self, org: &OrgId) -> Option<Role> {
        self.memberships
            .iter()
            .find(|(o, _)| &o.id == org)
            .map(|(_, r)| *r)
    }

    pub fn org(&self, org: &OrgId) -> Option<&(Organization, Role)> {
        self.memberships.iter().find(|(o, _)| &o.id == org)
    }

    /// The requested organization (trimmed; blank = the active one), or 404.
    pub fn resolve(&self, requested: Option<&str>) -> Result<&(Organization, Role), DomainError> {
        let id = match requested.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => OrgId::from(id),
            None => self
                .active
                .clone()
                .ok_or(DomainError::NotFound("Organization not found"))?,
        };
        self.org(&id)
            .ok_or(DomainError::NotFound("Organization not found"))
    }

    /// Like [`Scope::resolve`], and the caller must be an owner or admin there (403 otherwise).
    pub fn manage(&self, requested: Option<&str>) -> Result<&(Organization, Role), DomainError> {
        let found = self.resolve(requested)?;
        require_manager(found.1)?;
        Ok(found)
    }

    /// A project in one of the caller's organizations, or 404.
    pub async fn project(&self, state: &AppState, id: &str) -> Result<Project, DomainError> {
        let found = state.store.project(&ProjectId::from(id)).await?;
        visible_or_404(
            found,
            |p| self.role(&p.organization_id).is_some(),
            "Project not found",
        )
    }

    /// A conversation in one of the caller's organizations, or 404.
    pub async fn conversation(
        &self,
        state: &AppState,
        id: &str,
    ) -> Result<Conversation, DomainError> {
        let found = state.store.conversation(&ConversationId::from(id)).await?;
        let visible = |c: &Conversation| self.role(&c.organization_id).is_some();
        visible_or_404(found, visible, "Conversation not found")
    }

    pub fn org_name(&self, org: &OrgId) -> String {
        self.org(org)
            .map(|(o, _)| o.name.clone())
            .unwrap_or_default()
    }
}

/// What a lookup by id found, when the caller may see it; 404 `message` otherwise (a record of
/// another tenant answers like one that does not exist).
pub fn visible_or_404<T>(
    found: Option<T>,
    visible: impl FnOnce(&T) -> bool,
    message: &'static str,
) -> Result<T, DomainError> {
    found.filter(visible).ok_or(DomainError::NotFound(message))
}

/// The one role check of organization management: owners and admins may (403 otherwise).
pub fn require_manager(role: Role) -> Result<(), DomainError> {
    if role.can_manage() {
        Ok(())
    } else {
        Err(DomainError::Forbidden(
            "Only owners and admins of the organization can do this.",
        ))
    }
}

/// A conversation of the caller's organizations, or 404.
pub async fn callers_conversation(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Conversation, DomainError> {
    Scope::of(state, caller)
        .await?
        .conversation(state, id)
        .await
}

/// The plans, normalised (sorted, one default).
pub async fn plans(state: &AppState) -> Result<Vec<Plan>, DomainError> {
    if let Some(plans) = state.plan_cache.fresh() {
        return Ok(plans);
    }
    let plans = crate::domain::rules::normalize_plans(state.store.plans().await?);
    state.plan_cache.store(&plans);
    Ok(plans)
}

pub async fn usage(state: &AppState, user: &User, plans: &[Plan]) -> Result<Usage, DomainError> {
    let now = now();
    let plan = effective_plan(user, plans, now);
    let active = state.store.active_runtime_sessions(&user.id, now).await?;
    Ok(Usage {
        active,
        limit: plan.parallel_sessions_limit,
    })
}

/// Subscription-gated routes: 403 `subscription_required` (with usage) without an effective plan.
pub async fn require_subscription(state: &AppState, user: &User) -> Result<(), DomainError> {
    if has_subscription(user, now()) {
        return Ok(());
    }
    let plans = plans(state).await?;
    let usage = usage(state, user, &plans).await?;
    Err(DomainError::SubscriptionRequired(Box::new(usage)))
}

/// Every item of a paged store list, page by page (lists the desktop reads whole).
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, DomainError>
where
    F: FnMut(PageReq) -> Fut,
    Fut: std::future::Future<Output = StoreResult<Page<T>>>,
{
    let mut out = Vec::new();
    let mut page = PageReq::first(200);
    loop {
        let batch = fetch(page.clone()).await?;
        out.extend(batch.items);
        match batch.next {
            Some(c) => page.after = Some(c),
            None => return Ok(out),
        }
    }
}

/// Every provider of an organization.
pub async fn all_providers(state: &AppState, org: &OrgId) -> Result<Vec<Provider>, DomainError> {
    all_pages(|page| async move { state.store.providers(org, &page).await }).await
}

/// Organization views with all their providers.
pub async fn org_views(
    state: &AppState,
    scope: &Scope,
) -> Result<Vec<crate::views::OrganizationView>, DomainError> {
    let mut out = Vec::with_capacity(scope.memberships.len());
    for (org, role) in &scope.memberships {
        let providers = all_providers(state, &org.id).await?;
        out.push(crate::views::org_view(org, *role, &providers));
    }
    Ok(out)
}

/// What the account summary shows of a user (`GET /v1/account`, the admin's user answers).
pub struct Summary {
    pub user: crate::views::UserView,
    pub usage: crate::views::UsageView,
    /// Every plan, hidden ones included.
    pub plans: Vec<Plan>,
    pub organizations: Vec<crate::views::OrganizationView>,
    pub active_organization_id: Option<String>,
}

/// The summary of `user` (as given: the admin list already applied), with the organization
/// `session_active` active when it is one of theirs.
pub async fn summary(
    state: &AppState,
    user: &User,
    session_active: Option<&OrgId>,
) -> Result<Summary, DomainError> {
    let plans = plans(state).await?;
    let usage = usage(state, user, &plans).await?;
    let scope = Scope::load(state, &user.id, session_active).await?;
    Ok(Summary {
        user: crate::views::user_view(user, &plans, now()),
        usage: crate::views::UsageView::from(&usage),
        plans,
        organizations: org_views(state, &scope).await?,
        active_organization_id: scope.active.map(|o| o.0),
    })
}
