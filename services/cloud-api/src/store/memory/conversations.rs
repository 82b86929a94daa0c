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
            let items: Vec<Conversation> = t
                .conversations
                .values()
                .filter(|c| orgs.contains(&c.organization_id))
                .filter(|c| project.is_none_or(|p| &c.project_id == p))
                .cloned()
                .collect();
            page_of(items, page, |c| Cursor {
                key: c.title.clone(),
                id: c.id.0.clone(),
            })
        })
    }

    async fn update_conversation(&self, conversation: &Conversation) -> StoreResult<()> {
        self.with(|t| match t.conversations.get_mut(&conversation.id) {
            Some(c) => {
                *c = conversation.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn delete_conversation(&self, id: &ConversationId) -> StoreResult<()> {
        self.with(|t| {
            if t.conversations.remove(id).is_none() {
                return Err(StoreError::NotFound);
            }
            t.messages.remove(id);
            for m in t.memories.values_mut() {
                if m.source_conversation_id.as_ref() == Some(id) {
                    m.source_conversation_id = None;
                }
            }
            Ok(())
        })?
    }

    async fn append_messages(
        &self,
        conversation: &ConversationId,
        messages: &[Message],
    ) -> StoreResult<(u64, u64)> {
        self.with(|t| {
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
        })?
    }

    async fn messages(
        &self,
        conversation: &ConversationId,
        page: &PageReq,
    ) -> StoreResult<Page<Message>> {
        self.with(|t| {
            let list = t.messages.get(conversation).cloned().unwrap_or_default();
            let start = page
                .after
                .as_ref()
                .and_then(|c| c.key.parse::<usize>().ok())
                .unwrap_or(0);
            let fetched: Vec<(usize, Message)> = list
                .into_iter()
                .enumerate()
                .map(|(i, m)| (i + 1, m))
                .skip(start)
                .take(page.limit + 1)
                .collect();
            let p = Page::from_fetched(fetched, page.limit, |(pos, _)| Cursor {
                key: pos.to_string(),
                id: String::new(),
            });
            Page {
                items: p.items.into_iter().map(|(_, m)| m).collect(),
                next: p.next,
            }
        })
    }
}
