//! Conversations and their append-only transcripts.

use super::*;

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn insert_conversation(&self, conversation: &Conversation) -> StoreResult<()> {
        self.with(|t| {
            t.conversations
                .insert(conversation.id.clone(), conversation.clone());
        })
    }

    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>> {
        self.with(|t| t.conversations.get(id).cloned())
    }

    async fn conversations(
        &self,
        orgs: &[OrgId],
        project: Option<&ProjectId>,
        page: &PageReq,
    ) -> StoreResult<Page<Conversation>> {
        self.with(|t| {
            let items = rows_where(&t.conversations, |c| {
                orgs.contains(&c.organization_id) && project.is_none_or(|p| &c.project_id == p)
            });
            page_of(items, page)
        })
    }

    async fn update_conversation(&self, conversation: &Conversation) -> StoreResult<()> {
        self.try_with(|t| replace(&mut t.conversations, &conversation.id, conversation))
    }

    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()> {
        self.try_with(|t| {
            remove(&mut t.conversations, id)?;
            t.messages.remove(id);
            for m in t.memories.values_mut() {
                if m.source_conversation_id.as_ref() == Some(id) {
                    m.source_conversation_id = None;
                }
            }
            Ok(())
        })
    }

    async fn append_messages(
        &self,
        conversation: &ConversationId,
        messages: &[Message],
    ) -> StoreResult<(u64, u64)> {
        self.try_with(|t| {
            if !t.conversations.contains_key(conversation) {
                return Err(StoreError::NotFound);
            }
            let list = t.messages.entry(conversation.clone()).or_default();
            let mut appended = 0;
            for m in messages {
                if !list.iter().any(|x| x.id == m.id) {
                    list.push(m.clone());
                    appended += 1;
                }
            }
            Ok((appended, list.len() as u64))
        })
    }

    async fn messages(&self, id: &ConversationId, page: &PageReq) -> StoreResult<Page<Message>> {
        let start = usize::try_from(message_position_after(page)).unwrap_or(0);
        self.with(|t| {
            let list = t.messages.get(id).map(Vec::as_slice);
            let fetched = (1..)
                .zip(list.unwrap_or_default().iter().cloned())
                .skip(start)
                .take(page.limit + 1)
                .collect();
            message_page(fetched, page.limit)
        })
    }
}
