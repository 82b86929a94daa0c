//! Admin changes with their audit rows (one transaction each), and the admin's directory of
//! users and organizations.

use super::plans::patch_plan;
use super::users::entitlements_update;
use super::*;
use crate::store::audit::{audit_before, search_key};

const AUDIT_COLS: &str = "id, actor_user_id, action, target_kind, target_id, details, created_at";

impl FromRow<'_, PgRow> for AuditEntry {
    fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(AuditEntry {
            id: r.try_get("id")?,
            event: AuditEvent {
                actor: UserId(r.try_get("actor_user_id")?),
                action: r.try_get("action")?,
                target_kind: r.try_get("target_kind")?,
                target_id: r.try_get("target_id")?,
                details: r.try_get("details")?,
                at: r.try_get("created_at")?,
            },
        })
    }
}

async fn insert_audit<'e, E>(ex: E, e: &AuditEvent) -> StoreResult<i64>
where
    E: sqlx::PgExecutor<'e>,
{
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO cloud_audit_log (actor_user_id, action, target_kind, target_id, details, \
         created_at) VALUES ($1,$2,$3,$4,$5,$6) RETURNING id",
    )
    .bind(e.actor.as_str())
    .bind(&e.action)
    .bind(&e.target_kind)
    .bind(&e.target_id)
    .bind(&e.details)
    .bind(e.at)
    .fetch_one(ex)
    .await?;
    Ok(id)
}

/// Applies `change` in `tx`; `NotFound` (the transaction then rolls back) for an unknown row.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    change: AdminChange<'_>,
) -> StoreResult<()> {
    match change {
        AdminChange::Entitlements(user) => changed(
            entitlements_update(user)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        ),
        AdminChange::Plan { id, patch } => patch_plan(tx, id, patch).await,
        AdminChange::VerifyEmail { user, at } => {
            let q = sqlx::query(
                "UPDATE cloud_users SET email_verified_at = COALESCE(email_verified_at, $2), \
                 updated_at = now() WHERE id = $1",
            );
            let done = q.bind(user.as_str()).bind(at).execute(&mut **tx).await?;
            changed(done.rows_affected())
        }
        AdminChange::Disabled { user, at } => {
            let q = sqlx::query(
                "UPDATE cloud_users SET disabled_at = CASE WHEN $2::timestamptz IS NULL THEN NULL \
                 ELSE COALESCE(disabled_at, $2) END, updated_at = now() WHERE id = $1",
            );
            let done = q.bind(user.as_str()).bind(at).execute(&mut **tx).await?;
            changed(done.rows_affected())?;
            if let Some(at) = at {
                revoke_sessions(&mut **tx, Sessions::OfUser(user.as_str()), at).await?;
            }
            Ok(())
        }
    }
}

#[async_trait]
impl AuditStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn audited(&self, change: AdminChange<'_>, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        apply(&mut tx, change).await?;
        insert_audit(&mut *tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64> {
        insert_audit(&self.pool, event).await
    }

    async fn audit_log(
        &self,
        filter: &AuditFilter,
        page: &PageReq,
    ) -> StoreResult<Page<AuditEntry>> {
        let (kind, id) = match &filter.target {
            Some((kind, id)) => (Some(kind.as_str()), Some(id.as_str())),
            None => (None, None),
        };
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM cloud_audit_log WHERE ($1::bigint IS NULL OR id < $1) \
             AND ($2::text IS NULL OR (target_kind = $2 AND target_id = $3)) \
             ORDER BY id DESC LIMIT $4"
        );
        let items: Vec<AuditEntry> = sqlx::query_as(&sql)
            .bind(audit_before(page))
            .bind(kind)
            .bind(id)
            .bind(limit_plus_one(page))
            .fetch_all(&self.pool)
            .await?;
        Ok(Page::from_fetched(items, page.limit, AuditEntry::cursor))
    }
}

/// Case-insensitive substring match of `$4` (already lower-cased) on either column; `strpos`
/// rather than `LIKE`, so `%` and `_` in a search are plain characters.
fn contains_either(a: &str, b: &str) -> String {
    format!("$4 = '' OR strpos(lower({a}), $4) > 0 OR strpos(lower({b}), $4) > 0")
}

const ORG_LIST: List = List {
    table: &ORGANIZATIONS,
    key: SortKey::Time("o.created_at"),
};

#[async_trait]
impl DirectoryStore for PgStore {
    async fn search_users(&self, query: &str, page: &PageReq) -> StoreResult<Page<User>> {
        let q = search_key(query);
        let sql = USER_LIST.sql(&contains_either("email", "display_name"));
        self.page(USER_LIST.start(&sql, page).bind(q), page).await
    }

    async fn search_organizations(
        &self,
        query: &str,
        page: &PageReq,
    ) -> StoreResult<Page<Organization>> {
        let q = search_key(query);
        let sql = ORG_LIST.sql(&contains_either("o.name", "o.slug"));
        self.page(ORG_LIST.start(&sql, page).bind(q), page).await
    }
}
