//! Projects of the caller's organizations (the rules are in `app::projects`).

use crate::app::projects::{self, *};
use crate::views::*;

json_routes! { tag = "projects";
    create: post "/v1/projects" [body CreateProjectBody;]
        -> 201 ProjectResponse [400, 401, 403, 404] => projects::create;
    list: get "/v1/projects" [query ProjectListQuery;]
        -> 200 ProjectListResponse [400, 401, 404] => projects::list;
    get: get "/v1/projects/{id}" [path "id";] -> 200 ProjectResponse [401, 404] => projects::get;
    update: patch "/v1/projects/{id}" [path "id"; body UpdateProjectBody;]
        -> 200 ProjectResponse [400, 401,
            403 = "A member (not owner or admin) changing `workspaceCapability`", 404]
        => projects::update;
    /// Deletes a project with its conversations. Its creator or an owner/admin of the organization.
    delete: delete "/v1/projects/{id}" [path "id";]
        -> 200 OkBody [401, 403, 404] => projects::delete;
}
