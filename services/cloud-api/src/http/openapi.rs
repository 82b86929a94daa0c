//! `/openapi.json`, generated from the handlers' types. Internal endpoints are left out: they
//! are not part of the public API (and the ingress does not route them).
//!
//! Two modifiers finish the generated document: operation ids are made unique (`<tag>_<handler>`,
//! the handlers of different modules share names such as `create`), and responses that create
//! (or list) a resource get OpenAPI `links` to the operations that take its id, so a client (and
//! schemathesis' stateful phase) can follow them.

use axum::Json;
use serde_json::{Map, Value};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::*;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every operation of the document with its method.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (&String, &'static str, &mut Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("patch", item.patch.as_mut()),
            ("put", item.put.as_mut()),
            ("delete", item.delete.as_mut()),
        ]
        .into_iter()
        .filter_map(move |(m, op)| op.map(|op| (path, m, op)))
    })
}

struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (_, _, op) in operations(openapi) {
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .cloned()
                .unwrap_or_default();
            if let Some(id) = op.operation_id.as_mut()
                && !tag.is_empty()
            {
                *id = format!("{tag}_{id}");
            }
        }
    }
}

/// One link: from the `status` response of `method path` to operation `target`, with
/// `parameters` (`"path.id"` → runtime expression) and an optional request body whose fields
/// are runtime expressions.
struct LinkSpec {
    method: &'static str,
    path: &'static str,
    status: &'static str,
    name: &'static str,
    target: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    body: &'static [(&'static str, &'static str)],
}

const fn link(
    (method, path, status): (&'static str, &'static str, &'static str),
    name: &'static str,
    target: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    body: &'static [(&'static str, &'static str)],
) -> LinkSpec {
    LinkSpec {
        method,
        path,
        status,
        name,
        target,
        parameters,
        body,
    }
}

const PROJECT: (&str, &str, &str) = ("post", "/v1/projects", "201");
const PROJECT_ID: &[(&str, &str)] = &[("path.id", "$response.body#/project/id")];
const CONVERSATION: (&str, &str, &str) = ("post", "/v1/conversations", "201");
const CONVERSATION_ID: &[(&str, &str)] = &[("path.id", "$response.body#/conversation/id")];
const MEMORY: (&str, &str, &str) = ("post", "/v1/memory", "201");
const MEMORY_ID: &[(&str, &str)] = &[("path.id", "$response.body#/item/id")];
const PROVIDER: (&str, &str, &str) = ("post", "/v1/organization/providers", "201");
const PROVIDER_ID: &[(&str, &str)] = &[("path.id", "$response.body#/provider/id")];
const INVITE: (&str, &str, &str) = ("post", "/v1/organization/invites", "201");
const ORG: (&str, &str, &str) = ("post", "/v1/organizations", "201");
const ORG_ID: &[(&str, &str)] = &[("organizationId", "$response.body#/organization/id")];
const MEMBERS: (&str, &str, &str) = ("get", "/v1/organization/members", "200");
const ACCOUNT: (&str, &str, &str) = ("get", "/v1/account", "200");
const BOOTSTRAP: (&str, &str, &str) = ("get", "/v1/bootstrap", "200");
const NONE: &[(&str, &str)] = &[];
const ADMIN_USERS: (&str, &str, &str) = ("get", "/v1/admin/users", "200");
const FIRST_USER_ID: &[(&str, &str)] = &[("path.userId", "$response.body#/users/0/id")];

/// Created resources → the operations that use their ids.
const LINKS: &[LinkSpec] = &[
    link(PROJECT, "GetProject", "projects_get", PROJECT_ID, NONE),
    link(
        PROJECT,
        "UpdateProject",
        "projects_update",
        PROJECT_ID,
        NONE,
    ),
    link(
        PROJECT,
        "DeleteProject",
        "projects_delete",
        PROJECT_ID,
        NONE,
    ),
    link(
        PROJECT,
        "CreateConversation",
        "conversations_create",
        NONE,
        &[("projectId", "$response.body#/project/id")],
    ),
    link(
        PROJECT,
        "ListConversations",
        "conversations_list",
        &[("query.projectId", "$response.body#/project/id")],
        NONE,
    ),
    link(
        PROJECT,
        "CreateProjectMemory",
        "memory_create",
        NONE,
        &[
            ("scope", "project"),
            ("projectId", "$response.body#/project/id"),
            ("organizationId", "$response.body#/project/organizationId"),
        ],
    ),
    link(
        CONVERSATION,
        "GetConversation",
        "conversations_get",
        CONVERSATION_ID,
        NONE,
    ),
    link(
        CONVERSATION,
        "UpdateConversation",
        "conversations_update",
        CONVERSATION_ID,
        NONE,
    ),
    link(
        CONVERSATION,
        "DeleteConversation",
        "conversations_delete",
        CONVERSATION_ID,
        NONE,
    ),
    link(
        CONVERSATION,
        "GetMessages",
        "conversations_messages",
        CONVERSATION_ID,
        NONE,
    ),
    link(
        CONVERSATION,
        "AppendMessages",
        "conversations_append",
        CONVERSATION_ID,
        NONE,
    ),
    link(MEMORY, "GetMemory", "memory_get", MEMORY_ID, NONE),
    link(MEMORY, "UpdateMemory", "memory_update", MEMORY_ID, NONE),
    link(MEMORY, "DeleteMemory", "memory_delete", MEMORY_ID, NONE),
    link(
        PROVIDER,
        "UpdateProvider",
        "providers_update",
        PROVIDER_ID,
        NONE,
    ),
    link(
        PROVIDER,
        "DeleteProvider",
        "providers_delete",
        PROVIDER_ID,
        NONE,
    ),
    link(
        INVITE,
        "RevokeInvite",
        "organizations_revoke_invite",
        &[
            ("path.inviteId", "$response.body#/invite/id"),
            (
                "query.organizationId",
                "$response.body#/invite/organizationId",
            ),
        ],
        NONE,
    ),
    link(
        INVITE,
        "AcceptInvite",
        "organizations_accept_invite",
        NONE,
        &[("token", "$response.body#/token")],
    ),
    link(
        ORG,
        "SetActiveOrganization",
        "organizations_set_active",
        NONE,
        ORG_ID,
    ),
    link(
        ORG,
        "UpdateOrganization",
        "organizations_update",
        NONE,
        ORG_ID,
    ),
    link(
        ORG,
        "ListMembers",
        "organizations_members",
        &[("query.organizationId", "$response.body#/organization/id")],
        NONE,
    ),
    link(
        ORG,
        "CreateInvite",
        "organizations_create_invite",
        NONE,
        ORG_ID,
    ),
    link(
        MEMBERS,
        "UpdateFirstMember",
        "organizations_update_member",
        &[("path.userId", "$response.body#/members/0/userId")],
        NONE,
    ),
    link(
        ACCOUNT,
        "LeaveActiveOrganization",
        "organizations_remove_member",
        &[
            ("path.userId", "$response.body#/user/id"),
            (
                "query.organizationId",
                "$response.body#/activeOrganizationId",
            ),
        ],
        NONE,
    ),
    link(
        BOOTSTRAP,
        "CreateConversationInFirstProject",
        "conversations_create",
        NONE,
        &[("projectId", "$response.body#/projects/0/id")],
    ),
    // The account just created signs in.
    link(
        ("post", "/v1/web/signup", "201"),
        "LogIn",
        "accounts_login",
        NONE,
        &[
            ("email", "$request.body#/email"),
            ("password", "$request.body#/password"),
        ],
    ),
    // The admin's user list → the operations on one user (the first listed).
    link(
        ADMIN_USERS,
        "GetFirstUser",
        "admin_user",
        FIRST_USER_ID,
        NONE,
    ),
    link(
        ADMIN_USERS,
        "VerifyFirstUser",
        "admin_verify_email",
        FIRST_USER_ID,
        NONE,
    ),
    link(
        ADMIN_USERS,
        "DisableFirstUser",
        "admin_disable_user",
        FIRST_USER_ID,
        NONE,
    ),
    link(
        ADMIN_USERS,
        "EnableFirstUser",
        "admin_enable_user",
        FIRST_USER_ID,
        NONE,
    ),
    link(
        ADMIN_USERS,
        "UpdateFirstUser",
        "admin_update_user",
        FIRST_USER_ID,
        NONE,
    ),
    link(
        ADMIN_USERS,
        "GrantFirstUser",
        "admin_grant",
        FIRST_USER_ID,
        NONE,
    ),
    link(
        ADMIN_USERS,
        "RevokeFirstUserGrant",
        "admin_revoke_grant",
        FIRST_USER_ID,
        NONE,
    ),
    // An invite to oneself is accepted by oneself (the membership keeps the stronger role).
    link(
        ACCOUNT,
        "InviteSelf",
        "organizations_create_invite",
        NONE,
        &[("email", "$response.body#/user/email")],
    ),
];

/// Adds [`LINKS`] to the serialized document. (utoipa 5.5 serializes its `Link` type with
/// snake_case field names, `operation_id`, which no OpenAPI tool reads; so links are written
/// into the JSON here.)
fn add_links(doc: &mut Value) {
    for l in LINKS {
        let Some(response) = doc
            .pointer_mut(&format!(
                "/paths/{}/{}/responses/{}",
                l.path.replace('~', "~0").replace('/', "~1"),
                l.method,
                l.status
            ))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let mut link = Map::new();
        link.insert("operationId".into(), l.target.into());
        if !l.parameters.is_empty() {
            link.insert("parameters".into(), object(l.parameters));
        }
        if !l.body.is_empty() {
            link.insert("requestBody".into(), object(l.body));
        }
        if let Some(links) = response
            .entry("links")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            links.insert(l.name.to_owned(), link.into());
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Chatons Cloud API", description = "Control plane of Chatons Cloud."),
    modifiers(&BearerAuth, &UniqueOperationIds),
    paths(
        service::describe,
        accounts::signup, accounts::login, accounts::logout, accounts::account, accounts::bootstrap,
        email_links::forgot_password, email_links::reset_password, email_links::verify_email,
        self_service::change_password, self_service::change_email, self_service::sessions,
        self_service::revoke_session, self_service::revoke_other_sessions,
        self_service::delete_account, self_service::links::confirm_email_change,
        instances::register, instances::list, instances::delete,
        orgs::list, orgs::create, orgs::update, orgs::set_active, orgs::members, orgs::update_member,
        orgs::remove_member, orgs::create_invite, orgs::invites, orgs::revoke_invite,
        orgs::accept_invite,
        memory::list, memory::create, memory::search, memory::stats, memory::get, memory::update,
        memory::delete,
        admin::users, admin::update_plan, admin::update_user, admin::grant, admin::revoke_grant,
        admin::user, admin::verify_email, admin::disable_user, admin::enable_user,
        admin::organizations, admin::audit_log,
        providers::create, providers::list, providers::update, providers::delete,
        projects::create, projects::list, projects::get, projects::update, projects::delete,
        conversations::create, conversations::list, conversations::get, conversations::update,
        conversations::delete, conversations::messages, conversations::append,
    )
)]
pub struct ApiDoc;

fn object(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect::<Map<String, Value>>()
        .into()
}

/// The document as served: utoipa's, with the links added.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "The OpenAPI document does not serialize.");
        Value::Null
    });
    add_links(&mut doc);
    doc
}

pub async fn serve() -> Json<Value> {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}
