//! LLM provider settings with their sealed secrets.

use super::*;

#[async_trait]
impl ProviderStore for PgStore {
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
        self.one(
            &format!("SELECT {PROVIDER_COLS} FROM cloud_organization_providers WHERE id = $1"),
            id.as_str(),
        )
        .await
    }

    async fn providers(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Provider>> {
        let (t, id) = time_after(page);
        let items: Vec<Provider> = sqlx::query_as(&format!(
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
        changed(done)
    }

    async fn providers_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&ProviderId>,
        limit: usize,
    ) -> StoreResult<Vec<Provider>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PROVIDER_COLS} FROM cloud_organization_providers \
             WHERE secret_key_id IS NOT NULL AND secret_key_id <> $1 \
               AND ($2::text IS NULL OR id COLLATE \"C\" > $2) \
             ORDER BY id COLLATE \"C\" LIMIT $3"
        ))
        .bind(key_id)
        .bind(after.map(|a| a.as_str()))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
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
        self.delete_by_id("cloud_organization_providers", id.as_str())
            .await
    }
}
