//! LLM provider settings with their sealed secrets.

use super::*;

#[async_trait]
impl ProviderStore for PgStore {
    async fn insert_provider(&self, p: &Provider) -> StoreResult<()> {
        Ok(insert_row(&self.pool, p).await?)
    }

    async fn provider(&self, id: &ProviderId) -> StoreResult<Option<Provider>> {
        self.by_id(&PROVIDERS, id.as_str()).await
    }

    async fn providers(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Provider>> {
        let sql = PROVIDER_LIST.sql("organization_id = $4");
        let q = PROVIDER_LIST.start(&sql, page).bind(org.as_str());
        self.page(q, page).await
    }

    async fn update_provider(&self, p: &Provider) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_organization_providers SET kind = $2, label = $3, base_url = $4, \
             credential_type = $5, models_json = $6, default_model = $7, supports_cloud_runtime = $8, \
             secret_ciphertext = $9, secret_nonce = $10, secret_key_id = $11, updated_at = $12 \
             WHERE id = $1",
        );
        let q = bind_provider_settings(q.bind(p.id.as_str()), p).bind(p.updated_at);
        self.change(q).await
    }

    async fn providers_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&ProviderId>,
        limit: usize,
    ) -> StoreResult<Vec<Provider>> {
        let sql = PROVIDERS.select(
            "secret_key_id IS NOT NULL AND secret_key_id <> $1 \
             AND ($2::text IS NULL OR id COLLATE \"C\" > $2) ORDER BY id COLLATE \"C\" LIMIT $3",
        );
        let q = sqlx::query_as(&sql)
            .bind(key_id)
            .bind(after.map(|a| a.as_str()))
            .bind(limit as i64);
        Ok(q.fetch_all(&self.pool).await?)
    }

    async fn reseal_provider_secret(
        &self,
        id: &ProviderId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> StoreResult<bool> {
        let q = sqlx::query(
            "UPDATE cloud_organization_providers \
                SET secret_ciphertext = $3, secret_nonce = $4, secret_key_id = $5 \
              WHERE id = $1 AND secret_nonce = $2",
        );
        let q = bind_sealed(q.bind(id.as_str()).bind(old_nonce), Some(sealed));
        Ok(self.run(q).await? == 1)
    }

    async fn delete_provider(&self, id: &ProviderId) -> StoreResult<()> {
        self.delete_by_id(&PROVIDERS, id.as_str()).await
    }
}
