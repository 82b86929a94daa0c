//! Global administration: users, plans, complimentary grants, organizations and the audit log
//! (the rules are in `app::admin` and `app::audit`).

use crate::app::admin::{self, *};
use crate::app::audit::{self, AuditLogQuery, AuditLogResponse};

json_routes! { tag = "admin";
    users: get "/v1/admin/users" [query AdminUsersQuery;]
        -> 200 AdminUsersResponse [400, 401, 403] => admin::users;
    update_plan: patch "/v1/admin/plans/{planId}" [path "planId"; body PlanPatchBody;]
        -> 200 AdminPlansResponse [400, 401, 403, 404] => admin::update_plan;
    /// A user as an admin sees them.
    user: get "/v1/admin/users/{userId}" [path "userId";]
        -> 200 AdminUserResponse [401, 403, 404] => admin::user;
    update_user: patch "/v1/admin/users/{userId}" [path "userId"; body UserPatchBody;]
        -> 200 AdminUserResponse [400, 401, 403, 404] => admin::update_user;
    grant: post "/v1/admin/users/{userId}/grant-subscription" [path "userId"; body GrantBody;]
        -> 200 AdminUserResponse [400, 401, 403, 404] => admin::grant;
    /// Revokes the complimentary grant (the first system had no way to).
    revoke_grant: delete "/v1/admin/users/{userId}/grant-subscription" [path "userId";]
        -> 200 AdminUserResponse [401, 403, 404] => admin::revoke_grant;
    /// Marks the user's address verified (as its mailed link would).
    verify_email: post "/v1/admin/users/{userId}/verify-email" [path "userId";]
        -> 200 AdminUserResponse [401, 403, 404] => admin::verify_email;
    /// Disables the user: their sessions are revoked, they can no longer sign in.
    disable_user: post "/v1/admin/users/{userId}/disable" [path "userId";]
        -> 200 AdminUserResponse [400 = "One's own account", 401, 403, 404] => admin::disable;
    /// Enables a disabled user again.
    enable_user: post "/v1/admin/users/{userId}/enable" [path "userId";]
        -> 200 AdminUserResponse [401, 403, 404] => admin::enable;
    organizations: get "/v1/admin/organizations" [query AdminOrganizationsQuery;]
        -> 200 AdminOrganizationsResponse [400, 401, 403] => admin::organizations;
    /// Every admin action, newest first: who did what to which record, and when.
    audit_log: get "/v1/admin/audit-log" [query AuditLogQuery;]
        -> 200 AuditLogResponse [400, 401, 403] => audit::log;
}
