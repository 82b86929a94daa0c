//! Conversations and their append-only transcripts.

use super::*;

#[async_trait]
impl ConversationStore for PgStore {
    async fn insert_conversation(&self, c: &Conversation) -> StoreResult<()> {
        Ok(insert_row(&self.pool, c).await?)
    }

    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>> {
        self.by_id(&CONVERSATIONS, id.as_str()).await
    }

    async fn conversations(
        &self,
        orgs: &[OrgId],
        project: Option<&ProjectId>,
        page: &PageReq,
    ) -> StoreResult<Page<Conversation>> {
        let sql = CONVERSATION_LIST
            .sql("organization_id = ANY($4) AND ($5::text IS NULL OR project_id = $5)");
        let q = CONVERSATION_LIST.start(&sql, page).bind(org_strings(orgs));
        self.page(q.bind(project.map(|p| p.0.as_str())), page).await
    }

    async fn update_conversation(&self, c: &Conversation) -> StoreResult<()> {
        let q = sqlx::query(
            "UPDATE cloud_conversations SET title = $2, status = $3, model_provider = $4, \
             model_id = $5, updated_at = $6 WHERE id = $1",
        );
        let q = bind_conversation_settings(q.bind(c.id.as_str()), c).bind(c.updated_at);
        self.change(q).await
    }

    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()> {
        self.delete_by_id(&CONVERSATIONS, id.as_str()).await
    }

    #[tracing::instrument(skip_all)]
    async fn append_messages(
        &self,
        conversation: &ConversationId,
        messages: &[Message],
    ) -> StoreResult<(u64, u64)> {
        let mut tx = self.tx().await?;
        // Locking the conversation row serialises appends, so positions never collide.
        let exists = sqlx::query("SELECT 1 FROM cloud_conversations WHERE id = $1 FOR UPDATE")
            .bind(conversation.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let mut next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(max(position), 0) FROM cloud_conversation_messages WHERE conversation_id = $1",
        )
        .bind(conversation.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let mut appended = 0u64;
        for m in messages {
            let done = sqlx::query(
                "INSERT INTO cloud_conversation_messages (conversation_id, position, id, role, timestamp_ms, content) \
                 VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (conversation_id, id) DO NOTHING",
            )
            .bind(conversation.as_str())
            .bind(next + 1)
            .bind(&m.id)
            .bind(&m.role)
            .bind(m.timestamp)
            .bind(&m.content)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                next += 1;
                appended += 1;
            }
        }
        if appended > 0 {
            sqlx::query("UPDATE cloud_conversations SET updated_at = now() WHERE id = $1")
                .bind(conversation.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((appended, u64::try_from(next).unwrap_or(0)))
    }

    async fn messages(&self, id: &ConversationId, page: &PageReq) -> StoreResult<Page<Message>> {
        let rows = sqlx::query(
            "SELECT position, id, role, timestamp_ms, content FROM cloud_conversation_messages \
             WHERE conversation_id = $1 AND position > $2 ORDER BY position LIMIT $3",
        )
        .bind(id.as_str())
        .bind(message_position_after(page))
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, |r| {
            Ok((r.try_get("position")?, Message::from_row(r)?))
        })?;
        Ok(message_page(items, page.limit))
    }
}
