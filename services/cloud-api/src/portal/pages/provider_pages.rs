//! Provider settings pages.

use super::*;

// Providers ---------------------------------------------------------------------------------------

pub(super) async fn render_providers(
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
    let selected = org
        .and_then(|id| memberships.iter().find(|(o, _)| o.id.0 == id))
        .or_else(|| memberships.first());
    let Some((o, role)) = selected else {
        return ok_or_page(ctx, ApiError::not_found("No organization"));
    };
    let list = match providers::list(
        state,
        caller,
        OrgListQuery {
            organization_id: Some(o.id.0.clone()),
            limit: Some("200".into()),
            cursor: None,
        },
    )
    .await
    {
        Ok(l) => l.providers,
        Err(e) => return ok_or_page(ctx, e),
    };
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    ctx.page(
        status,
        &ProvidersPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            notice,
            error,
            orgs: org_rows(&memberships),
            org_id: o.id.0.clone(),
            can_manage: role.can_manage(),
            providers: list
                .into_iter()
                .map(|p| ProviderRow {
                    id: p.id,
                    label: p.label,
                    kind: p.kind,
                    base_url: p.base_url,
                    models: p
                        .models
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    default_model: p.default_model,
                    secret_set: p.secret_hint == "set",
                })
                .collect(),
        },
    )
}

pub(super) fn provider_notice(key: Option<&str>) -> Option<String> {
    match key? {
        "added" => Some("Provider added.".into()),
        "saved" => Some("Provider saved.".into()),
        "deleted" => Some("Provider deleted.".into()),
        _ => None,
    }
}

pub async fn providers_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<OrgQuery>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/providers");
    };
    render_providers(
        &state,
        &ctx,
        &caller,
        q.org.as_deref(),
        provider_notice(q.notice.as_deref()),
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ProviderForm {
    organization_id: Option<String>,
    kind: Option<String>,
    label: Option<String>,
    base_url: Option<String>,
    secret: Option<String>,
    models: Option<String>,
    default_model: Option<String>,
}

pub(super) async fn provider_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Ctx, Caller, ProviderForm), Response> {
    let ctx = Ctx::load(state, headers).await;
    let form: ProviderForm = parse_form(headers, body).map_err(|r| r.respond(&ctx))?;
    let Some(caller) = ctx.caller.clone() else {
        return Err(to_login("/cloud/providers"));
    };
    Ok((ctx, caller, form))
}

pub async fn provider_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match provider_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = form.organization_id.clone();
    let body = providers::CreateProviderBody {
        organization_id: form.organization_id,
        kind: form.kind,
        label: form.label,
        secret: form.secret,
        base_url: form.base_url,
        credential_type: None,
        models: Some(lines(form.models.as_deref())),
        default_model: form.default_model,
    };
    match providers::create(&state, &caller, body).await {
        Ok(created) => after_post(&format!(
            "/cloud/providers?org={}&notice=added",
            created.provider.organization_id
        )),
        Err(e) if e.status.is_client_error() => {
            render_providers(
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

/// The provider if the caller may see it (through the JSON list of its organization).
pub(super) async fn find_provider(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Option<crate::views::ProviderView> {
    let provider = state
        .store
        .provider(&ProviderId(id.to_owned()))
        .await
        .ok()??;
    providers::list(
        state,
        caller,
        OrgListQuery {
            organization_id: Some(provider.organization_id.0.clone()),
            limit: Some("200".into()),
            cursor: None,
        },
    )
    .await
    .ok()?
    .providers
    .into_iter()
    .find(|p| p.id == id)
}

pub(super) fn edit_page(
    ctx: &Ctx,
    p: &crate::views::ProviderView,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (status, error) = match error {
        Some((s, m)) => (s, Some(m)),
        None => (StatusCode::OK, None),
    };
    ctx.page(
        status,
        &ProviderEditPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            error,
            id: p.id.clone(),
            org_id: p.organization_id.clone(),
            kind: p.kind.clone(),
            label: p.label.clone(),
            base_url: p.base_url.clone(),
            models: p
                .models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            default_model: p.default_model.clone().unwrap_or_default(),
            secret_set: p.secret_hint == "set",
        },
    )
}

pub async fn provider_edit_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ctx = Ctx::load(&state, &headers).await;
    let Some(caller) = ctx.caller.clone() else {
        return to_login("/cloud/providers");
    };
    match find_provider(&state, &caller, &id).await {
        Some(p) => edit_page(&ctx, &p, None),
        None => ctx.notice(
            StatusCode::NOT_FOUND,
            "Not found",
            "Provider not found.",
            Some(("/cloud/providers", "Providers")),
        ),
    }
}

pub async fn provider_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (ctx, caller, form) = match provider_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = providers::UpdateProviderBody {
        label: form.label,
        secret: form.secret.filter(|s| !s.trim().is_empty()),
        base_url: form.base_url,
        credential_type: None,
        models: Some(lines(form.models.as_deref())),
        default_model: form.default_model,
    };
    match providers::update(&state, &caller, id.clone(), body).await {
        Ok(updated) => after_post(&format!(
            "/cloud/providers?org={}&notice=saved",
            updated.provider.organization_id
        )),
        Err(e) if e.status.is_client_error() => match find_provider(&state, &caller, &id).await {
            Some(p) => edit_page(&ctx, &p, Some((e.status, e.message.to_string()))),
            None => ok_or_page(&ctx, e),
        },
        Err(e) => ok_or_page(&ctx, e),
    }
}

pub async fn provider_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (ctx, caller, _form) = match provider_form(&state, &headers, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let org = find_provider(&state, &caller, &id)
        .await
        .map(|p| p.organization_id);
    match providers::delete(&state, &caller, id).await {
        Ok(_) => after_post(&format!(
            "/cloud/providers?org={}&notice=deleted",
            org.unwrap_or_default()
        )),
        Err(e) => ok_or_page(&ctx, e),
    }
}
