//! Account self-service on Postgres: the statements behind the self-service methods of
//! `UserStore`, `SessionStore` and `EmailTokenStore` (the impls there call these), each one
//! statement or one transaction.

use super::*;

/// A row that keeps its family signed in (see `SessionStore::live_sessions`); `$2` is now.
const LIVE: &str = "revoked_at IS NULL AND (expires_at > $2 \
     OR (rotated_at IS NULL AND refresh_expires_at > $2))";

pub(super) async fn live_sessions(
    pool: &PgPool,
    user: &UserId,
    now: Timestamp,
    limit: usize,
) -> StoreResult<Vec<LiveSession>> {
    // GREATEST ignores NULLs: a row's last expiry is its access token's or, unrotated, its
    // refresh token's, whichever is later; revoked rows count for nothing.
    let sql = format!(
        "SELECT family_id, min(client_id) AS client_id, min(scope) AS scope, \
                min(created_at) AS created_at, max(auth_time) AS auth_time, \
                max(created_at) AS last_used_at, \
                max(CASE WHEN revoked_at IS NULL THEN GREATEST(expires_at, \
                    CASE WHEN rotated_at IS NULL THEN refresh_expires_at END) END) AS expires_at \
           FROM cloud_sessions WHERE user_id = $1 \
          GROUP BY family_id HAVING bool_or({LIVE}) \
          ORDER BY min(created_at) DESC, family_id COLLATE \"C\" LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(user.as_str())
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    map_all(rows, |r| {
        Ok(LiveSession {
            family_id: FamilyId(r.try_get("family_id")?),
            client_id: r.try_get("client_id")?,
            scope: r.try_get("scope")?,
            created_at: r.try_get("created_at")?,
            auth_time: r.try_get("auth_time")?,
            last_used_at: r.try_get("last_used_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
}

pub(super) async fn revoke_user_family(
    pool: &PgPool,
    user: &UserId,
    family: &FamilyId,
    now: Timestamp,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE cloud_sessions SET revoked_at = COALESCE(revoked_at, $2) \
          WHERE family_id = $3 AND user_id = $1 AND EXISTS ( \
                SELECT 1 FROM cloud_sessions WHERE family_id = $3 AND user_id = $1 AND {LIVE})"
    );
    let done = sqlx::query(&sql)
        .bind(user.as_str())
        .bind(now)
        .bind(family.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn revoke_other_families<'e, E>(
    ex: E,
    user: &UserId,
    keep: &FamilyId,
    now: Timestamp,
) -> StoreResult<u64>
where
    E: sqlx::PgExecutor<'e>,
{
    let ended: i64 = sqlx::query_scalar(
        "WITH ended AS ( \
           UPDATE cloud_sessions SET revoked_at = $3 \
            WHERE user_id = $1 AND family_id <> $2 AND revoked_at IS NULL \
           RETURNING family_id, \
                     expires_at > $3 OR (rotated_at IS NULL AND refresh_expires_at > $3) AS live) \
         SELECT count(DISTINCT family_id) FILTER (WHERE live) FROM ended",
    )
    .bind(user.as_str())
    .bind(keep.as_str())
    .bind(now)
    .fetch_one(ex)
    .await?;
    Ok(u64::try_from(ended).unwrap_or(0))
}

pub(super) async fn change_password(pool: &PgPool, c: PasswordChange<'_>) -> StoreResult<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE cloud_users SET password_hash = $3, updated_at = now() \
         WHERE id = $1 AND password_hash = $2",
    )
    .bind(c.user.as_str())
    .bind(c.old_hash)
    .bind(c.new_hash)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM cloud_password_reset_tokens WHERE user_id = $1")
        .bind(c.user.as_str())
        .execute(&mut *tx)
        .await?;
    revoke_other_families(&mut *tx, c.user, c.keep, c.now).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn insert_email_change(pool: &PgPool, c: &EmailChange) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM cloud_email_change_tokens WHERE user_id = $1")
        .bind(c.user.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO cloud_email_change_tokens (token_hash, user_id, new_email, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&c.hash)
    .bind(c.user.as_str())
    .bind(&c.new_email)
    .bind(c.expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn confirm_email_change(
    pool: &PgPool,
    hash: &str,
    now: Timestamp,
) -> StoreResult<EmailChangeOutcome> {
    let mut tx = pool.begin().await?;
    let taken: Option<(String, String, Timestamp)> = sqlx::query_as(
        "DELETE FROM cloud_email_change_tokens WHERE token_hash = $1 \
         RETURNING user_id, new_email, expires_at",
    )
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user, new_email, _)) = taken.filter(|(_, _, e)| *e > now) else {
        tx.commit().await?;
        return Ok(EmailChangeOutcome::Invalid);
    };
    let old_email: Option<String> =
        sqlx::query_scalar("SELECT email FROM cloud_users WHERE id = $1 FOR UPDATE")
            .bind(&user)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(old_email) = old_email else {
        tx.commit().await?;
        return Ok(EmailChangeOutcome::Invalid);
    };
    let other: Option<String> = sqlx::query_scalar(
        "SELECT id FROM cloud_users WHERE lower(email) = lower($1) AND id <> $2",
    )
    .bind(&new_email)
    .bind(&user)
    .fetch_optional(&mut *tx)
    .await?;
    if other.is_some() {
        tx.commit().await?;
        return Ok(EmailChangeOutcome::Taken);
    }
    // A signup of the same address between the check and here trips the unique index: the
    // whole change rolls back (the link stays, and fails as taken next time).
    sqlx::query(
        "UPDATE cloud_users SET email = $2, email_verified_at = $3, updated_at = now() \
         WHERE id = $1",
    )
    .bind(&user)
    .bind(&new_email)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for table in [
        email_token_table(EmailTokenKind::Verification),
        email_token_table(EmailTokenKind::PasswordReset),
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(&user)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(EmailChangeOutcome::Changed {
        user: UserId(user),
        old_email,
        new_email,
    })
}

pub(super) async fn purge_email_changes(pool: &PgPool, before: Timestamp) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM cloud_email_change_tokens WHERE expires_at < $1")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn delete_account(pool: &PgPool, id: &UserId) -> StoreResult<AccountDeletion> {
    let mut tx = pool.begin().await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM cloud_users WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    // Locking the organizations holds off new memberships (their foreign key takes a share
    // lock on the row); locking the memberships holds off role changes and removals, so the
    // decision below stays true until the commit.
    let orgs: Vec<Organization> = sqlx::query_as(&ORGANIZATIONS.select(
        "o.id IN (SELECT organization_id FROM cloud_organization_memberships WHERE user_id = $1) \
         OR (o.is_personal AND o.owner_user_id = $1) ORDER BY o.id FOR UPDATE",
    ))
    .bind(id.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<String> = orgs.iter().map(|o| o.id.0.clone()).collect();
    let rows = sqlx::query(
        "SELECT organization_id, user_id, role FROM cloud_organization_memberships \
         WHERE organization_id = ANY($1) ORDER BY organization_id, user_id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let memberships = map_all(rows, |r| {
        Ok((
            OrgId(r.try_get("organization_id")?),
            UserId(r.try_get("user_id")?),
            role_of(r.try_get("role")?)?,
        ))
    })?;
    let doomed = match crate::store::self_service::plan_deletion(id, &orgs, &memberships) {
        Ok(doomed) => doomed,
        Err(blocking) => {
            tx.rollback().await?;
            return Ok(AccountDeletion::LastOwner(blocking));
        }
    };
    let doomed_ids: Vec<String> = doomed.iter().map(|o| o.0.clone()).collect();
    sqlx::query("DELETE FROM cloud_organizations WHERE id = ANY($1)")
        .bind(&doomed_ids)
        .execute(&mut *tx)
        .await?;
    // Everything else of the user goes by the foreign keys (CASCADE or SET NULL).
    sqlx::query("DELETE FROM cloud_users WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(AccountDeletion::Deleted {
        organizations: doomed,
    })
}
