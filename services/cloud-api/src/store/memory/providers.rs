//! LLM provider settings with their sealed secrets.

use super::*;

#[async_trait]
impl ProviderStore for MemoryStore {
    async fn insert_provider(&self, provider: &Provider) -> StoreResult<()> {
        self.with(|t| {
            t.providers.insert(provider.id.clone(), provider.clone());
        })
    }

    async fn provider(&self, id: &ProviderId) -> StoreResult<Option<Provider>> {
        self.with(|t| t.providers.get(id).cloned())
    }

    async fn providers(&self, org: &OrgId, page: &PageReq) -> StoreResult<Page<Provider>> {
        self.with(|t| {
            page_of(
                rows_where(&t.providers, |p| &p.organization_id == org),
                page,
            )
        })
    }

    async fn update_provider(&self, provider: &Provider) -> StoreResult<()> {
        self.try_with(|t| replace(&mut t.providers, &provider.id, provider))
    }

    async fn providers_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&ProviderId>,
        limit: usize,
    ) -> StoreResult<Vec<Provider>> {
        self.with(|t| {
            let mut found = rows_where(&t.providers, |p| {
                p.secret.as_ref().is_some_and(|s| s.key_id != key_id)
                    && after.is_none_or(|a| p.id.as_str() > a.as_str())
            });
            found.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            found.truncate(limit);
            found
        })
    }

    async fn reseal_provider_secret(
        &self,
        id: &ProviderId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> StoreResult<bool> {
        self.with(|t| match t.providers.get_mut(id) {
            Some(p) if p.secret.as_ref().is_some_and(|s| s.nonce == old_nonce) => {
                p.secret = Some(sealed.clone());
                true
            }
            _ => false,
        })
    }

    async fn delete_provider(&self, id: &ProviderId) -> StoreResult<()> {
        self.try_with(|t| remove(&mut t.providers, id).map(drop))
    }
}
