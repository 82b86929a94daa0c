//! The tables (their columns, ids and list orders) and how rows read back: `FromRow` derived on
//! the flat records (in `domain`), written here for the three whose columns fold into nested
//! values (a complimentary grant, a sealed secret, a repository).

use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};

use super::{List, SortKey, Table};
use crate::domain::*;

pub(super) const USERS: Table = Table {
    from: "cloud_users",
    cols: "id, email, display_name, is_admin, subscription_plan, password_hash, email_verified_at, \
        complimentary_plan_id, complimentary_granted_at, complimentary_expires_at, disabled_at, \
        created_at",
    id: "id",
};

pub(super) const USER_LIST: List = List {
    table: &USERS,
    key: SortKey::Time("created_at"),
};

impl FromRow<'_, PgRow> for User {
    fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        let plan_id: Option<String> = r.try_get("complimentary_plan_id")?;
        let granted: Option<Timestamp> = r.try_get("complimentary_granted_at")?;
        Ok(User {
            id: UserId(r.try_get("id")?),
            email: r.try_get("email")?,
            display_name: r.try_get("display_name")?,
            is_admin: r.try_get("is_admin")?,
            subscription_plan: r.try_get("subscription_plan")?,
            password_hash: r.try_get("password_hash")?,
            email_verified_at: r.try_get("email_verified_at")?,
            complimentary: match (plan_id, granted) {
                (Some(plan_id), Some(granted_at)) => Some(ComplimentaryGrant {
                    plan_id,
                    granted_at,
                    expires_at: r.try_get("complimentary_expires_at")?,
                }),
                _ => None,
            },
            disabled_at: r.try_get("disabled_at")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

pub(super) const SESSIONS: Table = Table {
    from: "cloud_sessions",
    cols: "id, family_id, user_id, client_id, scope, access_token_hash, refresh_token_hash, \
        active_organization_id, auth_time, expires_at, refresh_expires_at, rotated_at, revoked_at, \
        created_at, amr",
    id: "id",
};

pub(super) const ORGANIZATIONS: Table = Table {
    from: "cloud_organizations o",
    cols: "o.id, o.slug, o.name, o.owner_user_id, o.is_personal, o.created_at",
    id: "o.id",
};

/// Members: the membership rows with their users' names.
pub(super) const MEMBERS: Table = Table {
    from: "cloud_organization_memberships m JOIN cloud_users u ON u.id = m.user_id",
    cols: "m.organization_id, m.user_id, m.role, m.created_at, u.email, u.display_name",
    id: "m.user_id",
};

pub(super) const MEMBER_LIST: List = List {
    table: &MEMBERS,
    key: SortKey::Time("m.created_at"),
};

pub(super) const INVITES: Table = Table {
    from: "cloud_organization_invites",
    cols: "id, token_hash, organization_id, invited_email, role, inviter_user_id, expires_at, \
        accepted_at, revoked_at, created_at",
    id: "id",
};

pub(super) const INVITE_LIST: List = List {
    table: &INVITES,
    key: SortKey::Time("created_at"),
};

pub(super) const INSTANCES: Table = Table {
    from: "cloud_instances",
    cols: "id, user_id, name, created_at",
    id: "id",
};

pub(super) const INSTANCE_LIST: List = List {
    table: &INSTANCES,
    key: SortKey::Time("created_at"),
};

pub(super) const CONVERSATIONS: Table = Table {
    from: "cloud_conversations",
    cols: "id, organization_id, project_id, created_by, title, status, model_provider, model_id, \
        created_at, updated_at",
    id: "id",
};

pub(super) const CONVERSATION_LIST: List = List {
    table: &CONVERSATIONS,
    key: SortKey::Text("title"),
};

/// Memories list newest first, with their own query (see `memories.rs`).
pub(super) const MEMORIES: Table = Table {
    from: "cloud_memories",
    cols: "id, organization_id, user_id, project_id, scope, kind, title, content, tags_json, \
        topic_key, confidence, schema_version, reinforced_at, last_used_at, times_used, \
        source_conversation_id, origin_type, status, visibility, fingerprint, archived, source, \
        created_by, created_at, updated_at",
    id: "id",
};

fn sealed(r: &PgRow, ct: &str, nonce: &str, key: &str) -> Result<Option<Sealed>, sqlx::Error> {
    let ciphertext: Option<Vec<u8>> = r.try_get(ct)?;
    let n: Option<Vec<u8>> = r.try_get(nonce)?;
    let k: Option<String> = r.try_get(key)?;
    Ok(match (ciphertext, n, k) {
        (Some(ciphertext), Some(nonce), Some(key_id)) => Some(Sealed {
            ciphertext,
            nonce,
            key_id,
        }),
        _ => None,
    })
}

pub(super) const PROVIDERS: Table = Table {
    from: "cloud_organization_providers",
    cols: "id, organization_id, kind, label, base_url, credential_type, models_json, default_model, \
        supports_cloud_runtime, secret_ciphertext, secret_nonce, secret_key_id, created_by, \
        created_at, updated_at",
    id: "id",
};

pub(super) const PROVIDER_LIST: List = List {
    table: &PROVIDERS,
    key: SortKey::Time("created_at"),
};

impl FromRow<'_, PgRow> for Provider {
    fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        let models: serde_json::Value = r.try_get("models_json")?;
        let models = models
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        let id = m.get("id")?.as_str()?.to_owned();
                        let label = m
                            .get("label")
                            .and_then(|l| l.as_str())
                            .unwrap_or(&id)
                            .to_owned();
                        Some(ProviderModel { id, label })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Provider {
            id: ProviderId(r.try_get("id")?),
            organization_id: OrgId(r.try_get("organization_id")?),
            kind: r.try_get("kind")?,
            label: r.try_get("label")?,
            base_url: r.try_get("base_url")?,
            credential_type: r.try_get("credential_type")?,
            models,
            default_model: r.try_get("default_model")?,
            supports_cloud_runtime: r.try_get("supports_cloud_runtime")?,
            secret: sealed(r, "secret_ciphertext", "secret_nonce", "secret_key_id")?,
            created_by: r.try_get::<Option<String>, _>("created_by")?.map(UserId),
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

pub(super) fn models_json(models: &[ProviderModel]) -> serde_json::Value {
    serde_json::Value::Array(
        models
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "label": m.label}))
            .collect(),
    )
}

pub(super) const PROJECTS: Table = Table {
    from: "cloud_projects",
    cols: "id, organization_id, created_by, name, repo_name, project_kind, workspace_capability, \
        repository_clone_url, repository_default_branch, repository_auth_mode, \
        repository_token_ciphertext, repository_token_nonce, repository_token_key_id, cloud_status, \
        created_at, updated_at",
    id: "id",
};

pub(super) const PROJECT_LIST: List = List {
    table: &PROJECTS,
    key: SortKey::Text("name"),
};

impl FromRow<'_, PgRow> for Project {
    fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        let clone_url: Option<String> = r.try_get("repository_clone_url")?;
        let repository = match clone_url {
            Some(clone_url) => Some(Repository {
                clone_url,
                default_branch: r.try_get("repository_default_branch")?,
                auth_mode: r
                    .try_get::<Option<String>, _>("repository_auth_mode")?
                    .unwrap_or_else(|| "none".into()),
                token: sealed(
                    r,
                    "repository_token_ciphertext",
                    "repository_token_nonce",
                    "repository_token_key_id",
                )?,
            }),
            None => None,
        };
        Ok(Project {
            id: ProjectId(r.try_get("id")?),
            organization_id: OrgId(r.try_get("organization_id")?),
            created_by: r.try_get::<Option<String>, _>("created_by")?.map(UserId),
            name: r.try_get("name")?,
            repo_name: r.try_get("repo_name")?,
            kind: state_of(r.try_get("project_kind")?)?,
            workspace_capability: state_of(r.try_get("workspace_capability")?)?,
            repository,
            cloud_status: r.try_get("cloud_status")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// A stored state (see `domain::states`); a value outside its set is a decode error.
pub(super) fn state_of<T: TryFrom<String, Error = String>>(s: String) -> Result<T, sqlx::Error> {
    T::try_from(s).map_err(|e| sqlx::Error::Decode(e.into()))
}

pub(super) fn role_of(s: &str) -> Result<Role, sqlx::Error> {
    state_of(s.to_owned())
}
