//! Memories: per-user (global) and per-project notes the runtime agent reads and writes.
//!
//! Context organization = `organizationId` (query/body, must be one of the caller's) or the
//! active one. Visible: global memories the caller owns, and project memories of the
//! organization. A client-chosen id never overwrites someone else's row (the first system let
//! any user overwrite any memory by id).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::domain::memory as mem;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::{page_req, page_views};
use crate::views::*;
use crate::web::caller::Caller;

mod upsert;

pub use upsert::*;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryPatch {
    pub title: Option<String>,
    pub content: Option<String>,
    pub kind: Option<String>,
    pub tags: Option<Vec<String>>,
    pub archived: Option<bool>,
    #[schema(schema_with = crate::schema::memory_status)]
    pub status: Option<String>,
    pub topic_key: Option<String>,
    pub confidence: Option<f64>,
    #[schema(schema_with = crate::schema::memory_visibility)]
    pub visibility: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryItemResponse {
    pub item: MemoryView,
}

page_response! { MemoryListResponse { items: MemoryView } }

#[derive(Debug, Serialize, ToSchema)]
pub struct MemorySearchResponse {
    pub items: Vec<MemoryHitView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStatsResponse {
    pub total: u64,
    pub active: u64,
    pub superseded: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub by_scope: BTreeMap<String, u64>,
    pub schema_version: i32,
}

page_query! { MemoryListQuery {
    organization_id,
    #[param(schema_with = crate::schema::memory_scope)]
    scope,
    project_id,
    kind,
    /// `true` to include archived memories.
    include_archived,
} limit "1-200, default 50." default 50 max 200 }

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct MemorySearchQuery {
    /// The words to look for (trimmed, not blank, at most 1000 bytes).
    #[param(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 1000,
        pattern = "\\S"
    )]
    pub query: Option<String>,
    pub organization_id: Option<String>,
    #[param(schema_with = crate::schema::memory_scope)]
    pub scope: Option<String>,
    pub project_id: Option<String>,
    pub kind: Option<String>,
    pub include_archived: Option<String>,
    /// 1-200, default 10.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Repeatable; every tag must match (case-insensitive).
    pub tag: Option<Vec<String>>,
}

/// A memory and the answer that shows it.
fn item(m: &Memory) -> MemoryItemResponse {
    MemoryItemResponse {
        item: MemoryView::from(m),
    }
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: MemoryInput,
) -> Result<MemoryItemResponse, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let m = upsert(state, &scope, &caller.user.id, input).await?;
    Ok(item(&m))
}

/// The memories a list, a search or the stats look at.
fn filter(scope: &Scope, user: &UserId, q: &MemoryListQuery) -> Result<MemoryFilter, DomainError> {
    let (o, _) = scope.resolve(q.organization_id.as_deref())?;
    let s = match q.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("all") => None,
        Some(s) => Some(
            MemoryScope::parse(s)
                .ok_or_else(|| DomainError::invalid("scope must be global, project or all"))?,
        ),
    };
    Ok(MemoryFilter {
        organization_id: o.id.clone(),
        user_id: user.clone(),
        scope: s,
        project_id: rules::trimmed(q.project_id.as_deref()).map(ProjectId),
        kind: rules::trimmed(q.kind.as_deref()).map(|k| mem::normalize_kind(Some(&k))),
        include_archived: q.include_archived.as_deref().map(str::trim) == Some("true"),
        active_only: false,
    })
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: MemoryListQuery,
) -> Result<MemoryListResponse, DomainError> {
    let page = q.page()?;
    let scope = Scope::of(state, caller).await?;
    let f = filter(&scope, &caller.user.id, &q)?;
    let result = state.store.memories(&f, &page).await?;
    Ok(page_views(&result, MemoryView::from).into())
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A search over the raw query string (`tag` may repeat).
pub async fn search(
    state: &AppState,
    caller: &Caller,
    raw: Option<&str>,
) -> Result<MemorySearchResponse, DomainError> {
    let pairs = query_pairs(raw);
    let query = rules::trimmed(first(&pairs, "query"))
        .ok_or_else(|| DomainError::invalid("query is required"))?;
    if query.len() > 1000 {
        return Err(DomainError::invalid("query is too long"));
    }
    let limit = page_req(first(&pairs, "limit"), None, 10, 200)?.limit;
    let wanted_tags: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "tag" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_lowercase())
        .collect();
    let scope = Scope::of(state, caller).await?;
    let owned = |key| first(&pairs, key).map(str::to_owned);
    let q = MemoryListQuery {
        organization_id: owned("organizationId"),
        scope: owned("scope"),
        project_id: owned("projectId"),
        kind: owned("kind"),
        include_archived: owned("includeArchived"),
        limit: None,
        cursor: None,
    };
    let mut f = filter(&scope, &caller.user.id, &q)?;
    f.active_only = true;
    let candidates = state
        .store
        .memory_candidates(&f, &query, (limit * 10).max(50))
        .await?;
    let candidates: Vec<(Memory, f64)> = candidates
        .into_iter()
        .filter(|(m, _)| {
            wanted_tags
                .iter()
                .all(|t| m.tags.iter().any(|mt| mt.to_lowercase() == *t))
        })
        .collect();
    let mut hits = mem::rank(candidates, &query, now());
    hits.truncate(limit);
    let ids: Vec<MemoryId> = hits.iter().map(|h| h.memory.id.clone()).collect();
    state.store.mark_memories_seen(&ids, now()).await?;
    Ok(MemorySearchResponse {
        items: hits
            .iter()
            .map(|h| MemoryHitView {
                memory: MemoryView::from(&h.memory),
                fts_rank: h.fts_rank,
                score: h.score,
                match_reasons: h.match_reasons.iter().map(|r| (*r).to_owned()).collect(),
            })
            .collect(),
    })
}

pub async fn stats(
    state: &AppState,
    caller: &Caller,
    q: MemoryListQuery,
) -> Result<MemoryStatsResponse, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let f = filter(&scope, &caller.user.id, &q)?;
    let mut out = MemoryStatsResponse {
        total: 0,
        active: 0,
        superseded: 0,
        by_kind: BTreeMap::new(),
        by_scope: BTreeMap::new(),
        schema_version: 1,
    };
    // Bounded walk: stats over at most 10,000 memories.
    let mut page = PageReq::first(200);
    for _ in 0..50 {
        let batch = state.store.memories(&f, &page).await?;
        for m in &batch.items {
            out.total += 1;
            if m.status == MemoryStatus::Active {
                out.active += 1;
            } else {
                out.superseded += 1;
            }
            *out.by_kind
                .entry(mem::normalize_kind(Some(&m.kind)))
                .or_default() += 1;
            *out.by_scope.entry(m.scope.to_string()).or_default() += 1;
        }
        match batch.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    Ok(out)
}

/// A memory the caller may see, or 404.
async fn visible_memory(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Memory, DomainError> {
    let scope = Scope::of(state, caller).await?;
    let found = state.store.memory(&MemoryId::from(id)).await?;
    access::visible_or_404(
        found,
        |m| visible(&scope, &caller.user.id, m),
        "Memory not found",
    )
}

/// Reads a memory and counts the use (`timesUsed`, `lastUsedAt`).
pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<MemoryItemResponse, DomainError> {
    let m = visible_memory(state, caller, id).await?;
    state.store.touch_memory(&m.id, now()).await?;
    let m = state
        .store
        .memory(&m.id)
        .await?
        .ok_or(DomainError::NotFound("Memory not found"))?;
    Ok(item(&m))
}

pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    p: MemoryPatch,
) -> Result<MemoryItemResponse, DomainError> {
    let mut m = visible_memory(state, caller, id).await?;
    if p.title.is_some() {
        m.title = rules::trimmed(p.title.as_deref())
            .map(|t| rules::bounded(t, MAX_NAME, "title"))
            .transpose()?;
    }
    if p.content.is_some() {
        m.content = content(p.content.as_deref())?;
    }
    if p.kind.is_some() {
        m.kind = mem::normalize_kind(p.kind.as_deref());
    }
    if let Some(t) = &p.tags {
        m.tags = tags(Some(t))?;
    }
    if let Some(a) = p.archived {
        m.archived = a;
    }
    if let Some(s) = p.status.as_deref() {
        m.status = MemoryStatus::parse(s.trim())
            .ok_or_else(|| DomainError::invalid("status must be active or superseded"))?;
    }
    if let Some(v) = p.visibility.as_deref() {
        match v.trim() {
            "private" | "shared" => m.visibility = visibility(Some(v), m.scope),
            _ => {
                return Err(DomainError::invalid("visibility must be private or shared"));
            }
        }
    }
    if let Some(c) = confidence(p.confidence)? {
        m.confidence = c;
    }
    m.topic_key = mem::topic_key(
        p.topic_key.as_deref(),
        &m.kind,
        m.title.as_deref(),
        &m.content,
        &m.tags,
    );
    m.fingerprint = mem::fingerprint(
        m.scope.as_str(),
        m.organization_id.as_str(),
        m.user_id.as_ref().map(|u| u.as_str()),
        m.project_id.as_ref().map(|p| p.as_str()),
        &m.kind,
        &m.topic_key,
    );
    m.updated_at = now();
    state.store.save_memory(&m).await?;
    Ok(item(&m))
}

pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<OkBody, DomainError> {
    let m = visible_memory(state, caller, id).await?;
    state.store.delete_memory(&m.id).await?;
    Ok(OkBody { ok: true })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryUpsertBody {
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub input: Option<MemoryInput>,
}

/// The runtime's upsert as `userId`, who must be a member of `organizationId` (the first system
/// accepted any organization).
pub async fn upsert_for(
    state: &AppState,
    body: MemoryUpsertBody,
) -> Result<MemoryItemResponse, DomainError> {
    let (Some(org), Some(user), Some(mut input)) = (
        rules::trimmed(body.organization_id.as_deref()),
        rules::trimmed(body.user_id.as_deref()),
        body.input,
    ) else {
        return Err(DomainError::invalid(
            "organizationId, userId, and input are required",
        ));
    };
    let user = state
        .store
        .user(&UserId::from(user))
        .await?
        .ok_or(DomainError::NotFound("Unable to upsert memory"))?;
    let scope = Scope::load(state, &user.id, None).await?;
    if scope.role(&OrgId::from(org.as_str())).is_none() {
        return Err(DomainError::NotFound("Unable to upsert memory"));
    }
    input.organization_id = Some(org);
    let m = upsert(state, &scope, &user.id, input).await?;
    Ok(item(&m))
}
