//! Organizations, members and invites. Owners and admins manage; only owners touch owners (the
//! rules are in `app::organizations`).

use super::extract::ListQuery;
use crate::app::organizations::{self, *};
use crate::app::providers::OrgListQuery;
use crate::views::*;

json_routes! { tag = "organizations";
    list: get "/v1/organizations" [query ListQuery;]
        -> 200 OrganizationListResponse [400, 401] => organizations::list;
    create: post "/v1/organizations" [body CreateOrganizationBody;]
        -> 201 OrganizationResponse [400, 401, 409] => organizations::create;
    /// Renames an organization (owner/admin). A `plan` field is refused with 403: the first system
    /// let any member change their own paid plan here.
    update: patch "/v1/organization" [body UpdateOrganizationBody;]
        -> 200 OrganizationResponse [400, 401, 403, 404, 409] => organizations::update;
    set_active: post "/v1/organization/active" [body ActiveOrganizationBody;]
        -> 200 ActiveOrganizationResponse [400, 401, 404] => organizations::set_active;
    members: get "/v1/organization/members" [query OrgListQuery;]
        -> 200 MemberListResponse [400, 401, 404] => organizations::members;
    /// Changes a member's role. Owners/admins may; only owners grant or take `owner`; the last
    /// owner cannot be demoted.
    update_member: patch "/v1/organization/members/{userId}" [path "userId"; body UpdateMemberBody;]
        -> 200 MemberResponse [400, 401, 403, 404, 409 = "It would leave the organization without an owner"]
        => organizations::update_member;
    /// Removes a member (owner/admin), or leaves (anyone, for themselves). Owners are removed only by
    /// owners, and never the last one.
    remove_member: delete "/v1/organization/members/{userId}" [path "userId"; query OrgQuery;]
        -> 200 OkBody [401, 403, 404, 409 = "It would leave the organization without an owner"]
        => organizations::remove_member;
    create_invite: post "/v1/organization/invites" [body CreateInviteBody;]
        -> 201 InviteCreatedResponse [400, 401, 403, 404,
            429 = "Too many invites this hour (per account or organization); see `Retry-After`"]
        => organizations::create_invite;
    invites: get "/v1/organization/invites" [query OrgListQuery;]
        -> 200 InviteListResponse [400, 401, 403, 404] => organizations::invites;
    revoke_invite: delete "/v1/organization/invites/{inviteId}" [path "inviteId"; query OrgQuery;]
        -> 200 OkBody [401, 403, 404] => organizations::revoke_invite;
    /// Accepts an invite addressed to the caller's email: membership with the invited role, and the
    /// organization becomes active.
    accept_invite: post "/v1/organization/invites/accept" [body AcceptInviteBody;]
        -> 200 AcceptInviteResponse [400, 401] => organizations::accept_invite;
}
