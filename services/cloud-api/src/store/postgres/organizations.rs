//! Organizations and their members.

use super::*;

#[async_trait]
impl OrganizationStore for PgStore {
    async fn create_organization(&self, org: &Organization, owner: &UserId) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        insert_org(&mut tx, org, owner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn organization(&self, id: &OrgId) -> StoreResult<Option<Organization>> {
        self.by_id(&ORGANIZATIONS, id.as_str()).await
    }

    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(Organization, Role)>> {
        let cols = ORGANIZATIONS.cols;
        let rows = sqlx::query(&format!(
            "SELECT {cols}, m.role FROM cloud_organization_memberships m \
             JOIN cloud_organizations o ON o.id = m.organization_id \
             WHERE m.user_id = $1 \
             ORDER BY (o.is_personal AND o.owner_user_id = $1) DESC, m.created_at, o.id COLLATE \"C\""
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        map_all(rows, |r| {
            Ok((Organization::from_row(r)?, role_of(r.try_get("role")?)?))
        })
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
        let q = sqlx::query(
            "UPDATE cloud_organizations SET name = $2, slug = $3, updated_at = now() WHERE id = $1",
        );
        self.change(q.bind(org.as_str()).bind(name).bind(slug))
            .await
    }

    async fn members(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Member>> {
        let sql = MEMBER_LIST.sql("m.organization_id = $4");
        let q = MEMBER_LIST.start(&sql, page).bind(org.as_str());
        self.page(q, page).await
    }

    async fn set_role(&self, org: &OrgId, user: &UserId, role: Role) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        if role != Role::Owner {
            keeps_an_owner(&mut tx, org, user).await?;
        }
        let done = sqlx::query(
            "UPDATE cloud_organization_memberships SET role = $3, updated_at = now() \
             WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
        changed(done.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_member(&self, org: &OrgId, user: &UserId) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        keeps_an_owner(&mut tx, org, user).await?;
        let done = sqlx::query(
            "DELETE FROM cloud_organization_memberships WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .execute(&mut *tx)
        .await?;
        changed(done.rows_affected())?;
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
}

/// Locks the organization's owner rows and refuses when `user` is the only one. Two concurrent
/// demotions serialize on these locks; the second re-reads the rows the first changed (READ
/// COMMITTED re-checks `role` on the new version) and sees a single owner left.
async fn keeps_an_owner(
    tx: &mut Transaction<'static, Postgres>,
    org: &OrgId,
    user: &UserId,
) -> StoreResult<()> {
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM cloud_organization_memberships \
         WHERE organization_id = $1 AND role = 'owner' ORDER BY user_id FOR UPDATE",
    )
    .bind(org.as_str())
    .fetch_all(&mut **tx)
    .await?;
    if owners.len() <= 1 && owners.iter().any(|o| o == user.as_str()) {
        return Err(StoreError::LastOwner);
    }
    Ok(())
}
