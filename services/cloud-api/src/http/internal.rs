//! Internal endpoints for cloud-realtime and runtime-headless (service token, constant-time;
//! the grants are in `app::grants`).

use cloud_common::internal::*;

use crate::app::grants::{self, TranscriptBody};
use crate::app::memory::{self, MemoryItemResponse, MemoryUpsertBody};

json_routes! { internal;
    realtime_access: post "/v1/internal/realtime/access" [body RealtimeAccessRequest;]
        -> RealtimeAccess => grants::realtime_access;
    /// cloud-realtime re-checks each open socket with this (it holds no access token).
    realtime_audience: post "/v1/internal/realtime/audience" [body RealtimeAudienceRequest;]
        -> RealtimeAccess => grants::realtime_audience;
    runtime_access: post "/v1/internal/runtime/access" [body RuntimeAccessRequest;]
        -> RuntimeGrant => grants::runtime_access;
    /// runtime-headless asks this before it serves a snapshot without an access token.
    runtime_session_access: post "/v1/internal/runtime/session-access"
        [body RuntimeSessionAccessRequest;] -> RuntimeSessionAccess => grants::runtime_session_access;
    memory_upsert: post "/v1/internal/memory/upsert" [body MemoryUpsertBody;]
        -> MemoryItemResponse => memory::upsert_for;
    /// Appends to a transcript on behalf of `userId` (who must see the conversation).
    append_transcript: post "/v1/internal/conversations/{id}/messages" [path "id"; body TranscriptBody;]
        -> TranscriptAppendResponse => grants::append_transcript;
}
