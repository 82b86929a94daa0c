//! Postgres store (the production contract). Runtime-checked queries only (`sqlx::query` +
//! row mapping), so building needs no database. Text sort keys use `COLLATE "C"` so the order
//! (and thus keyset pagination) is byte order, the same as the in-memory store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::{FromRow, PgPool, Postgres, Row, Transaction};

use super::*;
use crate::domain::*;
use rows::*;

mod rows;

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

    /// The row of `sql` that binds `key` as `$1`, if there is one.
    async fn one<T>(&self, sql: &str, key: &str) -> StoreResult<Option<T>>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Deletes the row of `table` whose id is `id`; none is `NotFound`.
    async fn delete_by_id(&self, table: &str, id: &str) -> StoreResult<()> {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        changed(done)
    }
}

/// An update or delete that matched nothing is `NotFound`.
fn changed(done: PgQueryResult) -> StoreResult<()> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// For rows that carry more than one record (a record and a rank, a position…).
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
