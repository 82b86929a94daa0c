//! Conversations and their append-only transcripts.

use super::*;

#[async_trait]
impl ConversationStore for PgStore {
    async fn insert_conversation(&self, c: &Conversation) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO cloud_conversations ({CONVERSATION_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
        ))
        .bind(c.id.as_str())
        .bind(c.organization_id.as_str())
        .bind(c.project_id.as_str())
        .bind(c.created_by.as_ref().map(|u| u.0.as_str()))
        .bind(&c.title)
        .bind(&c.status)
        .bind(&c.model_provider)
        .bind(&c.model_id)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>> {
        self.one(
            &format!("SELECT {CONVERSATION_COLS} FROM cloud_conversations WHERE id = $1"),
            id.as_str(),
        )
        .await
    }

    async fn conversations(
        &self,
        orgs: &[OrgId],
        project: Option<&ProjectId>,
        page: &PageReq,
    ) -> StoreResult<Page<Conversation>> {
        let (k, id) = text_after(page);
        let items: Vec<Conversation> = sqlx::query_as(&format!(
            "SELECT {CONVERSATION_COLS} FROM cloud_conversations WHERE organization_id = ANY($1) \
             AND ($2::text IS NULL OR project_id = $2) \
             AND ($3::text IS NULL OR (title COLLATE \"C\", id COLLATE \"C\") > ($3, $4)) \
             ORDER BY title COLLATE \"C\", id COLLATE \"C\" LIMIT $5"
        ))
        .bind(org_strings(orgs))
        .bind(project.map(|p| p.0.as_str()))
        .bind(k)
        .bind(id)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        Ok(Page::from_fetched(items, page.limit, |c| Cursor {
            key: c.title.clone(),
            id: c.id.0.clone(),
        }))
    }

    async fn update_conversation(&self, c: &Conversation) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE cloud_conversations SET title = $2, status = $3, model_provider = $4, \
             model_id = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(&c.title)
        .bind(&c.status)
        .bind(&c.model_provider)
        .bind(&c.model_id)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        changed(done)
    }

    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()> {
        self.delete_by_id("cloud_conversations", id.as_str()).await
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

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageReq,
    ) -> StoreResult<Page<Message>> {
        let after: i64 = page
            .after
            .as_ref()
            .and_then(|c| c.key.parse().ok())
            .unwrap_or(0);
        let rows = sqlx::query(
            "SELECT position, id, role, timestamp_ms, content FROM cloud_conversation_messages \
             WHERE conversation_id = $1 AND position > $2 ORDER BY position LIMIT $3",
        )
        .bind(conversation.as_str())
        .bind(after)
        .bind(limit_plus_one(page))
        .fetch_all(&self.pool)
        .await?;
        let items = map_all(rows, |r| {
            Ok((r.try_get::<i64, _>("position")?, Message::from_row(r)?))
        })?;
        let p = Page::from_fetched(items, page.limit, |(pos, _)| Cursor {
            key: pos.to_string(),
            id: String::new(),
        });
        Ok(Page {
            items: p.items.into_iter().map(|(_, m)| m).collect(),
            next: p.next,
        })
    }
}
