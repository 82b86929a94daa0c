//! Postgres store (the production contract). Runtime-checked queries only (`sqlx::query` +
//! row mapping), so building needs no database. Text sort keys use `COLLATE "C"` so the order
//! (and thus keyset pagination) is byte order, the same as the in-memory store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::*;
use crate::domain::*;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

// Row mapping ------------------------------------------------------------------------------------

const USER_COLS: &str = "id, email, display_name, is_admin, subscription_plan, password_hash, \
     email_verified_at, complimentary_plan_id, complimentary_granted_at, complimentary_expires_at, created_at";

fn user_row(r: &PgRow) -> Result<User, sqlx::Error> {
    let plan_id: Option<String> = r.try_get("complimentary_plan_id")?;
    let granted: Option<DateTime<Utc>> = r.try_get("complimentary_granted_at")?;
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
        created_at: r.try_get("created_at")?,
    })
}

const SESSION_COLS: &str = "id, family_id, user_id, client_id, scope, access_token_hash, \
     refresh_token_hash, active_organization_id, auth_time, expires_at, refresh_expires_at, \
     rotated_at, revoked_at, created_at";

fn session_row(r: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: SessionId(r.try_get("id")?),
        family_id: FamilyId(r.try_get("family_id")?),
        user_id: UserId(r.try_get("user_id")?),
        client_id: r.try_get("client_id")?,
        scope: r.try_get("scope")?,
        access_token_hash: r.try_get("access_token_hash")?,
        refresh_token_hash: r.try_get("refresh_token_hash")?,
        active_organization_id: r
            .try_get::<Option<String>, _>("active_organization_id")?
            .map(OrgId),
        auth_time: r.try_get("auth_time")?,
        expires_at: r.try_get("expires_at")?,
        refresh_expires_at: r.try_get("refresh_expires_at")?,
        rotated_at: r.try_get("rotated_at")?,
        revoked_at: r.try_get("revoked_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn plan_row(r: &PgRow) -> Result<Plan, sqlx::Error> {
    Ok(Plan {
        id: r.try_get("id")?,
        label: r.try_get("label")?,
        parallel_sessions_limit: i64::from(r.try_get::<i32, _>("parallel_sessions_limit")?),
        is_default: r.try_get("is_default")?,
        is_hidden: r.try_get("is_hidden")?,
    })
}

const ORG_COLS: &str = "o.id, o.slug, o.name, o.owner_user_id, o.is_personal, o.created_at";

fn org_row(r: &PgRow) -> Result<Organization, sqlx::Error> {
    Ok(Organization {
        id: OrgId(r.try_get("id")?),
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        owner_user_id: r.try_get::<Option<String>, _>("owner_user_id")?.map(UserId),
        is_personal: r.try_get("is_personal")?,
        created_at: r.try_get("created_at")?,
    })
}

fn role_of(s: &str) -> Result<Role, sqlx::Error> {
    Role::parse(s).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {s:?}").into()))
}

const INVITE_COLS: &str = "id, token_hash, organization_id, invited_email, role, inviter_user_id, \
     expires_at, accepted_at, revoked_at, created_at";

fn invite_row(r: &PgRow) -> Result<Invite, sqlx::Error> {
    Ok(Invite {
        id: InviteId(r.try_get("id")?),
        token_hash: r.try_get("token_hash")?,
        organization_id: OrgId(r.try_get("organization_id")?),
        invited_email: r.try_get("invited_email")?,
        role: role_of(r.try_get("role")?)?,
        inviter_user_id: r
            .try_get::<Option<String>, _>("inviter_user_id")?
            .map(UserId),
        expires_at: r.try_get("expires_at")?,
        accepted_at: r.try_get("accepted_at")?,
        revoked_at: r.try_get("revoked_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn instance_row(r: &PgRow) -> Result<Instance, sqlx::Error> {
    Ok(Instance {
        id: InstanceId(r.try_get("id")?),
        user_id: UserId(r.try_get("user_id")?),
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

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

const PROVIDER_COLS: &str = "id, organization_id, kind, label, base_url, credential_type, \
     models_json, default_model, supports_cloud_runtime, secret_ciphertext, secret_nonce, \
     secret_key_id, created_by, created_at, updated_at";

fn provider_row(r: &PgRow) -> Result<Provider, sqlx::Error> {
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

fn models_json(models: &[ProviderModel]) -> serde_json::Value {
    serde_json::Value::Array(
        models
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "label": m.label}))
            .collect(),
    )
}

const PROJECT_COLS: &str = "id, organization_id, created_by, name, repo_name, project_kind, \
     workspace_capability, repository_clone_url, repository_default_branch, repository_auth_mode, \
     repository_token_ciphertext, repository_token_nonce, repository_token_key_id, cloud_status, \
     created_at, updated_at";

fn project_row(r: &PgRow) -> Result<Project, sqlx::Error> {
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
        kind: r.try_get("project_kind")?,
        workspace_capability: r.try_get("workspace_capability")?,
        repository,
        cloud_status: r.try_get("cloud_status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const CONVERSATION_COLS: &str = "id, organization_id, project_id, created_by, title, status, \
     model_provider, model_id, created_at, updated_at";

fn conversation_row(r: &PgRow) -> Result<Conversation, sqlx::Error> {
    Ok(Conversation {
        id: ConversationId(r.try_get("id")?),
        organization_id: OrgId(r.try_get("organization_id")?),
        project_id: ProjectId(r.try_get("project_id")?),
        created_by: r.try_get::<Option<String>, _>("created_by")?.map(UserId),
        title: r.try_get("title")?,
        status: r.try_get("status")?,
        model_provider: r.try_get("model_provider")?,
        model_id: r.try_get("model_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const MEMORY_COLS: &str = "id, organization_id, user_id, project_id, scope, kind, title, content, \
     tags_json, topic_key, confidence, schema_version, reinforced_at, last_used_at, times_used, \
     source_conversation_id, origin_type, status, visibility, fingerprint, archived, source, \
     created_by, created_at, updated_at";

fn memory_row(r: &PgRow) -> Result<Memory, sqlx::Error> {
    let tags: serde_json::Value = r.try_get("tags_json")?;
    Ok(Memory {
        id: MemoryId(r.try_get("id")?),
        organization_id: OrgId(r.try_get("organization_id")?),
        user_id: r.try_get::<Option<String>, _>("user_id")?.map(UserId),
        project_id: r.try_get::<Option<String>, _>("project_id")?.map(ProjectId),
        scope: r.try_get("scope")?,
        kind: r.try_get("kind")?,
        title: r.try_get("title")?,
        content: r.try_get("content")?,
        tags: tags
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        topic_key: r.try_get("topic_key")?,
        confidence: r.try_get("confidence")?,
        schema_version: r.try_get("schema_version")?,
        reinforced_at: r.try_get("reinforced_at")?,
        last_used_at: r.try_get("last_used_at")?,
        times_used: r.try_get("times_used")?,
        source_conversation_id: r
            .try_get::<Option<String>, _>("source_conversation_id")?
            .map(ConversationId),
        origin_type: r.try_get("origin_type")?,
        status: r.try_get("status")?,
        visibility: r.try_get("visibility")?,
        fingerprint: r.try_get("fingerprint")?,
        archived: r.try_get("archived")?,
        source: r.try_get("source")?,
        created_by: r.try_get::<Option<String>, _>("created_by")?.map(UserId),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn map_all<T>(
    rows: Vec<PgRow>,
    f: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(|r| f(r).map_err(StoreError::from))
        .collect()
}

fn limit_plus_one(page: &PageReq) -> i64 {
    i64::try_from(page.limit).unwrap_or(i64::MAX - 1) + 1
}

/// `(after_time, after_id)` for lists ordered by creation time.
fn time_after(page: &PageReq) -> (Option<DateTime<Utc>>, String) {
    match &page.after {
        Some(c) => (parse_time_key(&c.key), c.id.clone()),
        None => (None, String::new()),
    }
}

fn text_after(page: &PageReq) -> (Option<String>, String) {
    match &page.after {
        Some(c) => (Some(c.key.clone()), c.id.clone()),
        None => (None, String::new()),
    }
}

fn org_strings(orgs: &[OrgId]) -> Vec<String> {
    orgs.iter().map(|o| o.0.clone()).collect()
}

/// The memory visibility rule as SQL; binds $1 org, $2 user, $3 scope, $4 project filter,
/// $5 kind, $6 include archived, $7 active only.
const MEMORY_WHERE: &str = "organization_id = $1 \
    AND ( ($3 IN ('global','all') AND scope = 'global' AND user_id = $2) \
       OR ($3 IN ('project','all') AND scope = 'project' AND project_id IS NOT NULL \
           AND ($4::text IS NULL OR project_id = $4)) ) \
    AND ($5::text IS NULL OR kind = $5) \
    AND ($6 OR NOT archived) \
    AND (NOT $7 OR status = 'active')";

fn bind_memory_filter<'q>(
    q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    f: &'q MemoryFilter,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    q.bind(f.organization_id.as_str())
        .bind(f.user_id.as_str())
        .bind(f.scope.as_str())
        .bind(f.project_id.as_ref().map(|p| p.0.as_str()))
        .bind(f.kind.as_deref())
        .bind(f.include_archived)
        .bind(f.active_only)
}

mod conversations;
mod email_tokens;
mod instances;
mod invites;
mod memories;
mod organizations;
mod plans;
mod projects;
mod providers;
mod sessions;
mod users;

impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }
}

fn email_token_table(kind: EmailTokenKind) -> &'static str {
    match kind {
        EmailTokenKind::Verification => "cloud_email_verification_tokens",
        EmailTokenKind::PasswordReset => "cloud_password_reset_tokens",
    }
}

async fn insert_session<'e, E: sqlx::PgExecutor<'e>>(ex: E, s: &Session) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO cloud_sessions ({SESSION_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
    ))
    .bind(s.id.as_str())
    .bind(s.family_id.as_str())
    .bind(s.user_id.as_str())
    .bind(&s.client_id)
    .bind(&s.scope)
    .bind(&s.access_token_hash)
    .bind(&s.refresh_token_hash)
    .bind(s.active_organization_id.as_ref().map(|o| o.0.as_str()))
    .bind(s.auth_time)
    .bind(s.expires_at)
    .bind(s.refresh_expires_at)
    .bind(s.rotated_at)
    .bind(s.revoked_at)
    .bind(s.created_at)
    .execute(ex)
    .await?;
    Ok(())
}

async fn insert_org(
    tx: &mut Transaction<'static, Postgres>,
    org: &Organization,
    owner: &UserId,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO cloud_organizations (id, owner_user_id, slug, name, is_personal, created_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$6)",
    )
    .bind(org.id.as_str())
    .bind(org.owner_user_id.as_ref().map(|u| u.0.as_str()))
    .bind(&org.slug)
    .bind(&org.name)
    .bind(org.is_personal)
    .bind(org.created_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO cloud_organization_memberships (organization_id, user_id, role, created_at, updated_at) \
         VALUES ($1,$2,'owner',$3,$3)",
    )
    .bind(org.id.as_str())
    .bind(owner.as_str())
    .bind(org.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_project_tx(
    tx: &mut Transaction<'static, Postgres>,
    p: &Project,
) -> StoreResult<()> {
    let repo = p.repository.as_ref();
    let token = repo.and_then(|r| r.token.as_ref());
    sqlx::query(&format!(
        "INSERT INTO cloud_projects ({PROJECT_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
    ))
    .bind(p.id.as_str())
    .bind(p.organization_id.as_str())
    .bind(p.created_by.as_ref().map(|u| u.0.as_str()))
    .bind(&p.name)
    .bind(&p.repo_name)
    .bind(&p.kind)
    .bind(&p.workspace_capability)
    .bind(repo.map(|r| r.clone_url.clone()))
    .bind(repo.and_then(|r| r.default_branch.clone()))
    .bind(repo.map(|r| r.auth_mode.clone()))
    .bind(token.map(|s| s.ciphertext.clone()))
    .bind(token.map(|s| s.nonce.clone()))
    .bind(token.map(|s| s.key_id.clone()))
    .bind(&p.cloud_status)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
