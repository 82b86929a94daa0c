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
            let items: Vec<Project> = t
                .projects
                .values()
                .filter(|p| orgs.contains(&p.organization_id))
                .cloned()
                .collect();
            page_of(items, page, |p| Cursor {
                key: p.name.clone(),
                id: p.id.0.clone(),
            })
        })
    }

    async fn update_project(&self, project: &Project) -> StoreResult<()> {
        self.with(|t| match t.projects.get_mut(&project.id) {
            Some(p) => {
                *p = project.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        })?
    }

    async fn delete_project(&self, id: &ProjectId) -> StoreResult<()> {
        self.with(|t| {
            if t.projects.remove(id).is_none() {
                return Err(StoreError::NotFound);
            }
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
        })?
    }
}
