//! Memories: the upsert of the first system (§6.8) with membership and ownership checks, and
//! the input rules shared by create, update and the runtime's internal upsert.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::app::access::Scope;
use crate::domain::memory::{self as mem, SUPERSEDING_KINDS};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;

const MAX_TAGS: usize = 50;
const MAX_CONTENT: usize = 64 * 1024;

#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryInput {
    /// Client-chosen id (only for a new memory or one the caller can already see).
    pub id: Option<String>,
    /// `global` (default) or `project`.
    pub scope: Option<String>,
    pub project_id: Option<String>,
    pub kind: Option<String>,
    pub title: Option<String>,
    /// Trimmed; must not be blank.
    #[schema(required = true, nullable = false, min_length = 1, pattern = "\\S")]
    pub content: Option<String>,
    /// At most 50 tags of at most 100 characters.
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    pub source: Option<String>,
    pub conversation_id: Option<String>,
    pub topic_key: Option<String>,
    pub confidence: Option<f64>,
    #[schema(schema_with = crate::schema::memory_visibility)]
    pub visibility: Option<String>,
    pub organization_id: Option<String>,
}

pub(crate) fn tags(input: Option<&[String]>) -> Result<Vec<String>, DomainError> {
    let tags: Vec<String> = input
        .unwrap_or_default()
        .iter()
        .filter_map(|t| rules::trimmed(Some(t)))
        .collect();
    if tags.len() > MAX_TAGS || tags.iter().any(|t| t.chars().count() > 100) {
        return Err(DomainError::invalid("At most 50 tags of 100 characters"));
    }
    Ok(tags)
}

pub(crate) fn content(v: Option<&str>) -> Result<String, DomainError> {
    let c = rules::trimmed(v).ok_or_else(|| DomainError::invalid("Unable to store memory"))?;
    if c.len() > MAX_CONTENT {
        return Err(DomainError::invalid("content is too large"));
    }
    Ok(c)
}

pub(crate) fn confidence(v: Option<f64>) -> Result<Option<f64>, DomainError> {
    match v {
        Some(c) if c.is_finite() => Ok(Some(c.clamp(0.0, 1.0))),
        Some(_) => Err(DomainError::invalid(
            "confidence must be a number from 0 to 1",
        )),
        None => Ok(None),
    }
}

/// Whether the caller may see (and so change) a memory.
pub(crate) fn visible(scope: &Scope, user: &UserId, m: &Memory) -> bool {
    scope.role(&m.organization_id).is_some()
        && (m.scope == MemoryScope::Project || m.user_id.as_ref() == Some(user))
}

/// The upsert of the first system (§6.8), with membership checks on the organization, project
/// and conversation, and ownership checks on a client-chosen id.
pub async fn upsert(
    state: &AppState,
    scope: &Scope,
    user: &UserId,
    input: MemoryInput,
) -> Result<Memory, DomainError> {
    let content = content(input.content.as_deref())?;
    let (org, _) = scope.resolve(input.organization_id.as_deref())?.clone();
    let mem_scope = input
        .scope
        .as_deref()
        .and_then(|s| MemoryScope::parse(s.trim()))
        .unwrap_or(MemoryScope::Global);
    let project_id = if mem_scope == MemoryScope::Project {
        let id = rules::trimmed(input.project_id.as_deref())
            .ok_or_else(|| DomainError::invalid("projectId is required for project memories"))?;
        let p = scope.project(state, &id).await?;
        if p.organization_id != org.id {
            return Err(DomainError::invalid("Unable to store memory"));
        }
        Some(p.id)
    } else {
        None
    };
    let kind = mem::normalize_kind(input.kind.as_deref());
    let title = rules::trimmed(input.title.as_deref())
        .map(|t| rules::bounded(t, MAX_NAME, "title"))
        .transpose()?;
    let tags = tags(input.tags.as_deref())?;
    let topic_key = mem::topic_key(
        input.topic_key.as_deref(),
        &kind,
        title.as_deref(),
        &content,
        &tags,
    );
    let user_for_fp = (mem_scope == MemoryScope::Global).then_some(user.as_str());
    let fingerprint = mem::fingerprint(
        mem_scope.as_str(),
        org.id.as_str(),
        user_for_fp,
        project_id.as_ref().map(|p| p.as_str()),
        &kind,
        &topic_key,
    );
    let conversation = match rules::trimmed(input.conversation_id.as_deref()) {
        Some(c) => Some(scope.conversation(state, &c).await?.id),
        None => None,
    };
    let mut existing = state
        .store
        .memory_by_fingerprint(&org.id, &fingerprint)
        .await?;
    // A client-chosen id names a memory the caller can see, or a new one (unless the
    // fingerprint already matches a memory, which is then updated).
    let mut new_id = None;
    if let Some(id) = rules::trimmed(input.id.as_deref()) {
        let id = rules::validate_client_id(&id, "id")?;
        match state.store.memory(&MemoryId::from(id.as_str())).await? {
            Some(m) if visible(scope, user, &m) => existing = Some(m),
            Some(_) => return Err(DomainError::NotFound("Memory not found")),
            None if existing.is_none() => new_id = Some(MemoryId(id)),
            None => {}
        }
    }
    let source = rules::trimmed(input.source.as_deref())
        .map(|s| rules::bounded(s, 64, "source"))
        .transpose()?;
    let confidence = confidence(input.confidence)?;
    let now = now();
    let fresh = Memory {
        id: new_id.unwrap_or_else(MemoryId::generate),
        organization_id: org.id.clone(),
        user_id: user_for_fp.map(UserId::from),
        project_id,
        scope: mem_scope,
        kind,
        title,
        content,
        tags,
        topic_key,
        confidence: confidence.unwrap_or(0.5),
        schema_version: 1,
        reinforced_at: None,
        last_used_at: None,
        times_used: 0,
        source_conversation_id: conversation,
        origin_type: "manual".into(),
        status: MemoryStatus::Active,
        visibility: visibility(input.visibility.as_deref(), mem_scope),
        fingerprint,
        archived: false,
        source: source.clone().unwrap_or_else(|| "manual".into()),
        created_by: Some(user.clone()),
        created_at: now,
        updated_at: now,
    };
    let m = match existing {
        None => fresh,
        // An update keeps the memory's identity, history and use, and what the input leaves out.
        Some(old) => Memory {
            id: old.id,
            confidence: confidence.unwrap_or(old.confidence),
            schema_version: old.schema_version,
            reinforced_at: old.reinforced_at,
            last_used_at: old.last_used_at,
            times_used: old.times_used,
            source_conversation_id: fresh
                .source_conversation_id
                .clone()
                .or(old.source_conversation_id),
            origin_type: old.origin_type,
            source: source.unwrap_or(old.source),
            created_by: old.created_by,
            created_at: old.created_at,
            ..fresh
        },
    };
    save(state, m).await
}

/// Saves a memory; one of a superseding kind marks the others of its fingerprint superseded.
async fn save(state: &AppState, m: Memory) -> Result<Memory, DomainError> {
    state.store.save_memory(&m).await?;
    if SUPERSEDING_KINDS.contains(&m.kind.as_str()) {
        state
            .store
            .supersede_memories(&m.organization_id, &m.fingerprint, &m.id)
            .await?;
    }
    Ok(m)
}

pub(crate) fn visibility(requested: Option<&str>, scope: MemoryScope) -> String {
    if scope == MemoryScope::Project || requested.map(str::trim) == Some("shared") {
        "shared".into()
    } else {
        "private".into()
    }
}
