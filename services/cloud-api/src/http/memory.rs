//! Memories: per-user (global) and per-project notes the runtime agent reads and writes.
//!
//! Context organization = `organizationId` (query/body, must be one of the caller's) or the
//! active one. Visible: global memories the caller owns, and project memories of the
//! organization. A client-chosen id never overwrites someone else's row (the first system let
//! any user overwrite any memory by id).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use cloud_common::ApiError;
use cloud_common::extract::{ApiJson, ApiQuery};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Caller, next_cursor, page_req};
use crate::AppState;
use crate::app::access::Scope;
use crate::app::memory::*;
use crate::domain::memory as mem;
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::views::*;

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

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryListResponse {
    pub items: Vec<MemoryView>,
    pub next_cursor: Option<String>,
}

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

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct MemoryListQuery {
    pub organization_id: Option<String>,
    #[param(schema_with = crate::schema::memory_scope)]
    pub scope: Option<String>,
    pub project_id: Option<String>,
    pub kind: Option<String>,
    /// `true` to include archived memories.
    pub include_archived: Option<String>,
    /// 1-200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

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

#[utoipa::path(post, path = "/v1/memory", tag = "memory", security(("bearer" = [])),
    request_body = MemoryInput,
    responses((status = 201, body = MemoryItemResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<MemoryInput>,
) -> Result<(StatusCode, Json<MemoryItemResponse>), ApiError> {
    let scope = Scope::of(&state, &caller).await?;
    let m = upsert(&state, &scope, &caller.user.id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(MemoryItemResponse {
            item: MemoryView::from(&m),
        }),
    ))
}

fn filter(
    scope: &Scope,
    user: &UserId,
    org: Option<&str>,
    mem_scope: Option<&str>,
    project: Option<&str>,
    kind: Option<&str>,
    include_archived: Option<&str>,
) -> Result<MemoryFilter, ApiError> {
    let (o, _) = scope.resolve(org)?;
    let s = match mem_scope.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("all") => "all",
        Some("global") => "global",
        Some("project") => "project",
        Some(_) => {
            return Err(ApiError::bad_request(
                "scope must be global, project or all",
            ));
        }
    };
    Ok(MemoryFilter {
        organization_id: o.id.clone(),
        user_id: user.clone(),
        scope: s.into(),
        project_id: rules::trimmed(project).map(ProjectId),
        kind: rules::trimmed(kind).map(|k| mem::normalize_kind(Some(&k))),
        include_archived: include_archived.map(str::trim) == Some("true"),
        active_only: false,
    })
}

#[utoipa::path(get, path = "/v1/memory", tag = "memory", security(("bearer" = [])),
    params(MemoryListQuery),
    responses((status = 200, body = MemoryListResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MemoryListQuery>,
) -> Result<Json<MemoryListResponse>, ApiError> {
    let page = page_req(q.limit.as_deref(), q.cursor.as_deref(), 50, 200)?;
    let scope = Scope::of(&state, &caller).await?;
    let f = filter(
        &scope,
        &caller.user.id,
        q.organization_id.as_deref(),
        q.scope.as_deref(),
        q.project_id.as_deref(),
        q.kind.as_deref(),
        q.include_archived.as_deref(),
    )?;
    let result = state.store.memories(&f, &page).await?;
    Ok(Json(MemoryListResponse {
        items: result.items.iter().map(MemoryView::from).collect(),
        next_cursor: next_cursor(&result),
    }))
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

#[utoipa::path(get, path = "/v1/memory/search", tag = "memory", security(("bearer" = [])),
    params(MemorySearchQuery),
    responses((status = 200, body = MemorySearchResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<MemorySearchResponse>, ApiError> {
    let pairs = query_pairs(raw.as_deref());
    let query = rules::trimmed(first(&pairs, "query"))
        .ok_or_else(|| ApiError::bad_request("query is required"))?;
    if query.len() > 1000 {
        return Err(ApiError::bad_request("query is too long"));
    }
    let limit = page_req(first(&pairs, "limit"), None, 10, 200)?.limit;
    let wanted_tags: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "tag" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_lowercase())
        .collect();
    let scope = Scope::of(&state, &caller).await?;
    let mut f = filter(
        &scope,
        &caller.user.id,
        first(&pairs, "organizationId"),
        first(&pairs, "scope"),
        first(&pairs, "projectId"),
        first(&pairs, "kind"),
        first(&pairs, "includeArchived"),
    )?;
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
    Ok(Json(MemorySearchResponse {
        items: hits
            .iter()
            .map(|h| MemoryHitView {
                memory: MemoryView::from(&h.memory),
                fts_rank: h.fts_rank,
                score: h.score,
                match_reasons: h.match_reasons.iter().map(|r| (*r).to_owned()).collect(),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/memory/stats", tag = "memory", security(("bearer" = [])),
    params(MemoryListQuery),
    responses((status = 200, body = MemoryStatsResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MemoryListQuery>,
) -> Result<Json<MemoryStatsResponse>, ApiError> {
    let scope = Scope::of(&state, &caller).await?;
    let f = filter(
        &scope,
        &caller.user.id,
        q.organization_id.as_deref(),
        q.scope.as_deref(),
        q.project_id.as_deref(),
        q.kind.as_deref(),
        q.include_archived.as_deref(),
    )?;
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
            if m.status == "active" {
                out.active += 1;
            } else {
                out.superseded += 1;
            }
            *out.by_kind
                .entry(mem::normalize_kind(Some(&m.kind)))
                .or_default() += 1;
            *out.by_scope.entry(m.scope.clone()).or_default() += 1;
        }
        match batch.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    Ok(Json(out))
}

async fn visible_memory(
    state: &AppState,
    scope: &Scope,
    user: &UserId,
    id: &str,
) -> Result<Memory, ApiError> {
    match state.store.memory(&MemoryId::from(id)).await? {
        Some(m) if visible(scope, user, &m) => Ok(m),
        _ => Err(ApiError::not_found("Memory not found")),
    }
}

/// Reads a memory and counts the use (`timesUsed`, `lastUsedAt`).
#[utoipa::path(get, path = "/v1/memory/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = MemoryItemResponse), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MemoryItemResponse>, ApiError> {
    let scope = Scope::of(&state, &caller).await?;
    let m = visible_memory(&state, &scope, &caller.user.id, &id).await?;
    state.store.touch_memory(&m.id, now()).await?;
    let m = state
        .store
        .memory(&m.id)
        .await?
        .ok_or_else(|| ApiError::not_found("Memory not found"))?;
    Ok(Json(MemoryItemResponse {
        item: MemoryView::from(&m),
    }))
}

#[utoipa::path(patch, path = "/v1/memory/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = MemoryPatch,
    responses((status = 200, body = MemoryItemResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<MemoryPatch>,
) -> Result<Json<MemoryItemResponse>, ApiError> {
    let scope = Scope::of(&state, &caller).await?;
    let mut m = visible_memory(&state, &scope, &caller.user.id, &id).await?;
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
        match s.trim() {
            "active" | "superseded" => m.status = s.trim().into(),
            _ => return Err(ApiError::bad_request("status must be active or superseded")),
        }
    }
    if let Some(v) = p.visibility.as_deref() {
        match v.trim() {
            "private" | "shared" => m.visibility = visibility(Some(v), &m.scope),
            _ => {
                return Err(ApiError::bad_request(
                    "visibility must be private or shared",
                ));
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
        &m.scope,
        m.organization_id.as_str(),
        m.user_id.as_ref().map(|u| u.as_str()),
        m.project_id.as_ref().map(|p| p.as_str()),
        &m.kind,
        &m.topic_key,
    );
    m.updated_at = now();
    state.store.save_memory(&m).await?;
    Ok(Json(MemoryItemResponse {
        item: MemoryView::from(&m),
    }))
}

#[utoipa::path(delete, path = "/v1/memory/{id}", tag = "memory", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = OkBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OkBody>, ApiError> {
    let scope = Scope::of(&state, &caller).await?;
    let m = visible_memory(&state, &scope, &caller.user.id, &id).await?;
    state.store.delete_memory(&m.id).await?;
    Ok(Json(OkBody { ok: true }))
}
