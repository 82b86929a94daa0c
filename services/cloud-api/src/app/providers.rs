//! LLM provider configurations of an organization. Secrets are sealed with AES-256-GCM before
//! they reach the store and are never part of any public answer (`secretHint` is just "set").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::page_views;
use crate::views::*;
use crate::web::caller::Caller;

#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
pub struct ModelInput {
    pub id: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateProviderBody {
    /// Default: the active organization.
    pub organization_id: Option<String>,
    /// `openai`, `anthropic`, `google`, `github-copilot` or another OpenAI-compatible kind.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub kind: Option<String>,
    #[schema(required = true, nullable = false, min_length = 1, max_length = 200)]
    pub label: Option<String>,
    /// API key or OAuth token; stored encrypted, never returned.
    #[schema(required = true, nullable = false, min_length = 1)]
    pub secret: Option<String>,
    pub base_url: Option<String>,
    /// `api_key` (default) or `oauth`.
    pub credential_type: Option<String>,
    pub models: Option<Vec<ModelInput>>,
    pub default_model: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProviderBody {
    pub label: Option<String>,
    /// Replaces the stored secret.
    pub secret: Option<String>,
    pub base_url: Option<String>,
    pub credential_type: Option<String>,
    pub models: Option<Vec<ModelInput>>,
    pub default_model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderCreatedResponse {
    pub provider: ProviderView,
    pub organization: OrganizationView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResponse {
    pub provider: ProviderView,
}

page_response! { ProviderListResponse { providers: ProviderView } }

page_query! { OrgListQuery {
    /// Default: the active organization.
    organization_id,
} limit "1-200, default 50." default 50 max 200 }

/// How a list picks its organization in the caller's scope: [`Scope::resolve`] or
/// [`Scope::manage`].
type PickOrg = for<'s> fn(&'s Scope, Option<&str>) -> Result<&'s (Organization, Role), DomainError>;

impl OrgListQuery {
    /// The page asked for, and the caller's organization it names, picked by `pick`
    /// ([`Scope::resolve`]: 404 when not theirs; [`Scope::manage`]: 403 too when they do not
    /// manage it).
    pub async fn page_in(
        &self,
        state: &AppState,
        caller: &Caller,
        pick: PickOrg,
    ) -> Result<(Organization, PageReq), DomainError> {
        let page = self.page()?;
        let scope = Scope::of(state, caller).await?;
        let (org, _) = pick(&scope, self.organization_id.as_deref())?;
        Ok((org.clone(), page))
    }
}

fn models(input: &[ModelInput]) -> Result<Vec<ProviderModel>, DomainError> {
    if input.len() > rules::MAX_MODELS {
        return Err(DomainError::invalid("Too many models"));
    }
    let mut out = Vec::new();
    for m in input {
        if let Some(id) = rules::trimmed(m.id.as_deref()) {
            let id = rules::bounded(id, MAX_NAME, "model id")?;
            let label = rules::trimmed(m.label.as_deref()).unwrap_or_else(|| id.clone());
            let label = rules::bounded(label, MAX_NAME, "model label")?;
            out.push(ProviderModel { id, label });
        }
    }
    Ok(out)
}

fn credential_type(v: Option<&str>) -> String {
    if v.map(str::trim) == Some("oauth") {
        "oauth".into()
    } else {
        "api_key".into()
    }
}

fn secret(v: Option<&str>) -> Result<Option<String>, DomainError> {
    rules::trimmed(v)
        .map(|s| rules::bounded(s, rules::MAX_SECRET, "secret"))
        .transpose()
}

#[tracing::instrument(skip_all)]
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: CreateProviderBody,
) -> Result<ProviderCreatedResponse, DomainError> {
    let (Some(kind), Some(label), Some(secret)) = (
        rules::trimmed(body.kind.as_deref()),
        rules::trimmed(body.label.as_deref()),
        secret(body.secret.as_deref())?,
    ) else {
        return Err(DomainError::invalid("kind, label, and secret are required"));
    };
    let kind = rules::bounded(kind, 64, "kind")?;
    let label = rules::bounded(label, MAX_NAME, "label")?;
    let scope = Scope::of(state, caller).await?;
    let (org, role) = scope.manage(body.organization_id.as_deref())?.clone();
    let base_url = match rules::trimmed(body.base_url.as_deref()) {
        Some(u) => rules::validate_base_url(&u)?,
        None => rules::default_base_url(&kind).to_owned(),
    };
    let models = models(body.models.as_deref().unwrap_or_default())?;
    let default_model = rules::trimmed(body.default_model.as_deref())
        .map(|m| rules::bounded(m, MAX_NAME, "defaultModel"))
        .transpose()?
        .or_else(|| models.first().map(|m| m.id.clone()));
    let id = ProviderId::generate();
    let sealed = state
        .secrets
        .seal(&secret, id.as_str())
        .map_err(DomainError::internal)?;
    let now = now();
    let provider = Provider {
        id,
        organization_id: org.id.clone(),
        supports_cloud_runtime: kind != "github-copilot",
        kind,
        label,
        base_url,
        credential_type: credential_type(body.credential_type.as_deref()),
        models,
        default_model,
        secret: Some(sealed),
        created_by: Some(caller.user.id.clone()),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_provider(&provider).await?;
    let providers = access::all_providers(state, &org.id).await?;
    Ok(ProviderCreatedResponse {
        provider: ProviderView::from(&provider),
        organization: org_view(&org, role, &providers),
    })
}

#[tracing::instrument(skip_all)]
pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: OrgListQuery,
) -> Result<ProviderListResponse, DomainError> {
    let (org, page) = q.page_in(state, caller, Scope::resolve).await?;
    let result = state.store.providers(&org.id, &page).await?;
    Ok(page_views(&result, ProviderView::from).into())
}

/// The provider if it belongs to one of the caller's organizations (404 otherwise), and whether
/// the caller manages that organization.
async fn visible_provider(
    state: &AppState,
    scope: &Scope,
    id: &str,
) -> Result<(Provider, Role), DomainError> {
    match state.store.provider(&ProviderId::from(id)).await? {
        Some(p) => match scope.role(&p.organization_id) {
            Some(role) => Ok((p, role)),
            None => Err(DomainError::NotFound("Provider not found")),
        },
        None => Err(DomainError::NotFound("Provider not found")),
    }
}

#[tracing::instrument(skip_all)]
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: UpdateProviderBody,
) -> Result<ProviderResponse, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let (mut p, role) = visible_provider(state, &scope, id).await?;
    access::require_manager(role)?;
    if body.label.is_some() {
        p.label = rules::required(body.label.as_deref(), MAX_NAME, "label must not be empty")?;
    }
    if let Some(s) = secret(body.secret.as_deref())? {
        p.secret = Some(
            state
                .secrets
                .seal(&s, p.id.as_str())
                .map_err(DomainError::internal)?,
        );
    }
    if let Some(u) = body.base_url.as_deref() {
        p.base_url = match rules::trimmed(Some(u)) {
            Some(u) => rules::validate_base_url(&u)?,
            None => rules::default_base_url(&p.kind).to_owned(),
        };
    }
    if body.credential_type.is_some() {
        p.credential_type = credential_type(body.credential_type.as_deref());
    }
    if let Some(m) = &body.models {
        p.models = models(m)?;
    }
    if body.default_model.is_some() {
        p.default_model = rules::trimmed(body.default_model.as_deref())
            .map(|m| rules::bounded(m, MAX_NAME, "defaultModel"))
            .transpose()?;
    }
    p.updated_at = now();
    state.store.update_provider(&p).await?;
    Ok(ProviderResponse {
        provider: ProviderView::from(&p),
    })
}

#[tracing::instrument(skip_all)]
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<OkBody, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let (p, role) = visible_provider(state, &scope, id).await?;
    access::require_manager(role)?;
    state.store.delete_provider(&p.id).await?;
    Ok(OkBody { ok: true })
}
