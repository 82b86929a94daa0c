//! OpenAPI schemas of request fields the derive cannot state: closed value sets and the common
//! name rule. The handlers keep their own checks (and error messages); these only state the same
//! rules in `/openapi.json`. Shared by `http` and `app` (whose request types are the bodies).

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use crate::domain::rules::MAX_NAME;
use crate::domain::{ConversationStatus, ProjectKind, Role, WorkspaceCapability};

/// A text that is trimmed and must not be blank, of at most `max` characters.
fn text(max: usize, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some("\\S"))
        .description(Some(description))
        .build()
}

/// A required name (`rules::required` with `MAX_NAME`): trimmed, not blank, at most 200 chars.
pub fn name() -> Object {
    text(
        MAX_NAME,
        "Trimmed; must not be blank; at most 200 characters.",
    )
}

/// A transcript message's role.
pub fn message_role() -> Object {
    text(64, "`user`, `assistant`, `tool`, … (trimmed, not blank).")
}

fn one_of(values: &[&str], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

/// A member's role (`PATCH /v1/organization/members/{userId}`).
pub fn member_role() -> Object {
    one_of(
        Role::TEXTS,
        "The new role; only owners grant or take `owner`.",
    )
}

/// The role an invite grants (never `owner`).
pub fn invite_role() -> Object {
    one_of(
        &["admin", "member", "billing_viewer"],
        "The role the invite grants (default `member`).",
    )
}

pub fn conversation_status() -> Object {
    one_of(ConversationStatus::TEXTS, "The conversation's status.")
}

pub fn project_kind() -> Object {
    one_of(
        ProjectKind::TEXTS,
        "`conversation_only` (default) or `repository`.",
    )
}

pub fn cloud_status() -> Object {
    one_of(
        &["connected", "connecting", "disconnected", "error"],
        "The desktop's view of the project's cloud link.",
    )
}

pub fn workspace_capability() -> Object {
    one_of(
        WorkspaceCapability::TEXTS,
        "`chat_only` or `full_tools` (file and shell tools); owners and admins only.",
    )
}

pub fn repository_auth() -> Object {
    one_of(&["none", "token"], "`none` (default) or `token`.")
}

pub fn memory_scope() -> Object {
    one_of(
        &["all", "global", "project"],
        "`all` (default), `global` or `project`.",
    )
}

/// The plans of the service (seeded by the initial migration; admins edit them, never add).
pub fn plan_id() -> Object {
    one_of(&["plus", "pro", "max"], "A subscription plan id.")
}

pub fn memory_status() -> Object {
    one_of(&["active", "superseded"], "`active` or `superseded`.")
}

pub fn memory_visibility() -> Object {
    one_of(
        &["private", "shared"],
        "`private` or `shared` (project memories are always shared).",
    )
}
