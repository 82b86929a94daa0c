//! Conversations and their append-only transcripts: who may create, read, change and delete
//! them, and how client messages are validated before they are appended (idempotent per id).

use crate::AppState;
use crate::app::access::{self, Scope};
use crate::domain::rules::{self, MAX_NAME};
use crate::domain::*;
use crate::paging::page_views;
use crate::views::*;
use crate::web::caller::Caller;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateConversationBody {
    /// A project of one of the caller's organizations.
    #[schema(required = true, nullable = false, min_length = 1, pattern = "\\S")]
    pub project_id: Option<String>,
    /// Default: `New - <project name>`.
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 200)]
    pub model_provider: Option<String>,
    #[schema(max_length = 200)]
    pub model_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConversationBody {
    #[schema(max_length = 200)]
    pub title: Option<String>,
    #[schema(schema_with = crate::schema::conversation_status)]
    pub status: Option<String>,
    #[schema(max_length = 200)]
    pub model_provider: Option<String>,
    #[schema(max_length = 200)]
    pub model_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    pub conversation: ConversationView,
}

page_response! { ConversationListResponse { conversations: ConversationView } }

page_query! { ConversationListQuery {
    /// Only this project's conversations.
    project_id,
} limit "1-200, default 50." default 50 max 200 }

fn opt_field(v: Option<&str>, what: &str) -> Result<Option<String>, DomainError> {
    rules::trimmed(v)
        .map(|s| rules::bounded(s, MAX_NAME, what))
        .transpose()
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: CreateConversationBody,
) -> Result<ConversationResponse, DomainError> {
    access::require_subscription(state, &caller.user).await?;
    let scope = Scope::of(state, caller).await?;
    let project_id = rules::trimmed(body.project_id.as_deref())
        .ok_or_else(|| DomainError::invalid("projectId is required"))?;
    let project = scope.project(state, &project_id).await?;
    let title = match opt_field(body.title.as_deref(), "title")? {
        Some(t) => t,
        None => format!("New - {}", project.name),
    };
    let now = now();
    let c = Conversation {
        id: ConversationId::generate(),
        organization_id: project.organization_id.clone(),
        project_id: project.id.clone(),
        created_by: Some(caller.user.id.clone()),
        title,
        status: ConversationStatus::Active,
        model_provider: opt_field(body.model_provider.as_deref(), "modelProvider")?,
        model_id: opt_field(body.model_id.as_deref(), "modelId")?,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_conversation(&c).await?;
    Ok(ConversationResponse {
        conversation: ConversationView::from(&c),
    })
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    q: ConversationListQuery,
) -> Result<ConversationListResponse, DomainError> {
    let page = q.page()?;
    let scope = Scope::of(state, caller).await?;
    let project = match rules::trimmed(q.project_id.as_deref()) {
        Some(p) => Some(scope.project(state, &p).await?.id),
        None => None,
    };
    let result = state
        .store
        .conversations(&scope.org_ids(), project.as_ref(), &page)
        .await?;
    Ok(page_views(&result, ConversationView::from).into())
}

pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ConversationResponse, DomainError> {
    let c = access::callers_conversation(state, caller, id).await?;
    Ok(ConversationResponse {
        conversation: ConversationView::from(&c),
    })
}

pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: UpdateConversationBody,
) -> Result<ConversationResponse, DomainError> {
    let mut c = access::callers_conversation(state, caller, id).await?;
    if let Some(t) = opt_field(body.title.as_deref(), "title")? {
        c.title = t;
    }
    if let Some(s) = body.status.as_deref() {
        c.status = ConversationStatus::parse(s.trim())
            .ok_or_else(|| DomainError::invalid("status must be active, done or archived"))?;
    }
    if body.model_provider.is_some() {
        c.model_provider = opt_field(body.model_provider.as_deref(), "modelProvider")?;
    }
    if body.model_id.is_some() {
        c.model_id = opt_field(body.model_id.as_deref(), "modelId")?;
    }
    c.updated_at = now();
    state.store.update_conversation(&c).await?;
    Ok(ConversationResponse {
        conversation: ConversationView::from(&c),
    })
}

pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<OkBody, DomainError> {
    let c = access::callers_conversation(state, caller, id).await?;
    state.store.delete_conversation(&c.id).await?;
    Ok(OkBody { ok: true })
}

/// A message as sent by clients.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct MessageInput {
    /// Client-chosen: 1-200 printable ASCII characters, no spaces or slashes.
    #[schema(
        required = true,
        nullable = false,
        pattern = "^[!-.0-\\[\\]-~]{1,200}$"
    )]
    pub id: Option<String>,
    #[schema(required = true, schema_with = crate::schema::message_role)]
    pub role: Option<String>,
    /// Milliseconds since the epoch.
    pub timestamp: Option<f64>,
    pub content: Option<String>,
}

/// Validates messages: id and role required, content a string (may be empty), bounded sizes.
pub fn parse_messages(input: Vec<MessageInput>) -> Result<Vec<Message>, DomainError> {
    if input.len() > rules::MAX_MESSAGES_PER_APPEND {
        return Err(DomainError::invalid(format!(
            "At most {} messages per request",
            rules::MAX_MESSAGES_PER_APPEND
        )));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, m) in input.into_iter().enumerate() {
        let id =
            rules::validate_client_id(m.id.as_deref().unwrap_or(""), &format!("messages[{i}].id"))?;
        let role = rules::trimmed(m.role.as_deref())
            .ok_or_else(|| DomainError::invalid(format!("messages[{i}].role is required")))?;
        let role = rules::bounded(role, 64, "role")?;
        let content = m.content.unwrap_or_default();
        if content.len() > rules::MAX_MESSAGE_CONTENT {
            return Err(DomainError::invalid(format!(
                "messages[{i}].content is too large"
            )));
        }
        let timestamp = match m.timestamp {
            Some(t) if t.is_finite() && t.abs() < 1e16 => t as i64,
            Some(_) => {
                return Err(DomainError::invalid(format!(
                    "messages[{i}].timestamp is invalid"
                )));
            }
            None => now().timestamp_millis(),
        };
        out.push(Message {
            id,
            role,
            timestamp,
            content,
        });
    }
    Ok(out)
}

/// Appends (idempotent per message id; duplicates within the request count once).
pub async fn append_checked(
    state: &AppState,
    conversation: &Conversation,
    messages: &[Message],
) -> Result<(u64, u64), DomainError> {
    Ok(state
        .store
        .append_messages(&conversation.id, messages)
        .await?)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AppendBody {
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub messages: Vec<MessageInput>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesResponse {
    pub conversation_id: String,
    pub messages: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppendResponse {
    pub conversation_id: String,
    /// The transcript after the append (first 1000 messages).
    pub messages: Vec<MessageView>,
    pub appended: u64,
    pub total: u64,
}

page_query! { MessageListQuery {
} limit "1-1000, default 500 (transcripts are read whole by older desktops)." default 500 max 1000 }

pub async fn messages(
    state: &AppState,
    caller: &Caller,
    id: &str,
    q: MessageListQuery,
) -> Result<MessagesResponse, DomainError> {
    access::require_subscription(state, &caller.user).await?;
    let c = access::callers_conversation(state, caller, id).await?;
    let page = q.page()?;
    let result = state.store.messages(&c.id, &page).await?;
    let (messages, next_cursor) = page_views(&result, MessageView::from);
    Ok(MessagesResponse {
        conversation_id: c.id.0,
        messages,
        next_cursor,
    })
}

/// Appends messages (never replaces the transcript); a message id already present is skipped.
pub async fn append(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: AppendBody,
) -> Result<AppendResponse, DomainError> {
    access::require_subscription(state, &caller.user).await?;
    let messages = parse_messages(body.messages)?;
    let c = access::callers_conversation(state, caller, id).await?;
    let (appended, total) = append_checked(state, &c, &messages).await?;
    let stored = state.store.messages(&c.id, &PageReq::first(1000)).await?;
    Ok(AppendResponse {
        conversation_id: c.id.0,
        messages: stored.items.iter().map(MessageView::from).collect(),
        appended,
        total,
    })
}
