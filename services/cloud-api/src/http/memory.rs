//! Memories (the rules are in `app::memory`).

use crate::app::memory::{self, *};
use crate::views::*;

json_routes! { tag = "memory";
    create: post "/v1/memory" [body MemoryInput;]
        -> 201 MemoryItemResponse [400, 401, 404, 409] => memory::create;
    list: get "/v1/memory" [query MemoryListQuery;]
        -> 200 MemoryListResponse [400, 401, 404] => memory::list;
    // Read raw: `tag` may repeat, which the typed query reader refuses.
    search: get "/v1/memory/search" [raw_query MemorySearchQuery;]
        -> 200 MemorySearchResponse [400, 401, 404] => memory::search;
    stats: get "/v1/memory/stats" [query MemoryListQuery;]
        -> 200 MemoryStatsResponse [400, 401, 404] => memory::stats;
    /// Reads a memory and counts the use (`timesUsed`, `lastUsedAt`).
    get: get "/v1/memory/{id}" [path "id";] -> 200 MemoryItemResponse [401, 404] => memory::get;
    update: patch "/v1/memory/{id}" [path "id"; body MemoryPatch;]
        -> 200 MemoryItemResponse [400, 401, 404] => memory::update;
    delete: delete "/v1/memory/{id}" [path "id";] -> 200 OkBody [401, 404] => memory::delete;
}
