//! Postgres store (the production contract). Runtime-checked queries only (`sqlx::query` +
//! row mapping), so building needs no database. Text sort keys use `COLLATE "C"` so the order
//! (and thus keyset pagination) is byte order, the same as the in-memory store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::{EmailTokenKind, NewAccount, PlanPatch, Store, StoreResult};
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

#[async_trait]
impl Store for PgStore {
    #[tracing::instrument(skip_all)]
    async fn create_account(&self, a: NewAccount) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        let u = &a.user;
        sqlx::query(
            "INSERT INTO cloud_users (id, email, display_name, is_admin, subscription_plan, \
             password_hash, email_verified_at, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8)",
        )
        .bind(u.id.as_str())
        .bind(&u.email)
        .bind(&u.display_name)
        .bind(u.is_admin)
        .bind(&u.subscription_plan)
        .bind(&u.password_hash)
        .bind(u.email_verified_at)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await?;
        insert_org(&mut tx, &a.organization, &u.id).await?;
        insert_project_tx(&mut tx, &a.default_project).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM cloud_users WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM cloud_users WHERE lower(email) = lower($1)"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_row).transpose()?)
    }

    async fn list_users(&self, page: &PageReq) -> StoreResult<Page<User>> {
        let (t, id) = time_after(page);
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM cloud_users \
             WHERE $1::timestamptz IS NULL OR (created_at, id COLLATE \"C\") > ($1, $2) \
             ORDER BY created_at, id COLLATE \"C\" LIMIT $3"
        ))
        .bind(t)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let users = map_all(rows, user_row)?;
        Ok(Page::from_fetched(users, page.limit, |u| Cursor {
            key: time_key(u.created_at),
            id: u.id.0.clone(),
        }))
    }

    async fn update_user_entitlements(&self, u: &User) -> StoreResult<()> {
        let (plan, granted, expires) = match &u.complimentary {
            Some(g) => (Some(g.plan_id.clone()), Some(g.granted_at), g.expires_at),
            None => (None, None, None),
        };
        let done = sqlx::query(
            "UPDATE cloud_users SET is_admin = $2, subscription_plan = $3, \
             complimentary_plan_id = $4, complimentary_granted_at = $5, \
             complimentary_expires_at = $6, updated_at = now() WHERE id = $1",
        )
        .bind(u.id.as_str())
        .bind(u.is_admin)
        .bind(&u.subscription_plan)
        .bind(plan)
        .bind(granted)
        .bind(expires)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn replace_password_hash(
        &self,
        user: &UserId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE cloud_users SET password_hash = $3, updated_at = now() \
             WHERE id = $1 AND password_hash = $2",
        )
        .bind(user.as_str())
        .bind(old)
        .bind(new)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        insert_session(&self.pool, s).await
    }

    async fn session_by_access_hash(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM cloud_sessions \
             WHERE access_token_hash = $1 AND revoked_at IS NULL AND expires_at > $2"
        ))
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_row).transpose()?)
    }

    async fn session_by_refresh_hash(&self, hash: &str) -> StoreResult<Option<Session>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM cloud_sessions WHERE refresh_token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_row).transpose()?)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh(
        &self,
        refresh_hash: &str,
        next: Session,
        now: DateTime<Utc>,
        grace: std::time::Duration,
    ) -> StoreResult<RotateOutcome> {
        // The usual case in one round trip: mark the presented session rotated (only if it is
        // live and not rotated yet; a concurrent rotation of the same token waits on the row
        // lock and then finds it rotated) and insert its successor from the same row.
        let rotated = sqlx::query(&format!(
            "WITH old AS ( \
               UPDATE cloud_sessions SET rotated_at = $1 \
                WHERE refresh_token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL \
                  AND refresh_expires_at > $1 \
               RETURNING family_id, user_id, client_id, scope, active_organization_id, auth_time) \
             INSERT INTO cloud_sessions ({SESSION_COLS}) \
             SELECT $3, family_id, user_id, client_id, scope, $4, $5, active_organization_id, \
                    auth_time, $6, $7, NULL::timestamptz, NULL::timestamptz, $8 FROM old \
             RETURNING {SESSION_COLS}"
        ))
        .bind(now)
        .bind(refresh_hash)
        .bind(next.id.as_str())
        .bind(&next.access_token_hash)
        .bind(&next.refresh_token_hash)
        .bind(next.expires_at)
        .bind(next.refresh_expires_at)
        .bind(next.created_at)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = rotated {
            return Ok(RotateOutcome::Rotated(Box::new(session_row(&row)?)));
        }
        // Nothing rotated: unknown, expired, or presented again after a rotation or revocation.
        let seen: Option<(String, Option<DateTime<Utc>>, bool)> = sqlx::query_as(
            "SELECT family_id, rotated_at, revoked_at IS NOT NULL \
               FROM cloud_sessions WHERE refresh_token_hash = $1",
        )
        .bind(refresh_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some((family, rotated_at, revoked)) = seen else {
            return Ok(RotateOutcome::Invalid);
        };
        if !revoked
            && rotated_at.is_some_and(|at| crate::domain::rules::within_grace(at, now, grace))
        {
            let successor = sqlx::query(&format!(
                "SELECT {SESSION_COLS} FROM cloud_sessions \
                 WHERE access_token_hash = $1 AND family_id = $2 AND revoked_at IS NULL"
            ))
            .bind(&next.access_token_hash)
            .bind(&family)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(match successor {
                Some(row) => RotateOutcome::Repeated(Box::new(session_row(&row)?)),
                // Not derived the same way (a key change between replicas): refuse, revoke nothing.
                None => RotateOutcome::Invalid,
            });
        }
        if rotated_at.is_some() || revoked {
            self.revoke_family(&FamilyId(family), now).await?;
            return Ok(RotateOutcome::Reused);
        }
        Ok(RotateOutcome::Invalid)
    }

    async fn revoke_session(&self, id: &SessionId, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn revoke_family(&self, family: &FamilyId, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE family_id = $1",
        )
        .bind(family.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_active_organization(&self, user: &UserId, org: &OrgId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_sessions SET active_organization_id = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_str())
        .bind(org.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn plans(&self) -> StoreResult<Vec<Plan>> {
        let rows = sqlx::query(
            "SELECT id, label, parallel_sessions_limit, is_default, is_hidden \
             FROM cloud_subscription_plans ORDER BY id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        map_all(rows, plan_row)
    }

    async fn update_plan(&self, id: &str, p: &PlanPatch) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        let exists = sqlx::query("SELECT 1 FROM cloud_subscription_plans WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        if p.is_default == Some(true) {
            sqlx::query(
                "UPDATE cloud_subscription_plans SET is_default = false, updated_at = now() \
                 WHERE is_default AND id <> $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let limit = p
            .parallel_sessions_limit
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        sqlx::query(
            "UPDATE cloud_subscription_plans SET label = COALESCE($2, label), \
             parallel_sessions_limit = COALESCE($3, parallel_sessions_limit), \
             is_default = COALESCE($4, is_default), is_hidden = COALESCE($5, is_hidden), \
             updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(&p.label)
        .bind(limit)
        .bind(p.is_default)
        .bind(p.is_hidden)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn active_runtime_sessions(&self, user: &UserId, now: DateTime<Utc>) -> StoreResult<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runtime_sessions WHERE user_id = $1 \
             AND status NOT IN ('stopped','error') AND lease_expires_at > $2",
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    async fn create_organization(&self, org: &Organization, owner: &UserId) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        insert_org(&mut tx, org, owner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLS} FROM cloud_organizations o WHERE o.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(org_row).transpose()?)
    }

    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(Organization, Role)>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLS}, m.role FROM cloud_organization_memberships m \
             JOIN cloud_organizations o ON o.id = m.organization_id \
             WHERE m.user_id = $1 \
             ORDER BY (o.is_personal AND o.owner_user_id = $1) DESC, m.created_at, o.id COLLATE \"C\""
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        map_all(rows, |r| Ok((org_row(r)?, role_of(r.try_get("role")?)?)))
    }

    async fn role_in(&self, org: &OrgId, user: &UserId) -> StoreResult<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM cloud_organization_memberships WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(role.as_deref().map(role_of).transpose()?)
    }

    async fn rename_organization(&self, org: &OrgId, name: &str, slug: &str) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_organizations SET name = $2, slug = $3, updated_at = now() WHERE id = $1",
        )
        .bind(org.as_str())
        .bind(name)
        .bind(slug)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn members(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Member>> {
        let (t, id) = time_after(page);
        let rows = sqlx::query(
            "SELECT m.organization_id, m.user_id, m.role, m.created_at, u.email, u.display_name \
             FROM cloud_organization_memberships m JOIN cloud_users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 \
               AND ($2::timestamptz IS NULL OR (m.created_at, m.user_id COLLATE \"C\") > ($2, $3)) \
             ORDER BY m.created_at, m.user_id COLLATE \"C\" LIMIT $4",
        )
        .bind(org.as_str())
        .bind(t)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, |r| {
            Ok(Member {
                membership: Membership {
                    organization_id: OrgId(r.try_get("organization_id")?),
                    user_id: UserId(r.try_get("user_id")?),
                    role: role_of(r.try_get("role")?)?,
                    created_at: r.try_get("created_at")?,
                },
                email: r.try_get("email")?,
                display_name: r.try_get("display_name")?,
            })
        })?;
        Ok(Page::from_fetched(items, page.limit, |m| Cursor {
            key: time_key(m.membership.created_at),
            id: m.membership.user_id.0.clone(),
        }))
    }

    async fn set_role(&self, org: &OrgId, user: &UserId, role: Role) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_organization_memberships SET role = $3, updated_at = now() \
             WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn remove_member(&self, org: &OrgId, user: &UserId) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        let done = sqlx::query(
            "DELETE FROM cloud_organization_memberships WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE cloud_sessions SET active_organization_id = NULL \
             WHERE user_id = $2 AND active_organization_id = $1",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn owner_count(&self, org: &OrgId) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM cloud_organization_memberships WHERE organization_id = $1 AND role = 'owner'",
        )
        .bind(org.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn insert_invite(&self, i: &Invite) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO cloud_organization_invites (id, token_hash, organization_id, invited_email, \
             role, inviter_user_id, expires_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(i.id.as_str())
        .bind(&i.token_hash)
        .bind(i.organization_id.as_str())
        .bind(&i.invited_email)
        .bind(i.role.as_str())
        .bind(i.inviter_user_id.as_ref().map(|u| u.0.as_str()))
        .bind(i.expires_at)
        .bind(i.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn invite_by_token_hash(&self, hash: &str) -> StoreResult<Option<Invite>> {
        let row = sqlx::query(&format!(
            "SELECT {INVITE_COLS} FROM cloud_organization_invites WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(invite_row).transpose()?)
    }

    async fn invites(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Invite>> {
        let (t, id) = time_after(page);
        let rows = sqlx::query(&format!(
            "SELECT {INVITE_COLS} FROM cloud_organization_invites \
             WHERE organization_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL \
               AND ($2::timestamptz IS NULL OR (created_at, id COLLATE \"C\") > ($2, $3)) \
             ORDER BY created_at, id COLLATE \"C\" LIMIT $4"
        ))
        .bind(org.as_str())
        .bind(t)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, invite_row)?;
        Ok(Page::from_fetched(items, page.limit, |i| Cursor {
            key: time_key(i.created_at),
            id: i.id.0.clone(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn accept_invite(
        &self,
        invite: &InviteId,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        let row = sqlx::query(
            "UPDATE cloud_organization_invites SET accepted_at = $2 \
             WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING organization_id, role",
        )
        .bind(invite.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let org: String = row.try_get("organization_id")?;
        let role: String = row.try_get("role")?;
        // Keep the stronger of an existing role and the invited one.
        sqlx::query(
            "INSERT INTO cloud_organization_memberships (organization_id, user_id, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (organization_id, user_id) DO UPDATE SET role = CASE \
               WHEN array_position(ARRAY['owner','admin','member','billing_viewer'], cloud_organization_memberships.role) \
                  <= array_position(ARRAY['owner','admin','member','billing_viewer'], EXCLUDED.role) \
               THEN cloud_organization_memberships.role ELSE EXCLUDED.role END, updated_at = $4",
        )
        .bind(&org)
        .bind(user.as_str())
        .bind(&role)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_invite(
        &self,
        org: &OrgId,
        invite: &InviteId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_organization_invites SET revoked_at = $3 \
             WHERE id = $1 AND organization_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(invite.as_str())
        .bind(org.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn register_instance(&self, i: &Instance, max: usize) -> StoreResult<RegisterOutcome> {
        let mut tx = self.tx().await?;
        // The user row lock serialises this user's registrations, so the count below holds.
        sqlx::query("SELECT 1 FROM cloud_users WHERE id = $1 FOR UPDATE")
            .bind(i.user_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let existing = |row: Option<PgRow>| -> StoreResult<Option<RegisterOutcome>> {
            Ok(match row.as_ref().map(instance_row).transpose()? {
                Some(found) if found.user_id == i.user_id => Some(RegisterOutcome::Existing(found)),
                Some(_) => Some(RegisterOutcome::Taken),
                None => None,
            })
        };
        let select = "SELECT id, user_id, name, created_at FROM cloud_instances WHERE id = $1";
        let row = sqlx::query(select)
            .bind(i.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(outcome) = existing(row)? {
            return Ok(outcome);
        }
        let (held,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM cloud_instances WHERE user_id = $1")
                .bind(i.user_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if held >= max as i64 {
            return Ok(RegisterOutcome::LimitReached);
        }
        let inserted = sqlx::query(
            "INSERT INTO cloud_instances (id, user_id, name, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$4) ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .bind(i.id.as_str())
        .bind(i.user_id.as_str())
        .bind(&i.name)
        .bind(i.created_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // Another user claimed it meanwhile.
            let row = sqlx::query(select)
                .bind(i.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            return existing(row)?.ok_or_else(|| StoreError::Conflict("instance".into()));
        }
        tx.commit().await?;
        Ok(RegisterOutcome::Created(i.clone()))
    }

    async fn delete_instance(&self, user: &UserId, id: &InstanceId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM cloud_instances WHERE id = $1 AND user_id = $2")
            .bind(id.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn instance(&self, id: &InstanceId) -> StoreResult<Option<Instance>> {
        let row =
            sqlx::query("SELECT id, user_id, name, created_at FROM cloud_instances WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(instance_row).transpose()?)
    }

    async fn instances_of(&self, user: &UserId, page: &PageReq) -> StoreResult<Page<Instance>> {
        let (t, id) = time_after(page);
        let rows = sqlx::query(
            "SELECT id, user_id, name, created_at FROM cloud_instances WHERE user_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id COLLATE \"C\") > ($2, $3)) \
             ORDER BY created_at, id COLLATE \"C\" LIMIT $4",
        )
        .bind(user.as_str())
        .bind(t)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, instance_row)?;
        Ok(Page::from_fetched(items, page.limit, |i| Cursor {
            key: time_key(i.created_at),
            id: i.id.0.clone(),
        }))
    }

    async fn insert_provider(&self, p: &Provider) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO cloud_organization_providers ({PROVIDER_COLS}) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
        ))
        .bind(p.id.as_str())
        .bind(p.organization_id.as_str())
        .bind(&p.kind)
        .bind(&p.label)
        .bind(&p.base_url)
        .bind(&p.credential_type)
        .bind(models_json(&p.models))
        .bind(&p.default_model)
        .bind(p.supports_cloud_runtime)
        .bind(p.secret.as_ref().map(|s| s.ciphertext.clone()))
        .bind(p.secret.as_ref().map(|s| s.nonce.clone()))
        .bind(p.secret.as_ref().map(|s| s.key_id.clone()))
        .bind(p.created_by.as_ref().map(|u| u.0.as_str()))
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn provider(&self, id: &ProviderId) -> StoreResult<Option<Provider>> {
        let row = sqlx::query(&format!(
            "SELECT {PROVIDER_COLS} FROM cloud_organization_providers WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(provider_row).transpose()?)
    }

    async fn providers(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Provider>> {
        let (t, id) = time_after(page);
        let rows = sqlx::query(&format!(
            "SELECT {PROVIDER_COLS} FROM cloud_organization_providers WHERE organization_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id COLLATE \"C\") > ($2, $3)) \
             ORDER BY created_at, id COLLATE \"C\" LIMIT $4"
        ))
        .bind(org.as_str())
        .bind(t)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, provider_row)?;
        Ok(Page::from_fetched(items, page.limit, |p| Cursor {
            key: time_key(p.created_at),
            id: p.id.0.clone(),
        }))
    }

    async fn update_provider(&self, p: &Provider) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_organization_providers SET kind = $2, label = $3, base_url = $4, \
             credential_type = $5, models_json = $6, default_model = $7, supports_cloud_runtime = $8, \
             secret_ciphertext = $9, secret_nonce = $10, secret_key_id = $11, updated_at = $12 \
             WHERE id = $1",
        )
        .bind(p.id.as_str())
        .bind(&p.kind)
        .bind(&p.label)
        .bind(&p.base_url)
        .bind(&p.credential_type)
        .bind(models_json(&p.models))
        .bind(&p.default_model)
        .bind(p.supports_cloud_runtime)
        .bind(p.secret.as_ref().map(|s| s.ciphertext.clone()))
        .bind(p.secret.as_ref().map(|s| s.nonce.clone()))
        .bind(p.secret.as_ref().map(|s| s.key_id.clone()))
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn providers_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&ProviderId>,
        limit: usize,
    ) -> StoreResult<Vec<Provider>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROVIDER_COLS} FROM cloud_organization_providers \
             WHERE secret_key_id IS NOT NULL AND secret_key_id <> $1 \
               AND ($2::text IS NULL OR id COLLATE \"C\" > $2) \
             ORDER BY id COLLATE \"C\" LIMIT $3"
        ))
        .bind(key_id)
        .bind(after.map(|a| a.as_str()))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(map_all(rows, provider_row)?)
    }

    async fn reseal_provider_secret(
        &self,
        id: &ProviderId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE cloud_organization_providers \
                SET secret_ciphertext = $3, secret_nonce = $4, secret_key_id = $5 \
              WHERE id = $1 AND secret_nonce = $2",
        )
        .bind(id.as_str())
        .bind(old_nonce)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_provider(&self, id: &ProviderId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM cloud_organization_providers WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn insert_project(&self, p: &Project) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        insert_project_tx(&mut tx, p).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLS} FROM cloud_projects WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(project_row).transpose()?)
    }

    async fn projects(&self, orgs: &[OrgId], page: &PageReq) -> StoreResult<Page<Project>> {
        let (k, id) = text_after(page);
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLS} FROM cloud_projects WHERE organization_id = ANY($1) \
             AND ($2::text IS NULL OR (name COLLATE \"C\", id COLLATE \"C\") > ($2, $3)) \
             ORDER BY name COLLATE \"C\", id COLLATE \"C\" LIMIT $4"
        ))
        .bind(org_strings(orgs))
        .bind(k)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, project_row)?;
        Ok(Page::from_fetched(items, page.limit, |p| Cursor {
            key: p.name.clone(),
            id: p.id.0.clone(),
        }))
    }

    async fn update_project(&self, p: &Project) -> StoreResult<()> {
        let repo = p.repository.as_ref();
        let token = repo.and_then(|r| r.token.as_ref());
        let done = sqlx::query(
            "UPDATE cloud_projects SET name = $2, repo_name = $3, project_kind = $4, \
             workspace_capability = $5, repository_clone_url = $6, repository_default_branch = $7, \
             repository_auth_mode = $8, repository_token_ciphertext = $9, repository_token_nonce = $10, \
             repository_token_key_id = $11, cloud_status = $12, updated_at = $13 WHERE id = $1",
        )
        .bind(p.id.as_str())
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
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM cloud_projects WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn insert_conversation(&self, c: &Conversation) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO cloud_conversations ({CONVERSATION_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
        ))
        .bind(c.id.as_str())
        .bind(c.organization_id.as_str())
        .bind(c.project_id.as_str())
        .bind(c.created_by.as_ref().map(|u| u.0.as_str()))
        .bind(&c.title)
        .bind(&c.status)
        .bind(&c.model_provider)
        .bind(&c.model_id)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>> {
        let row = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM cloud_conversations WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(conversation_row).transpose()?)
    }

    async fn conversations(
        &self,
        orgs: &[OrgId],
        project: Option<&ProjectId>,
        page: &PageReq,
    ) -> StoreResult<Page<Conversation>> {
        let (k, id) = text_after(page);
        let rows = sqlx::query(&format!(
            "SELECT {CONVERSATION_COLS} FROM cloud_conversations WHERE organization_id = ANY($1) \
             AND ($2::text IS NULL OR project_id = $2) \
             AND ($3::text IS NULL OR (title COLLATE \"C\", id COLLATE \"C\") > ($3, $4)) \
             ORDER BY title COLLATE \"C\", id COLLATE \"C\" LIMIT $5"
        ))
        .bind(org_strings(orgs))
        .bind(project.map(|p| p.0.as_str()))
        .bind(k)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, conversation_row)?;
        Ok(Page::from_fetched(items, page.limit, |c| Cursor {
            key: c.title.clone(),
            id: c.id.0.clone(),
        }))
    }

    async fn update_conversation(&self, c: &Conversation) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_conversations SET title = $2, status = $3, model_provider = $4, \
             model_id = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(&c.title)
        .bind(&c.status)
        .bind(&c.model_provider)
        .bind(&c.model_id)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM cloud_conversations WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn append_messages(
        &self,
        conversation: &ConversationId,
        messages: &[Message],
    ) -> StoreResult<(u64, u64)> {
        let mut tx = self.tx().await?;
        // Locking the conversation row serialises appends, so positions never collide.
        let exists = sqlx::query("SELECT 1 FROM cloud_conversations WHERE id = $1 FOR UPDATE")
            .bind(conversation.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let mut next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(max(position), 0) FROM cloud_conversation_messages WHERE conversation_id = $1",
        )
        .bind(conversation.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let mut appended = 0u64;
        for m in messages {
            let done = sqlx::query(
                "INSERT INTO cloud_conversation_messages (conversation_id, position, id, role, timestamp_ms, content) \
                 VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (conversation_id, id) DO NOTHING",
            )
            .bind(conversation.as_str())
            .bind(next + 1)
            .bind(&m.id)
            .bind(&m.role)
            .bind(m.timestamp)
            .bind(&m.content)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                next += 1;
                appended += 1;
            }
        }
        if appended > 0 {
            sqlx::query("UPDATE cloud_conversations SET updated_at = now() WHERE id = $1")
                .bind(conversation.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((appended, u64::try_from(next).unwrap_or(0)))
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageReq,
    ) -> StoreResult<Page<Message>> {
        let after: i64 = page
            .after
            .as_ref()
            .and_then(|c| c.key.parse().ok())
            .unwrap_or(0);
        let rows = sqlx::query(
            "SELECT position, id, role, timestamp_ms, content FROM cloud_conversation_messages \
             WHERE conversation_id = $1 AND position > $2 ORDER BY position LIMIT $3",
        )
        .bind(conversation.as_str())
        .bind(after)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, |r| {
            Ok((
                r.try_get::<i64, _>("position")?,
                Message {
                    id: r.try_get("id")?,
                    role: r.try_get("role")?,
                    timestamp: r.try_get("timestamp_ms")?,
                    content: r.try_get("content")?,
                },
            ))
        })?;
        let p = Page::from_fetched(items, page.limit, |(pos, _)| Cursor {
            key: pos.to_string(),
            id: String::new(),
        });
        Ok(Page {
            items: p.items.into_iter().map(|(_, m)| m).collect(),
            next: p.next,
        })
    }

    async fn memory(&self, id: &MemoryId) -> StoreResult<Option<Memory>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMORY_COLS} FROM cloud_memories WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(memory_row).transpose()?)
    }

    async fn save_memory(&self, m: &Memory) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO cloud_memories ({MEMORY_COLS}, search_document) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25, \
              to_tsvector('simple', coalesce($7,'') || ' ' || $8 || ' ' || $10 || ' ' || \
                 coalesce((SELECT string_agg(x, ' ') FROM jsonb_array_elements_text($9) x), '') || ' ' || $6)) \
             ON CONFLICT (id) DO UPDATE SET organization_id = EXCLUDED.organization_id, \
               user_id = EXCLUDED.user_id, project_id = EXCLUDED.project_id, scope = EXCLUDED.scope, \
               kind = EXCLUDED.kind, title = EXCLUDED.title, content = EXCLUDED.content, \
               tags_json = EXCLUDED.tags_json, topic_key = EXCLUDED.topic_key, \
               confidence = EXCLUDED.confidence, schema_version = EXCLUDED.schema_version, \
               reinforced_at = EXCLUDED.reinforced_at, last_used_at = EXCLUDED.last_used_at, \
               times_used = EXCLUDED.times_used, source_conversation_id = EXCLUDED.source_conversation_id, \
               origin_type = EXCLUDED.origin_type, status = EXCLUDED.status, \
               visibility = EXCLUDED.visibility, fingerprint = EXCLUDED.fingerprint, \
               archived = EXCLUDED.archived, source = EXCLUDED.source, \
               updated_at = EXCLUDED.updated_at, search_document = EXCLUDED.search_document"
        ))
        .bind(m.id.as_str())
        .bind(m.organization_id.as_str())
        .bind(m.user_id.as_ref().map(|u| u.0.as_str()))
        .bind(m.project_id.as_ref().map(|p| p.0.as_str()))
        .bind(&m.scope)
        .bind(&m.kind)
        .bind(&m.title)
        .bind(&m.content)
        .bind(serde_json::json!(m.tags))
        .bind(&m.topic_key)
        .bind(m.confidence)
        .bind(m.schema_version)
        .bind(m.reinforced_at)
        .bind(m.last_used_at)
        .bind(m.times_used)
        .bind(m.source_conversation_id.as_ref().map(|c| c.0.as_str()))
        .bind(&m.origin_type)
        .bind(&m.status)
        .bind(&m.visibility)
        .bind(&m.fingerprint)
        .bind(m.archived)
        .bind(&m.source)
        .bind(m.created_by.as_ref().map(|u| u.0.as_str()))
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn supersede_memories(
        &self,
        org: &OrgId,
        fingerprint: &str,
        keep: &MemoryId,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE cloud_memories SET status = 'superseded' WHERE organization_id = $1 \
             AND fingerprint = $2 AND id <> $3 AND status = 'active'",
        )
        .bind(org.as_str())
        .bind(fingerprint)
        .bind(keep.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn memory_by_fingerprint(
        &self,
        org: &OrgId,
        fingerprint: &str,
    ) -> StoreResult<Option<Memory>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMORY_COLS} FROM cloud_memories WHERE organization_id = $1 AND fingerprint = $2 \
             ORDER BY updated_at DESC, id COLLATE \"C\" DESC LIMIT 1"
        ))
        .bind(org.as_str())
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(memory_row).transpose()?)
    }

    async fn memories(&self, filter: &MemoryFilter, page: &PageReq) -> StoreResult<Page<Memory>> {
        // Cursor key is (i64::MAX - updated_at micros), so "after" means older.
        let (before, id) = match &page.after {
            Some(c) => (
                c.key
                    .parse::<i64>()
                    .ok()
                    .and_then(|k| i64::MAX.checked_sub(k))
                    .and_then(DateTime::from_timestamp_micros),
                c.id.clone(),
            ),
            None => (None, String::new()),
        };
        let sql = format!(
            "SELECT {MEMORY_COLS} FROM cloud_memories WHERE {MEMORY_WHERE} \
             AND ($8::timestamptz IS NULL OR updated_at < $8 OR (updated_at = $8 AND id COLLATE \"C\" > $9)) \
             ORDER BY updated_at DESC, id COLLATE \"C\" LIMIT $10"
        );
        let rows = bind_memory_filter(sqlx::query(&sql), filter)
            .bind(before)
            .bind(id)
            .bind(limit_plus_one(page))
            .fetch_all(&self.pool)
            .await?;
        let items = map_all(rows, memory_row)?;
        Ok(Page::from_fetched(
            items,
            page.limit,
            super::memory::memory_cursor,
        ))
    }

    async fn memory_candidates(
        &self,
        filter: &MemoryFilter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Memory, f64)>> {
        let sql = format!(
            "SELECT {MEMORY_COLS}, \
               LEAST(1.0, ts_rank_cd(search_document, websearch_to_tsquery('simple', $8)))::float8 AS fts \
             FROM cloud_memories WHERE {MEMORY_WHERE} \
             AND (search_document @@ websearch_to_tsquery('simple', $8) \
                  OR title ILIKE $9 OR topic_key ILIKE $9 OR content ILIKE $9) \
             ORDER BY fts DESC, updated_at DESC, id COLLATE \"C\" LIMIT $10"
        );
        let like = format!(
            "%{}%",
            query
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = bind_memory_filter(sqlx::query(&sql), filter)
            .bind(query)
            .bind(like)
            .bind(i64::try_from(limit).unwrap_or(1000))
            .fetch_all(&self.pool)
            .await?;
        map_all(rows, |r| {
            Ok((
                memory_row(r)?,
                r.try_get::<Option<f64>, _>("fts")?.unwrap_or(0.3),
            ))
        })
    }

    async fn touch_memory(&self, id: &MemoryId, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_memories SET times_used = times_used + 1, last_used_at = $2, \
             reinforced_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn mark_memories_seen(&self, ids: &[MemoryId], now: DateTime<Utc>) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
        sqlx::query("UPDATE cloud_memories SET last_seen_at = $2 WHERE id = ANY($1)")
            .bind(ids)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_memory(&self, id: &MemoryId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM cloud_memories WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn insert_email_token(
        &self,
        kind: EmailTokenKind,
        hash: &str,
        user: &UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO {} (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
            email_token_table(kind)
        ))
        .bind(hash)
        .bind(user.as_str())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn verify_email_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        let mut tx = self.tx().await?;
        let user: Option<String> = sqlx::query_scalar(
            "DELETE FROM cloud_email_verification_tokens WHERE token_hash = $1 \
             RETURNING CASE WHEN expires_at > $2 THEN user_id END",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(user) = &user {
            sqlx::query(
                "UPDATE cloud_users SET email_verified_at = COALESCE(email_verified_at, $2) \
                 WHERE id = $1",
            )
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(user.map(UserId))
    }

    async fn reset_password_with_token(
        &self,
        hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        let mut tx = self.tx().await?;
        let user: Option<String> = sqlx::query_scalar(
            "DELETE FROM cloud_password_reset_tokens WHERE token_hash = $1 \
             RETURNING CASE WHEN expires_at > $2 THEN user_id END",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        let Some(user) = user else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::query("DELETE FROM cloud_password_reset_tokens WHERE user_id = $1")
            .bind(&user)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE cloud_users SET password_hash = $2 WHERE id = $1")
            .bind(&user)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE user_id = $1",
        )
        .bind(&user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(UserId(user)))
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
