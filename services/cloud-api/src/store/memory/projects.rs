//! Projects and their repository settings.

use super::*;

#[async_trait]
impl ProjectStore for MemoryStore {
    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        self.with(|t| {
            t.projects.insert(project.id.clone(), project.clone());
        })
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.with(|t| t.projects.get(id).cloned())
    }

    async fn projects(&self, orgs: &[OrgId], page: &PageReq) -> StoreResult<Page<Project>> {
        self.with(|t| {
            page_of(
                rows_where(&t.projects, |p| orgs.contains(&p.organization_id)),
                page,
            )
        })
    }

    async fn update_project(&self, project: &Project) -> StoreResult<()> {
        self.try_with(|t| replace(&mut t.projects, &project.id, project))
    }

    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()> {
        self.try_with(|t| {
            remove(&mut t.projects, id)?;
            let gone: Vec<ConversationId> = t
                .conversations
                .values()
                .filter(|c| &c.project_id == id)
                .map(|c| c.id.clone())
                .collect();
            for c in &gone {
                t.conversations.remove(c);
                t.messages.remove(c);
            }
            t.memories.retain(|_, m| m.project_id.as_ref() != Some(id));
            for m in t.memories.values_mut() {
                if m.source_conversation_id
                    .as_ref()
                    .is_some_and(|c| gone.contains(c))
                {
                    m.source_conversation_id = None;
                }
            }
            Ok(())
        })
    }
}
