//! Organizations, members and invites. Owners and admins manage; only owners touch owners.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::app::providers::OrgListQuery;
use crate::crypto::{new_token, token_hash};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::{ListQuery, encode_cursor, page_views};
use crate::views::*;
use crate::web::caller::Caller;

const INVITE_TTL_DAYS: i64 = 7;
/// `Retry-After` of a refused invitation: the limits count a rolling hour.
const INVITE_RETRY_SECS: u64 = 600;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationResponse {
    pub organization: OrganizationView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationListResponse {
    pub organizations: Vec<OrganizationView>,
    pub active_organization_id: Option<String>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateOrganizationBody {
    #[schema(required = true, schema_with = crate::schema::name)]
    pub name: Option<String>,
    /// Lower-case letters, digits and dashes; generated from the name when absent.
    pub slug: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationBody {
    /// Default: the active organization.
    pub organization_id: Option<String>,
    pub name: Option<String>,
    pub slug: Option<String>,
    /// Refused: plans change only through the admin routes.
    #[schema(value_type = Option<String>)]
    pub plan: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveOrganizationBody {
    /// One of the caller's organizations.
    #[schema(required = true, nullable = false, min_length = 1, pattern = "\\S")]
    pub organization_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveOrganizationResponse {
    pub ok: bool,
    pub active_organization_id: String,
}

#[tracing::instrument(skip_all)]
pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: ListQuery,
) -> Result<OrganizationListResponse, DomainError> {
    let page = q.page()?;
    let scope = Scope::of(state, caller).await?;
    // Memberships are few per user; paginate the ordered list in place.
    let all: Vec<(Organization, Role)> = scope.memberships.clone();
    let start = match &page.after {
        Some(c) => all
            .iter()
            .position(|(o, _)| o.id.0 == c.id)
            .map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let slice: Vec<(Organization, Role)> =
        all.iter().skip(start).take(page.limit).cloned().collect();
    let more = all.len() > start + slice.len();
    let sub = Scope {
        memberships: slice,
        active: scope.active.clone(),
    };
    let next = if more {
        sub.memberships.last().map(|(o, _)| {
            encode_cursor(&Cursor {
                key: String::new(),
                id: o.id.0.clone(),
            })
        })
    } else {
        None
    };
    Ok(OrganizationListResponse {
        organizations: access::org_views(state, &sub).await?,
        active_organization_id: scope.active.map(|o| o.0),
        next_cursor: next,
    })
}

#[tracing::instrument(skip_all)]
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: CreateOrganizationBody,
) -> Result<OrganizationResponse, DomainError> {
    let name = rules::required(body.name.as_deref(), MAX_NAME, "name is required")?;
    let slug = match rules::trimmed(body.slug.as_deref()) {
        Some(s) => rules::validate_slug(&s)?,
        None => rules::slugify(&name),
    };
    let org = Organization {
        id: OrgId::generate(),
        slug,
        name,
        owner_user_id: Some(caller.user.id.clone()),
        is_personal: false,
        created_at: now(),
    };
    match state.store.create_organization(&org, &caller.user.id).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(DomainError::conflict("This slug is already taken"));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(OrganizationResponse {
        organization: org_view(&org, Role::Owner, &[]),
    })
}

/// Renames an organization (owner/admin). A `plan` field is refused with 403: the first system
/// let any member change their own paid plan here.
#[tracing::instrument(skip_all)]
pub async fn update(
    state: &AppState,
    caller: &Caller,
    body: UpdateOrganizationBody,
) -> Result<OrganizationResponse, DomainError> {
    if body.plan.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(DomainError::Forbidden(
            "Plans are changed by an administrator, not through the organization.",
        ));
    }
    let scope = Scope::of(state, caller).await?;
    let (org, role) = scope.manage(body.organization_id.as_deref())?.clone();
    let name = match body.name.as_deref() {
        Some(n) => rules::required(Some(n), MAX_NAME, "name must not be empty")?,
        None => org.name.clone(),
    };
    let slug = match body.slug.as_deref() {
        Some(s) => rules::validate_slug(s)?,
        None => org.slug.clone(),
    };
    match state.store.rename_organization(&org.id, &name, &slug).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(DomainError::conflict("This slug is already taken"));
        }
        Err(e) => return Err(e.into()),
    }
    let providers = access::all_providers(state, &org.id).await?;
    let org = Organization { name, slug, ..org };
    Ok(OrganizationResponse {
        organization: org_view(&org, role, &providers),
    })
}

#[tracing::instrument(skip_all)]
pub async fn set_active(
    state: &AppState,
    caller: &Caller,
    body: ActiveOrganizationBody,
) -> Result<ActiveOrganizationResponse, DomainError> {
    let id = rules::trimmed(body.organization_id.as_deref())
        .ok_or_else(|| DomainError::invalid("organizationId is required"))?;
    let scope = Scope::of(state, caller).await?;
    let (org, _) = scope.resolve(Some(&id))?;
    state
        .store
        .set_active_organization(&caller.user.id, &org.id)
        .await?;
    Ok(ActiveOrganizationResponse {
        ok: true,
        active_organization_id: org.id.0.clone(),
    })
}

page_response! { MemberListResponse { members: MemberView } }

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    pub member: MemberView,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateMemberBody {
    /// Default: the active organization.
    pub organization_id: Option<String>,
    #[schema(required = true, schema_with = crate::schema::member_role)]
    pub role: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct OrgQuery {
    /// Default: the active organization.
    pub organization_id: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn members(
    state: &AppState,
    caller: &Caller,
    q: OrgListQuery,
) -> Result<MemberListResponse, DomainError> {
    let (org, page) = q.page_in(state, caller, Scope::resolve).await?;
    let result = state.store.members(&org.id, &page).await?;
    Ok(page_views(&result, MemberView::from).into())
}

async fn member_of(state: &AppState, org: &OrgId, user: &UserId) -> Result<Member, DomainError> {
    // Members are few; the first pages cover them. Look the user up directly.
    let mut page = PageReq::first(200);
    loop {
        let batch = state.store.members(org, &page).await?;
        if let Some(m) = batch.items.iter().find(|m| &m.membership.user_id == user) {
            return Ok(m.clone());
        }
        match batch.next {
            Some(c) => page.after = Some(c),
            None => return Err(DomainError::NotFound("Member not found")),
        }
    }
}

/// Changes a member's role. Owners/admins may; only owners grant or take `owner`; the last
/// owner cannot be demoted.
#[tracing::instrument(skip_all)]
pub async fn update_member(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    body: UpdateMemberBody,
) -> Result<MemberResponse, DomainError> {
    let role = body
        .role
        .as_deref()
        .map(str::trim)
        .and_then(Role::parse)
        .ok_or_else(|| {
            DomainError::invalid("role must be owner, admin, member or billing_viewer")
        })?;
    let scope = Scope::of(state, caller).await?;
    let (org, my_role) = scope.manage(body.organization_id.as_deref())?.clone();
    let target = UserId::from(user_id);
    let member = member_of(state, &org.id, &target).await?;
    let touches_owner = role == Role::Owner || member.membership.role == Role::Owner;
    if touches_owner && my_role != Role::Owner {
        return Err(DomainError::Forbidden(
            "Only owners can grant or change the owner role.",
        ));
    }
    // The store refuses to demote the last owner, atomically (two owners demoting each other
    // at once keep one).
    state.store.set_role(&org.id, &target, role).await?;
    let mut member = member;
    member.membership.role = role;
    Ok(MemberResponse {
        member: MemberView::from(&member),
    })
}

/// Removes a member (owner/admin), or leaves (anyone, for themselves). Owners are removed only by
/// owners, and never the last one.
#[tracing::instrument(skip_all)]
pub async fn remove_member(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    q: OrgQuery,
) -> Result<OkBody, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let target = UserId::from(user_id);
    let leaving = target == caller.user.id;
    let (org, my_role) = if leaving {
        scope.resolve(q.organization_id.as_deref())?.clone()
    } else {
        scope.manage(q.organization_id.as_deref())?.clone()
    };
    let member = member_of(state, &org.id, &target).await?;
    if member.membership.role == Role::Owner && my_role != Role::Owner {
        return Err(DomainError::Forbidden("Only owners can remove an owner."));
    }
    state.store.remove_member(&org.id, &target).await?;
    Ok(OkBody { ok: true })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateInviteBody {
    pub organization_id: Option<String>,
    #[schema(required = true, nullable = false, format = Email, min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(schema_with = crate::schema::invite_role)]
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteCreatedResponse {
    pub ok: bool,
    pub invite: InviteView,
    /// The one-time token (only its hash is stored): share it or the link with the invitee.
    pub token: String,
    pub accept_url: String,
}

page_response! { InviteListResponse { invites: InviteView } }

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AcceptInviteBody {
    /// The `token` of the invite (from its creation or its mail link).
    #[schema(required = true, nullable = false, min_length = 1, pattern = "\\S")]
    pub token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptInviteResponse {
    pub ok: bool,
    pub organization: OrganizationView,
}

#[tracing::instrument(skip_all)]
pub async fn create_invite(
    state: &AppState,
    caller: &Caller,
    body: CreateInviteBody,
) -> Result<InviteCreatedResponse, DomainError> {
    let email = rules::trimmed(body.email.as_deref())
        .ok_or_else(|| DomainError::invalid("organizationId and email are required"))?;
    let email = rules::normalize_email(&email)?;
    let role = match body
        .role
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => Role::Member,
        Some(r) => match Role::parse(r) {
            Some(Role::Owner) | None => {
                return Err(DomainError::invalid(
                    "role must be admin, member or billing_viewer",
                ));
            }
            Some(r) => r,
        },
    };
    let scope = Scope::of(state, caller).await?;
    let (org, _) = scope.resolve(body.organization_id.as_deref())?.clone();
    if !scope.role(&org.id).is_some_and(Role::can_manage) {
        return Err(DomainError::Forbidden("Invite creation not allowed"));
    }
    // Invitations put the sender's words in someone else's mailbox: only a proven address may
    // send them, and only so many an hour.
    if caller.user.email_verified_at.is_none() {
        return Err(DomainError::Forbidden(
            "Confirm your email address before inviting anyone.",
        ));
    }
    let now = now();
    let (in_org, by_caller) = state
        .store
        .recent_invite_counts(&org.id, &caller.user.id, now - chrono::Duration::hours(1))
        .await?;
    if by_caller >= state.config.invites_per_hour_per_account
        || in_org >= state.config.invites_per_hour_per_org
    {
        return Err(DomainError::RateLimited(INVITE_RETRY_SECS));
    }
    let token = new_token("invite-");
    let invite = Invite {
        id: InviteId::generate(),
        token_hash: token_hash(&token),
        organization_id: org.id.clone(),
        invited_email: email,
        role,
        inviter_user_id: Some(caller.user.id.clone()),
        expires_at: now + chrono::Duration::days(INVITE_TTL_DAYS),
        accepted_at: None,
        revoked_at: None,
        created_at: now,
    };
    state.store.insert_invite(&invite).await?;
    let mut accept = state.config.web_url.clone();
    accept.set_path("/cloud/accept-invite");
    accept
        .query_pairs_mut()
        .clear()
        .append_pair("token", &token);
    Ok(InviteCreatedResponse {
        ok: true,
        invite: InviteView::from(&invite),
        token,
        accept_url: accept.to_string(),
    })
}

#[tracing::instrument(skip_all)]
pub async fn invites(
    state: &AppState,
    caller: &Caller,
    q: OrgListQuery,
) -> Result<InviteListResponse, DomainError> {
    let (org, page) = q.page_in(state, caller, Scope::manage).await?;
    let result = state.store.invites(&org.id, &page).await?;
    Ok(page_views(&result, InviteView::from).into())
}

#[tracing::instrument(skip_all)]
pub async fn revoke_invite(
    state: &AppState,
    caller: &Caller,
    invite_id: &str,
    q: OrgQuery,
) -> Result<OkBody, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let (org, _) = scope.manage(q.organization_id.as_deref())?;
    match state
        .store
        .revoke_invite(&org.id, &InviteId::from(invite_id), now())
        .await
    {
        Ok(()) => Ok(OkBody { ok: true }),
        Err(StoreError::NotFound) => Err(DomainError::NotFound("Invite not found")),
        Err(e) => Err(e.into()),
    }
}

/// Accepts an invite addressed to the caller's email: membership with the invited role, and the
/// organization becomes active.
#[tracing::instrument(skip_all)]
pub async fn accept_invite(
    state: &AppState,
    caller: &Caller,
    body: AcceptInviteBody,
) -> Result<AcceptInviteResponse, DomainError> {
    let token = rules::trimmed(body.token.as_deref())
        .ok_or_else(|| DomainError::invalid("token is required"))?;
    let invalid =
        || -> DomainError { DomainError::InvalidToken("Invalid or expired organization invite") };
    let now = now();
    let invite = state
        .store
        .invite_by_token_hash(&token_hash(&token))
        .await?
        .filter(|i| {
            i.accepted_at.is_none()
                && i.revoked_at.is_none()
                && i.expires_at > now
                && i.invited_email == caller.user.email
        })
        .ok_or_else(invalid)?;
    match state
        .store
        .accept_invite(&invite.id, &caller.user.id, now)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    }
    state
        .store
        .set_active_organization(&caller.user.id, &invite.organization_id)
        .await?;
    let scope = Scope::load(state, &caller.user.id, Some(&invite.organization_id)).await?;
    let (org, role) = scope
        .org(&invite.organization_id)
        .cloned()
        .ok_or_else(invalid)?;
    let providers = access::all_providers(state, &org.id).await?;
    Ok(AcceptInviteResponse {
        ok: true,
        organization: org_view(&org, role, &providers),
    })
}
