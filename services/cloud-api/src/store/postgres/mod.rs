//! Postgres store (the production contract). Runtime-checked queries only (`sqlx::query` +
//! row mapping), so building needs no database. Text sort keys use `COLLATE "C"` so the order
//! (and thus keyset pagination) is byte order, the same as the in-memory store.

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{FromRow, PgPool, Postgres, Row, Transaction};

use super::listing::*;
use super::*;
use crate::domain::*;
use rows::*;
use written::*;

mod rows;
mod written;

pub struct PgStore {
    pool: PgPool,
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
type PgQueryAs<'q, T> = sqlx::query::QueryAs<'q, Postgres, T, PgArguments>;

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

    /// The row of `table` whose id is `id`, if there is one.
    async fn by_id<T>(&self, table: &Table, id: &str) -> StoreResult<Option<T>>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        self.one(&table.select(&format!("{} = $1", table.id)), id)
            .await
    }

    /// Runs a statement; how many rows it changed.
    async fn run(&self, q: PgQuery<'_>) -> StoreResult<u64> {
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    /// Runs an update or delete that must match a row (`NotFound` otherwise).
    async fn change(&self, q: PgQuery<'_>) -> StoreResult<()> {
        changed(self.run(q).await?)
    }

    /// Deletes the row of `table` whose id is `id`; none is `NotFound`.
    async fn delete_by_id(&self, table: &Table, id: &str) -> StoreResult<()> {
        let sql = format!("DELETE FROM {} WHERE id = $1", table.from);
        self.change(sqlx::query(&sql).bind(id)).await
    }

    /// Fetches a query started by [`List::start`] (its filter bound) as a page.
    async fn page<T>(&self, q: PgQueryAs<'_, T>, page: &PageReq) -> StoreResult<Page<T>>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin + Listed,
    {
        let items = q.fetch_all(&self.pool).await?;
        Ok(Page::from_fetched(items, page.limit, T::cursor))
    }
}

/// A table (or a join) as the queries shared by several aggregates see it.
struct Table {
    /// What `FROM` names.
    from: &'static str,
    /// The columns its record reads back, in the order `INSERT`s bind them.
    cols: &'static str,
    /// The id column.
    id: &'static str,
}

impl Table {
    fn select(&self, filter: &str) -> String {
        format!("SELECT {} FROM {} WHERE {filter}", self.cols, self.from)
    }

    /// `INSERT` of every column of [`Self::cols`], bound in that order.
    fn insert(&self) -> String {
        let n = self.cols.split(',').count();
        let values: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.from,
            self.cols,
            values.join(",")
        )
    }
}

/// A keyset-paginated list of a table: by `(key, id)`, as its records' [`Listed`] cursors say.
struct List {
    table: &'static Table,
    key: SortKey,
}

/// A list's sort key column: a time (cursor key from [`time_key`]) or text (byte order).
enum SortKey {
    Time(&'static str),
    Text(&'static str),
}

impl List {
    /// The page of the rows where `filter` holds: `$1`, `$2` are the cursor's key and id, `$3`
    /// the limit (see [`Self::start`]), so the filter's own parameters start at `$4`.
    fn sql(&self, filter: &str) -> String {
        let (key, ty) = match self.key {
            SortKey::Time(col) => (col.to_owned(), "timestamptz"),
            SortKey::Text(col) => (format!("{col} COLLATE \"C\""), "text"),
        };
        let id = format!("{} COLLATE \"C\"", self.table.id);
        self.table.select(&format!(
            "({filter}) AND ($1::{ty} IS NULL OR ({key}, {id}) > ($1, $2)) \
             ORDER BY {key}, {id} LIMIT $3"
        ))
    }

    /// Starts the query of [`Self::sql`]: binds the cursor and `limit + 1` (for the page logic).
    fn start<'q, T>(&self, sql: &'q str, page: &PageReq) -> PgQueryAs<'q, T>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        let q = sqlx::query_as(sql);
        let (key, id) = match &page.after {
            Some(c) => (Some(c.key.clone()), c.id.clone()),
            None => (None, String::new()),
        };
        let q = match self.key {
            SortKey::Time(_) => q.bind(key.as_deref().and_then(parse_time_key)),
            SortKey::Text(_) => q.bind(key),
        };
        q.bind(id).bind(limit_plus_one(page))
    }
}

/// An update or delete that matched nothing is `NotFound`.
fn changed(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 0 {
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

fn org_strings(orgs: &[OrgId]) -> Vec<String> {
    orgs.iter().map(|o| o.0.clone()).collect()
}

/// The memory visibility rule as SQL; binds $1 org, $2 user, $3 scope, $4 project filter,
/// $5 kind, $6 include archived, $7 active only.
const MEMORY_WHERE: &str = "organization_id = $1 \
    AND ( (coalesce($3, 'global') = 'global' AND scope = 'global' AND user_id = $2) \
       OR (coalesce($3, 'project') = 'project' AND scope = 'project' AND project_id IS NOT NULL \
           AND ($4::text IS NULL OR project_id = $4)) ) \
    AND ($5::text IS NULL OR kind = $5) \
    AND ($6 OR NOT archived) \
    AND (NOT $7 OR status = 'active')";

fn bind_memory_filter<'q>(q: PgQuery<'q>, f: &'q MemoryFilter) -> PgQuery<'q> {
    q.bind(f.organization_id.as_str())
        .bind(f.user_id.as_str())
        .bind(f.scope.map(MemoryScope::as_str))
        .bind(f.project_id.as_ref().map(|p| p.0.as_str()))
        .bind(f.kind.as_deref())
        .bind(f.include_archived)
        .bind(f.active_only)
}

mod audit;
mod conversations;
mod email_tokens;
mod instances;
mod invites;
mod memories;
mod organizations;
mod plans;
mod projects;
mod providers;
mod self_service;
mod sessions;
mod users;

impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }
}

/// Which sessions [`revoke_sessions`] ends.
enum Sessions<'a> {
    One(&'a SessionId),
    Family(&'a FamilyId),
    OfUser(&'a str),
}

/// Revokes the sessions (keeping an earlier revocation time).
async fn revoke_sessions<'e, E>(ex: E, which: Sessions<'_>, now: Timestamp) -> StoreResult<()>
where
    E: sqlx::PgExecutor<'e>,
{
    let (column, key) = match which {
        Sessions::One(id) => ("id", id.as_str()),
        Sessions::Family(family) => ("family_id", family.as_str()),
        Sessions::OfUser(user) => ("user_id", user),
    };
    let sql = format!(
        "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE {column} = $1"
    );
    sqlx::query(&sql).bind(key).bind(now).execute(ex).await?;
    Ok(())
}

fn email_token_table(kind: EmailTokenKind) -> &'static str {
    match kind {
        EmailTokenKind::Verification => "cloud_email_verification_tokens",
        EmailTokenKind::PasswordReset => "cloud_password_reset_tokens",
    }
}

async fn insert_org(
    tx: &mut Transaction<'static, Postgres>,
    org: &Organization,
    owner: &UserId,
) -> StoreResult<()> {
    let q = sqlx::query(
        "INSERT INTO cloud_organizations (id, owner_user_id, slug, name, is_personal, created_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$6)",
    )
    .bind(org.id.as_str())
    .bind(org.owner_user_id.as_ref().map(|u| u.0.as_str()))
    .bind(&org.slug)
    .bind(&org.name)
    .bind(org.is_personal)
    .bind(org.created_at);
    q.execute(&mut **tx).await?;
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
    Ok(insert_row(&mut **tx, p).await?)
}
