//! Projects and their repository settings.

use super::*;

#[async_trait]
impl ProjectStore for PgStore {
    async fn insert_project(&self, p: &Project) -> StoreResult<()> {
        let mut tx = self.tx().await?;
        insert_project_tx(&mut tx, p).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.one(
            &format!("SELECT {PROJECT_COLS} FROM cloud_projects WHERE id = $1"),
            id.as_str(),
        )
        .await
    }

    async fn projects(&self, orgs: &[OrgId], page: &PageReq) -> StoreResult<Page<Project>> {
        let (k, id) = text_after(page);
        let items: Vec<Project> = sqlx::query_as(&format!(
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
        changed(done)
    }

    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()> {
        self.delete_by_id("cloud_projects", id.as_str()).await
    }
}
