//! Workspace snapshots in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::store::{StoreResult, WorkspaceSnapshot, WorkspaceStore};

#[async_trait]
impl WorkspaceStore for MemoryStore {
    async fn save_snapshot(&self, snapshot: &WorkspaceSnapshot) -> StoreResult<i64> {
        let mut inner = self.lock()?;
        let generation = inner
            .workspaces
            .get(&snapshot.conversation_id)
            .map_or(1, |s| s.generation + 1);
        let mut stored = snapshot.clone();
        stored.generation = generation;
        inner
            .workspaces
            .insert(snapshot.conversation_id.clone(), stored);
        Ok(generation)
    }

    async fn snapshot_generation(&self, conversation_id: &str) -> StoreResult<Option<i64>> {
        Ok(self
            .lock()?
            .workspaces
            .get(conversation_id)
            .map(|s| s.generation))
    }

    async fn load_snapshot(&self, conversation_id: &str) -> StoreResult<Option<WorkspaceSnapshot>> {
        Ok(self.lock()?.workspaces.get(conversation_id).cloned())
    }

    async fn delete_snapshot(&self, conversation_id: &str) -> StoreResult<bool> {
        Ok(self.lock()?.workspaces.remove(conversation_id).is_some())
    }
}
