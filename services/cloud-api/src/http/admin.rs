//! Global administration: users, plans and complimentary grants (the rules are in
//! `app::admin`).

use super::extract::ListQuery;
use crate::app::admin::{self, *};

json_routes! { tag = "admin";
    users: get "/v1/admin/users" [query ListQuery;]
        -> 200 AdminUsersResponse [400, 401, 403] => admin::users;
    update_plan: patch "/v1/admin/plans/{planId}" [path "planId"; body PlanPatchBody;]
        -> 200 AdminPlansResponse [400, 401, 403, 404] => admin::update_plan;
    update_user: patch "/v1/admin/users/{userId}" [path "userId"; body UserPatchBody;]
        -> 200 AdminUserResponse [400, 401, 403, 404] => admin::update_user;
    grant: post "/v1/admin/users/{userId}/grant-subscription" [path "userId"; body GrantBody;]
        -> 200 AdminUserResponse [400, 401, 403, 404] => admin::grant;
    /// Revokes the complimentary grant (the first system had no way to).
    revoke_grant: delete "/v1/admin/users/{userId}/grant-subscription" [path "userId";]
        -> 200 AdminUserResponse [401, 403, 404] => admin::revoke_grant;
}
