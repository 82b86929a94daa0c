//! LLM provider configurations of an organization (the rules are in `app::providers`). Secrets
//! are sealed with AES-256-GCM before they are stored and never answered.

use crate::app::providers::{self, *};
use crate::views::*;

json_routes! { tag = "providers";
    create: post "/v1/organization/providers" [body CreateProviderBody;]
        -> 201 ProviderCreatedResponse [400, 401, 403, 404] => providers::create;
    list: get "/v1/organization/providers" [query OrgListQuery;]
        -> 200 ProviderListResponse [400, 401, 404] => providers::list;
    update: patch "/v1/organization/providers/{id}" [path "id"; body UpdateProviderBody;]
        -> 200 ProviderResponse [400, 401, 403, 404] => providers::update;
    delete: delete "/v1/organization/providers/{id}" [path "id";]
        -> 200 OkBody [401, 403, 404] => providers::delete;
}
