//! Provider settings pages.

use super::*;

// Providers ---------------------------------------------------------------------------------------

/// The models of a provider as the forms show them, `separator` between.
fn model_ids(p: &crate::views::ProviderView, separator: &str) -> String {
    p.models
        .iter()
        .map(|m| m.id.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}

pub(super) async fn render_providers(shown: Shown<'_>) -> Page {
    let (ctx, memberships) = (shown.ctx, &shown.memberships);
    let selected = shown
        .org
        .and_then(|id| memberships.iter().find(|(o, _)| o.id.0 == id))
        .or_else(|| memberships.first());
    let Some((o, role)) = selected else {
        return Err(ok_or_page(ctx, ApiError::not_found("No organization")));
    };
    let list = providers::list(shown.state, shown.caller, first_page_of(&o.id.0))
        .await
        .map_err(|e| ok_or_page(ctx, e))?
        .providers;
    Ok(ctx.page(
        shown.status,
        &ProvidersPage {
            signed_in: true,
            csrf_token: ctx.csrf.clone(),
            notice: shown.notice.clone(),
            error: shown.error.clone(),
            orgs: org_rows(memberships),
            org_id: o.id.0.clone(),
            can_manage: role.can_manage(),
            providers: list
                .into_iter()
                .map(|p| ProviderRow {
                    models: model_ids(&p, ", "),
                    id: p.id,
                    label: p.label,
                    kind: p.kind,
                    base_url: p.base_url,
                    default_model: p.default_model,
                    secret_set: p.secret_hint == "set",
                })
                .collect(),
        },
    ))
}

pub async fn providers_page(State(state): State<AppState>, ctx: Ctx, q: Query<OrgQuery>) -> Page {
    Listing::Providers.page(&state, ctx, q.0).await
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

pub async fn provider_create(State(state): State<AppState>, form: Posted<ProviderForm>) -> Page {
    let org_of = |f: &ProviderForm| f.organization_id.clone();
    let (post, form) = Listing::Providers.post(form, org_of)?;
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
    let result = providers::create(&state, &post.caller, body).await;
    let created = post.check(&state, result).await?;
    Ok(Listing::Providers.done(&created.provider.organization_id, "added"))
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
    providers::list(state, caller, first_page_of(&provider.organization_id.0))
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
    let (status, error) = status_and_error(error);
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
            models: model_ids(p, "\n"),
            default_model: p.default_model.clone().unwrap_or_default(),
            secret_set: p.secret_hint == "set",
        },
    )
}

pub async fn provider_edit_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Page {
    let caller = ctx.caller_or_login(PROVIDERS)?;
    Ok(match find_provider(&state, &caller, &id).await {
        Some(p) => edit_page(&ctx, &p, None),
        None => ctx.notice(
            StatusCode::NOT_FOUND,
            "Not found",
            "Provider not found.",
            Some((PROVIDERS, "Providers")),
        ),
    })
}

/// A provider form about provider `id`.
type ProviderPost = (Path<String>, Posted<ProviderForm>);

pub async fn provider_update(State(state): State<AppState>, post: ProviderPost) -> Page {
    let (Path(id), form) = post;
    let (ctx, caller, form) = form.signed_in(PROVIDERS)?;
    let body = providers::UpdateProviderBody {
        label: form.label,
        secret: form.secret.filter(|s| !s.trim().is_empty()),
        base_url: form.base_url,
        credential_type: None,
        models: Some(lines(form.models.as_deref())),
        default_model: form.default_model,
    };
    Ok(
        match providers::update(&state, &caller, &id, body)
            .await
            .map_err(ApiError::from)
        {
            Ok(updated) => Listing::Providers.done(&updated.provider.organization_id, "saved"),
            Err(e) if e.status.is_client_error() => match find_provider(&state, &caller, &id).await
            {
                Some(p) => edit_page(&ctx, &p, Some((e.status, e.message.to_string()))),
                None => ok_or_page(&ctx, e),
            },
            Err(e) => ok_or_page(&ctx, e),
        },
    )
}

pub async fn provider_delete(State(state): State<AppState>, post: ProviderPost) -> Page {
    let (Path(id), form) = post;
    let (ctx, caller, _form) = form.signed_in(PROVIDERS)?;
    let org = find_provider(&state, &caller, &id)
        .await
        .map(|p| p.organization_id);
    Ok(match providers::delete(&state, &caller, &id).await {
        Ok(_) => Listing::Providers.done(&org.unwrap_or_default(), "deleted"),
        Err(e) => ok_or_page(&ctx, e),
    })
}
