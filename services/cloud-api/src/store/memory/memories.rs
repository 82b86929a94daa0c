//! Memories: visibility, full-text candidates and supersession.

use super::*;

#[async_trait]
impl MemoriesStore for MemoryStore {
    async fn memory(&self, id: &MemoryId) -> StoreResult<Option<Memory>> {
        self.with(|t| t.memories.get(id).cloned())
    }

    async fn save_memory(&self, memory: &Memory) -> StoreResult<()> {
        self.with(|t| {
            t.memories.insert(memory.id.clone(), memory.clone());
        })
    }

    async fn supersede_memories(
        &self,
        org: &OrgId,
        fingerprint: &str,
        keep: &MemoryId,
    ) -> StoreResult<()> {
        self.with(|t| {
            for m in t.memories.values_mut().filter(|m| {
                &m.organization_id == org
                    && m.fingerprint == fingerprint
                    && &m.id != keep
                    && m.status == MemoryStatus::Active
            }) {
                m.status = MemoryStatus::Superseded;
            }
        })
    }

    async fn memory_by_fingerprint(
        &self,
        org: &OrgId,
        fingerprint: &str,
    ) -> StoreResult<Option<Memory>> {
        self.with(|t| {
            t.memories
                .values()
                .filter(|m| &m.organization_id == org && m.fingerprint == fingerprint)
                .max_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)))
                .cloned()
        })
    }

    async fn memories(&self, filter: &MemoryFilter, page: &PageReq) -> StoreResult<Page<Memory>> {
        self.with(|t| page_of(rows_where(&t.memories, |m| memory_visible(m, filter)), page))
    }

    async fn memory_candidates(
        &self,
        filter: &MemoryFilter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Memory, f64)>> {
        self.with(|t| {
            let q = crate::domain::memory::normalize_text(query);
            let mut out: Vec<(Memory, f64)> = t
                .memories
                .values()
                .filter(|m| memory_visible(m, filter) && text_matches(m, query))
                .map(|m| {
                    let hay = crate::domain::memory::normalize_text(&format!(
                        "{} {}",
                        m.title.as_deref().unwrap_or(""),
                        m.content
                    ));
                    let rank = if hay.contains(&q) { 0.85 } else { 0.45 };
                    (m.clone(), rank)
                })
                .collect();
            out.sort_by(|a, b| {
                b.1.partial_cmp(&a.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(b.0.updated_at.cmp(&a.0.updated_at))
                    .then(a.0.id.cmp(&b.0.id))
            });
            out.truncate(limit);
            out
        })
    }

    async fn touch_memory(&self, id: &MemoryId, now: Timestamp) -> StoreResult<()> {
        self.try_with(|t| {
            update(&mut t.memories, id, |m| {
                m.times_used += 1;
                m.last_used_at = Some(now);
                m.reinforced_at = Some(now);
                m.updated_at = now;
            })
        })
    }

    async fn mark_memories_seen(&self, _ids: &[MemoryId], _now: Timestamp) -> StoreResult<()> {
        // `last_seen_at` is not part of the record; only Postgres keeps it (for analytics).
        Ok(())
    }

    async fn delete_memory(&self, id: &MemoryId) -> StoreResult<()> {
        self.try_with(|t| remove(&mut t.memories, id).map(drop))
    }
}
