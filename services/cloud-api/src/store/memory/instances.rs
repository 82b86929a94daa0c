//! Desktop instance ids and who holds them.

use super::*;

#[async_trait]
impl InstanceStore for MemoryStore {
    async fn register_instance(
        &self,
        instance: &Instance,
        max: usize,
    ) -> StoreResult<RegisterOutcome> {
        self.with(|t| match t.instances.get(&instance.id) {
            Some(existing) if existing.user_id == instance.user_id => {
                RegisterOutcome::Existing(existing.clone())
            }
            Some(_) => RegisterOutcome::Taken,
            None if t
                .instances
                .values()
                .filter(|i| i.user_id == instance.user_id)
                .count()
                >= max =>
            {
                RegisterOutcome::LimitReached
            }
            None => {
                t.instances.insert(instance.id.clone(), instance.clone());
                RegisterOutcome::Created(instance.clone())
            }
        })
    }

    async fn delete_instance(&self, user: &UserId, id: &InstanceId) -> StoreResult<bool> {
        self.with(|t| match t.instances.get(id) {
            Some(i) if &i.user_id == user => t.instances.remove(id).is_some(),
            _ => false,
        })
    }

    async fn instance(&self, id: &InstanceId) -> StoreResult<Option<Instance>> {
        self.with(|t| t.instances.get(id).cloned())
    }

    async fn instances_of(&self, user: &UserId, page: &PageReq) -> StoreResult<Page<Instance>> {
        self.with(|t| page_of(rows_where(&t.instances, |i| &i.user_id == user), page))
    }
}
