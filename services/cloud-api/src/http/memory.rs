//! Memories (the rules are in `app::memory`).

use axum::Json;
use axum::extract::{RawQuery, State};
use cloud_common::ApiError;

use super::extract::Caller;
use crate::AppState;
use crate::app::memory::{self, *};
use crate::views::*;

json_routes! { tag = "memory";
    create: post "/v1/memory" [body MemoryInput;]
        -> 201 MemoryItemResponse [400, 401, 404, 409] => memory::create;
    list: get "/v1/memory" [query MemoryListQuery;]
        -> 200 MemoryListResponse [400, 401, 404] => memory::list;
    stats: get "/v1/memory/stats" [query MemoryListQuery;]
        -> 200 MemoryStatsResponse [400, 401, 404] => memory::stats;
    /// Reads a memory and counts the use (`timesUsed`, `lastUsedAt`).
    get: get "/v1/memory/{id}" [path "id";] -> 200 MemoryItemResponse [401, 404] => memory::get;
    update: patch "/v1/memory/{id}" [path "id"; body MemoryPatch;]
        -> 200 MemoryItemResponse [400, 401, 404] => memory::update;
    delete: delete "/v1/memory/{id}" [path "id";] -> 200 OkBody [401, 404] => memory::delete;
}

// The search reads its query raw because `tag` may repeat (see `app::memory::search`).
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
    memory::search(&state, &caller, raw.as_deref())
        .await
        .map(Json)
}
