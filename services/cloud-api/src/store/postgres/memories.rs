//! Memories: visibility, full-text candidates and supersession.

use super::*;

#[async_trait]
impl MemoriesStore for PgStore {
    async fn memory(&self, id: &MemoryId) -> StoreResult<Option<Memory>> {
        self.by_id(&MEMORIES, id.as_str()).await
    }

    async fn save_memory(&self, m: &Memory) -> StoreResult<()> {
        let cols = MEMORIES.cols;
        let sql = format!(
            "INSERT INTO cloud_memories ({cols}, search_document) VALUES \
             ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25, \
              to_tsvector('simple', coalesce($7,'') || ' ' || $8 || ' ' || $10 || ' ' || \
                 coalesce((SELECT string_agg(x, ' ') FROM jsonb_array_elements_text($9) x), '') || ' ' || $6)) \
             ON CONFLICT (id) DO UPDATE SET organization_id = EXCLUDED.organization_id, \
               user_id = EXCLUDED.user_id, project_id = EXCLUDED.project_id, scope = EXCLUDED.scope, \
               kind = EXCLUDED.kind, title = EXCLUDED.title, content = EXCLUDED.content, \
               tags_json = EXCLUDED.tags_json, topic_key = EXCLUDED.topic_key, \
               confidence = EXCLUDED.confidence, schema_version = EXCLUDED.schema_version, \
               reinforced_at = EXCLUDED.reinforced_at, last_used_at = EXCLUDED.last_used_at, \
               times_used = EXCLUDED.times_used, source_conversation_id = EXCLUDED.source_conversation_id, \
               origin_type = EXCLUDED.origin_type, status = EXCLUDED.status, \
               visibility = EXCLUDED.visibility, fingerprint = EXCLUDED.fingerprint, \
               archived = EXCLUDED.archived, source = EXCLUDED.source, \
               updated_at = EXCLUDED.updated_at, search_document = EXCLUDED.search_document"
        );
        let q = sqlx::query(&sql)
            .bind(m.id.as_str())
            .bind(m.organization_id.as_str())
            .bind(m.user_id.as_ref().map(|u| u.0.as_str()))
            .bind(m.project_id.as_ref().map(|p| p.0.as_str()))
            .bind(m.scope.as_str())
            .bind(&m.kind)
            .bind(&m.title)
            .bind(&m.content)
            .bind(serde_json::json!(m.tags))
            .bind(&m.topic_key)
            .bind(m.confidence)
            .bind(m.schema_version)
            .bind(m.reinforced_at)
            .bind(m.last_used_at)
            .bind(m.times_used)
            .bind(m.source_conversation_id.as_ref().map(|c| c.0.as_str()))
            .bind(&m.origin_type)
            .bind(m.status.as_str())
            .bind(&m.visibility)
            .bind(&m.fingerprint)
            .bind(m.archived)
            .bind(&m.source)
            .bind(m.created_by.as_ref().map(|u| u.0.as_str()))
            .bind(m.created_at)
            .bind(m.updated_at);
        self.run(q).await.map(drop)
    }

    async fn supersede_memories(
        &self,
        org: &OrgId,
        fingerprint: &str,
        keep: &MemoryId,
    ) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_memories SET status = 'superseded' WHERE organization_id = $1 \
             AND fingerprint = $2 AND id <> $3 AND status = 'active'",
        );
        let q = q.bind(org.as_str()).bind(fingerprint).bind(keep.as_str());
        self.run(q).await.map(drop)
    }

    async fn memory_by_fingerprint(
        &self,
        org: &OrgId,
        fingerprint: &str,
    ) -> StoreResult<Option<Memory>> {
        let sql = MEMORIES.select(
            "organization_id = $1 AND fingerprint = $2 \
             ORDER BY updated_at DESC, id COLLATE \"C\" DESC LIMIT 1",
        );
        let q = sqlx::query_as(&sql).bind(org.as_str()).bind(fingerprint);
        Ok(q.fetch_optional(&self.pool).await?)
    }

    async fn memories(&self, filter: &MemoryFilter, page: &PageReq) -> StoreResult<Page<Memory>> {
        // Cursor key is (i64::MAX - updated_at micros), so "after" means older.
        let (before, id) = match &page.after {
            Some(c) => (memory_cursor_time(c), c.id.clone()),
            None => (None, String::new()),
        };
        let sql = MEMORIES.select(&format!(
            "{MEMORY_WHERE} \
             AND ($8::timestamptz IS NULL OR updated_at < $8 OR (updated_at = $8 AND id COLLATE \"C\" > $9)) \
             ORDER BY updated_at DESC, id COLLATE \"C\" LIMIT $10"
        ));
        let rows = bind_memory_filter(sqlx::query(&sql), filter)
            .bind(before)
            .bind(id)
            .bind(limit_plus_one(page))
            .fetch_all(&self.pool)
            .await?;
        let items = map_all(rows, |r| Memory::from_row(r))?;
        Ok(Page::from_fetched(items, page.limit, Memory::cursor))
    }

    async fn memory_candidates(
        &self,
        filter: &MemoryFilter,
        query: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Memory, f64)>> {
        let cols = MEMORIES.cols;
        let sql = format!(
            "SELECT {cols}, \
               LEAST(1.0, ts_rank_cd(search_document, websearch_to_tsquery('simple', $8)))::float8 AS fts \
             FROM cloud_memories WHERE {MEMORY_WHERE} \
             AND (search_document @@ websearch_to_tsquery('simple', $8) \
                  OR title ILIKE $9 OR topic_key ILIKE $9 OR content ILIKE $9) \
             ORDER BY fts DESC, updated_at DESC, id COLLATE \"C\" LIMIT $10"
        );
        let like = format!(
            "%{}%",
            query
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = bind_memory_filter(sqlx::query(&sql), filter)
            .bind(query)
            .bind(like)
            .bind(i64::try_from(limit).unwrap_or(1000))
            .fetch_all(&self.pool)
            .await?;
        map_all(rows, |r| {
            Ok((
                Memory::from_row(r)?,
                r.try_get::<Option<f64>, _>("fts")?.unwrap_or(0.3),
            ))
        })
    }

    async fn touch_memory(&self, id: &MemoryId, now: Timestamp) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_memories SET times_used = times_used + 1, last_used_at = $2, \
             reinforced_at = $2, updated_at = $2 WHERE id = $1",
        );
        self.change(q.bind(id.as_str()).bind(now)).await
    }

    async fn mark_memories_seen(&self, ids: &[MemoryId], now: Timestamp) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
        let q = sqlx::query("UPDATE cloud_memories SET last_seen_at = $2 WHERE id = ANY($1)");
        self.run(q.bind(ids).bind(now)).await.map(drop)
    }

    async fn delete_memory(&self, id: &MemoryId) -> StoreResult<()> {
        self.delete_by_id(&MEMORIES, id.as_str()).await
    }
}
