//! Organization pages: create, rename, invite, accept.

use super::*;

// Organizations -----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct OrgQuery {
    pub(super) org: Option<String>,
    pub(super) notice: Option<String>,
}

pub(super) async fn render_orgs(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    org: Option<&str>,
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let memberships = match Scope::of(state, caller).await {
        Ok(scope) => scope.memberships,
        Err(e) => return ok_or_page(ctx, e),
    };
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
        let q = || OrgListQuery {
            organization_id: Some(o.id.0.clone()),
            limit: Some("200".into()),
            cursor: None,
        };
        match orgs::members(state, caller, q()).await {
            Ok(list) => {
                members = list
                    .members
                    .into_iter()
                    .map(|m| MemberRow {
                        display_name: m.display_name,
                        email: m.email,
                        role: m.role,
                    })
                    .collect();
            }
            Err(e) => return ok_or_page(ctx, e),
        }
        if can_manage {
            if let Ok(list) = orgs::invites(state, caller, q()).await {
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
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    ctx.page(
        status,
        &OrgsPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            notice,
            error,
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
    )
}

pub(super) fn org_notice(key: Option<&str>) -> Option<String> {
    match key? {
        "created" => Some("Organization created.".into()),
        "renamed" => Some("Organization renamed.".into()),
        "invited" => Some("Invitation sent.".into()),
        "joined" => Some("You joined the organization.".into()),
        _ => None,
    }
}

pub async fn orgs_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OrgQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/organizations");
    };
    render_orgs(
        &state,
        &ctx,
        &caller,
        q.org.as_deref(),
        org_notice(q.notice.as_deref()),
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct OrgForm {
    organization_id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

pub(super) async fn org_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Ctx, Caller, OrgForm), Response> {
    let ctx = Ctx::load(state, headers).await;
    let form: OrgForm = parse_form(headers, body).map_err(|r| r.respond(&ctx))?;
    let Some(caller) = ctx.caller.clone() else {
        return Err(to_login("/cloud/organizations"));
    };
    Ok((ctx, caller, form))
}

pub async fn org_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match org_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = orgs::CreateOrganizationBody {
        name: form.name,
        slug: None,
    };
    match orgs::create(&state, &caller, body).await {
        Ok(created) => after_post(&format!(
            "/cloud/organizations?org={}&notice=created",
            created.organization.id
        )),
        Err(e) if e.status.is_client_error() => {
            render_orgs(
                &state,
                &ctx,
                &caller,
                None,
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn org_rename(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match org_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = form.organization_id.clone();
    let body = orgs::UpdateOrganizationBody {
        organization_id: form.organization_id,
        name: form.name,
        slug: None,
        plan: None,
    };
    match orgs::update(&state, &caller, body).await {
        Ok(updated) => after_post(&format!(
            "/cloud/organizations?org={}&notice=renamed",
            updated.organization.id
        )),
        Err(e) if e.status.is_client_error() => {
            render_orgs(
                &state,
                &ctx,
                &caller,
                org.as_deref(),
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn org_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match org_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = form.organization_id.clone();
    let body = orgs::CreateInviteBody {
        organization_id: form.organization_id,
        email: form.email,
        role: form.role,
    };
    match orgs::create_invite(&state, &caller, body).await {
        Ok(created) => {
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
                    &caller.user.display_name,
                    &org_name,
                    &created.accept_url,
                ))
                .await;
            after_post(&format!(
                "/cloud/organizations?org={}&notice=invited",
                created.invite.organization_id
            ))
        }
        Err(e) if e.status.is_client_error() => {
            render_orgs(
                &state,
                &ctx,
                &caller,
                org.as_deref(),
                None,
                Some((e.status, e.message.to_string())),
            )
            .await
        }
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn accept_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
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

pub async fn accept_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let form: TokenForm = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r.respond(&ctx),
    };
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/organizations");
    };
    let body = orgs::AcceptInviteBody { token: form.token };
    match orgs::accept_invite(&state, &caller, body).await {
        Ok(accepted) => after_post(&format!(
            "/cloud/organizations?org={}&notice=joined",
            accepted.organization.id
        )),
        Err(e) if e.status.is_client_error() => ctx.notice(
            StatusCode::BAD_REQUEST,
            "Invitation not valid",
            "This invitation is invalid, expired, already used, or addressed to another email.",
            Some(("/cloud/account", "Back to your account")),
        ),
        Err(e) => ok_or_page(&ctx, e),
    }
}
