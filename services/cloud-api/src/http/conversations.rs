//! Conversations and their transcripts (the rules are in `app::conversations`).

use crate::app::conversations::{self, *};
use crate::views::*;

json_routes! { tag = "conversations";
    create: post "/v1/conversations" [body CreateConversationBody;]
        -> 201 ConversationResponse [400, 401, 403, 404] => conversations::create;
    list: get "/v1/conversations" [query ConversationListQuery;]
        -> 200 ConversationListResponse [400, 401, 404] => conversations::list;
    get: get "/v1/conversations/{id}" [path "id";]
        -> 200 ConversationResponse [401, 404] => conversations::get;
    update: patch "/v1/conversations/{id}" [path "id"; body UpdateConversationBody;]
        -> 200 ConversationResponse [400, 401, 404] => conversations::update;
    delete: delete "/v1/conversations/{id}" [path "id";]
        -> 200 OkBody [401, 404] => conversations::delete;
    messages: get "/v1/conversations/{id}/messages" [path "id"; query MessageListQuery;]
        -> 200 MessagesResponse [400, 401, 403, 404] => conversations::messages;
    /// Appends messages (never replaces the transcript); a message id already present is skipped.
    append: post "/v1/conversations/{id}/messages" [path "id"; body AppendBody;]
        -> 200 AppendResponse [400, 401, 403, 404] => conversations::append;
}
