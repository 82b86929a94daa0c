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
        self.by_id(&PROJECTS, id.as_str()).await
    }

    async fn projects(&self, orgs: &[OrgId], page: &PageReq) -> StoreResult<Page<Project>> {
        let sql = PROJECT_LIST.sql("organization_id = ANY($4)");
        let q = PROJECT_LIST.start(&sql, page).bind(org_strings(orgs));
        self.page(q, page).await
    }

    async fn update_project(&self, p: &Project) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_projects SET name = $2, repo_name = $3, project_kind = $4, \
             workspace_capability = $5, repository_clone_url = $6, repository_default_branch = $7, \
             repository_auth_mode = $8, repository_token_ciphertext = $9, repository_token_nonce = $10, \
             repository_token_key_id = $11, cloud_status = $12, updated_at = $13 WHERE id = $1",
        );
        let q = bind_project_settings(q.bind(p.id.as_str()), p).bind(p.updated_at);
        self.change(q).await
    }

    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()> {
        self.delete_by_id(&PROJECTS, id.as_str()).await
    }
}
