//! Organization pages: create, rename, invite, accept.

use super::*;

// Organizations -----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct OrgQuery {
    pub(super) org: Option<String>,
    pub(super) notice: Option<String>,
}

pub(super) async fn render_orgs(shown: Shown<'_>) -> Page {
    let Shown {
        state,
        ctx,
        caller,
        memberships,
        org,
        ..
    } = shown;
    let rows = org_rows(&memberships);
    let selected = org
        .and_then(|id| memberships.iter().find(|(o, _)| o.id.0 == id))
        .or_else(|| memberships.iter().find(|(o, _)| !o.is_personal))
        .or_else(|| memberships.first());
    let mut members = Vec::new();
    let mut invites = Vec::new();
    let mut can_manage = false;
    if let Some((o, role)) = selected {
        can_manage = role.can_manage();
        let list = orgs::members(state, caller, first_page_of(&o.id.0))
            .await
            .map_err(|e| ok_or_page(ctx, e))?;
        members = list
            .members
            .into_iter()
            .map(|m| MemberRow {
                display_name: m.display_name,
                email: m.email,
                role: m.role,
            })
            .collect();
        if can_manage {
            if let Ok(list) = orgs::invites(state, caller, first_page_of(&o.id.0)).await {
                invites = list
                    .invites
                    .into_iter()
                    .map(|i| InviteRow {
                        email: i.email,
                        role: i.role,
                        expires_at: i.expires_at.chars().take(10).collect(),
                    })
                    .collect();
            }
        }
    }
    let selected_row = selected
        .map(|s| org_rows(std::slice::from_ref(s)))
        .and_then(|mut v| v.pop());
    Ok(ctx.page(
        shown.status,
        &OrgsPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            notice: shown.notice,
            error: shown.error,
            selected_id: selected_row
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_default(),
            orgs: rows,
            selected: selected_row,
            can_manage,
            members,
            invites,
        },
    ))
}

pub async fn orgs_page(State(state): State<AppState>, ctx: Ctx, q: Query<OrgQuery>) -> Page {
    Listing::Organizations.page(&state, ctx, q.0).await
}

#[derive(Debug, Default, Deserialize)]
pub struct OrgForm {
    organization_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

impl OrgForm {
    fn organization(&self) -> Option<String> {
        self.organization_id.clone()
    }
}

pub async fn org_create(State(state): State<AppState>, form: Posted<OrgForm>) -> Page {
    // A new organization: the listing shows the default one again if it is refused.
    let (post, form) = Listing::Organizations.post(form, |_| None)?;
    let body = orgs::CreateOrganizationBody {
        name: form.name,
        ..Default::default()
    };
    let result = orgs::create(&state, &post.caller, body).await;
    let created = post.check(&state, result).await?;
    Ok(Listing::Organizations.done(&created.organization.id, "created"))
}

pub async fn org_rename(State(state): State<AppState>, form: Posted<OrgForm>) -> Page {
    let (post, form) = Listing::Organizations.post(form, OrgForm::organization)?;
    let body = orgs::UpdateOrganizationBody {
        organization_id: form.organization_id,
        name: form.name,
        ..Default::default()
    };
    let result = orgs::update(&state, &post.caller, body).await;
    let updated = post.check(&state, result).await?;
    Ok(Listing::Organizations.done(&updated.organization.id, "renamed"))
}

pub async fn org_invite(State(state): State<AppState>, form: Posted<OrgForm>) -> Page {
    let (post, form) = Listing::Organizations.post(form, OrgForm::organization)?;
    let body = orgs::CreateInviteBody {
        organization_id: form.organization_id,
        email: form.email,
        role: form.role,
    };
    let result = orgs::create_invite(&state, &post.caller, body).await;
    let created = post.check(&state, result).await?;
    let org_name = match state
        .store
        .organization(&OrgId(created.invite.organization_id.clone()))
        .await
    {
        Ok(Some(o)) => o.name,
        _ => "an organization".to_owned(),
    };
    state
        .mailer
        .send(mails::invite(
            &created.invite.email,
            &post.caller.user.display_name,
            &org_name,
            &created.accept_url,
        ))
        .await;
    Ok(Listing::Organizations.done(&created.invite.organization_id, "invited"))
}

pub async fn accept_page(ctx: Ctx, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let Some(caller) = &ctx.caller else {
        let back = format!(
            "/cloud/accept-invite?{}",
            serde_urlencoded::to_string([("token", token.as_str())]).unwrap_or_default()
        );
        return to_login(&back);
    };
    ctx.page(
        StatusCode::OK,
        &AcceptPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            email: caller.user.email.clone(),
            token,
        },
    )
}

pub async fn accept_submit(State(state): State<AppState>, form: Posted<TokenForm>) -> Page {
    let (ctx, caller, form) = form.signed_in(ORGS)?;
    let body = orgs::AcceptInviteBody { token: form.token };
    Ok(match orgs::accept_invite(&state, &caller, body).await {
        Ok(accepted) => Listing::Organizations.done(&accepted.organization.id, "joined"),
        Err(e) => refused(
            &ctx,
            e,
            "Invitation not valid",
            "This invitation is invalid, expired, already used, or addressed to another email.",
            Some(("/cloud/account", "Back to your account")),
        ),
    })
}
