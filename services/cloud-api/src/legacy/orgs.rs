//! One organization of the first system and everything under it, in one transaction.

use std::collections::HashSet;

use anyhow::Context;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};

use super::Summary;
use super::rows::*;
use crate::crypto::SecretBox;
use crate::domain::rules::MAX_MESSAGE_CONTENT;
use crate::domain::{ConversationStatus, MemoryStatus, ProjectKind, WorkspaceCapability};

type Tx = Transaction<'static, Postgres>;

async fn exists(tx: &mut Tx, table: &str, id: &str) -> anyhow::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

/// `value` if it is one of `allowed`, else `fallback` (the first system stored these unchecked).
fn one_of(value: &str, allowed: &[&'static str], fallback: &'static str) -> &'static str {
    allowed
        .iter()
        .find(|a| **a == value)
        .copied()
        .unwrap_or(fallback)
}

pub async fn import(
    source: &PgPool,
    target: &PgPool,
    secrets: &SecretBox,
    org: &LegacyOrg,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let mut tx = target.begin().await?;
    organization(&mut tx, org, summary).await?;
    members(source, &mut tx, org, summary).await?;
    providers(source, &mut tx, secrets, org, summary).await?;
    let projects = projects(source, &mut tx, secrets, org, summary).await?;
    let conversations = conversations(source, &mut tx, org, &projects, summary).await?;
    memories(source, &mut tx, org, &projects, &conversations, summary).await?;
    tx.commit().await?;
    Ok(())
}

async fn organization(tx: &mut Tx, org: &LegacyOrg, summary: &mut Summary) -> anyhow::Result<()> {
    if exists(tx, "cloud_organizations", &org.id).await? {
        summary.unchanged("organizations");
        return Ok(());
    }
    // Slugs are unique here (not in the first system): a taken one gets a stable suffix.
    let taken: Option<String> =
        sqlx::query_scalar("SELECT id FROM cloud_organizations WHERE slug = $1")
            .bind(&org.slug)
            .fetch_optional(&mut **tx)
            .await?;
    let slug = match taken {
        Some(_) => format!(
            "{}-{}",
            org.slug,
            &hex::encode(Sha256::digest(org.id.as_bytes()))[..8]
        ),
        None => org.slug.clone(),
    };
    let owner = exists(tx, "cloud_users", &org.owner_user_id)
        .await?
        .then_some(org.owner_user_id.as_str());
    let personal = org.id == format!("org-{}", org.owner_user_id);
    let done = sqlx::query(
        "INSERT INTO cloud_organizations (id, owner_user_id, slug, name, is_personal, created_at, updated_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
    )
    .bind(&org.id)
    .bind(owner)
    .bind(&slug)
    .bind(&org.name)
    .bind(personal)
    .bind(org.created_at)
    .bind(org.updated_at)
    .execute(&mut **tx)
    .await?;
    summary.count("organizations", done);
    Ok(())
}

async fn members(
    source: &PgPool,
    tx: &mut Tx,
    org: &LegacyOrg,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let rows: Vec<LegacyMembership> = sqlx::query_as(
        "SELECT user_id, role, created_at FROM cloud_organization_memberships \
         WHERE organization_id = $1 ORDER BY created_at",
    )
    .bind(&org.id)
    .fetch_all(source)
    .await
    .context("reading cloud_organization_memberships")?;
    for m in rows {
        if !exists(tx, "cloud_users", &m.user_id).await? {
            summary.skipped("memberships", &format!("{}: user not imported", m.user_id));
            continue;
        }
        // The first system made ordinary users `member` of their own organization (so they
        // could not invite anyone); the owner is an owner here.
        let role = if m.user_id == org.owner_user_id {
            "owner"
        } else {
            one_of(
                &m.role,
                &["owner", "admin", "member", "billing_viewer"],
                "member",
            )
        };
        let done = sqlx::query(
            "INSERT INTO cloud_organization_memberships (organization_id, user_id, role, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$4) ON CONFLICT DO NOTHING",
        )
        .bind(&org.id)
        .bind(&m.user_id)
        .bind(role)
        .bind(m.created_at)
        .execute(&mut **tx)
        .await?;
        summary.count("memberships", done);
    }
    Ok(())
}

async fn providers(
    source: &PgPool,
    tx: &mut Tx,
    secrets: &SecretBox,
    org: &LegacyOrg,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let rows: Vec<LegacyProvider> = sqlx::query_as(
        "SELECT p.id, p.kind, p.label, p.base_url, p.credential_type, p.models_json, p.default_model, \
                p.supports_cloud_runtime, p.created_at, p.updated_at, s.secret \
         FROM cloud_organization_providers p \
         LEFT JOIN cloud_organization_provider_secrets s ON s.provider_id = p.id \
         WHERE p.organization_id = $1 ORDER BY p.created_at, p.id",
    )
    .bind(&org.id)
    .fetch_all(source)
    .await
    .context("reading cloud_organization_providers")?;
    for p in rows {
        if exists(tx, "cloud_organization_providers", &p.id).await? {
            summary.unchanged("providers");
            continue;
        }
        let sealed = match p.secret.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(secret) => Some(secrets.seal(secret, &p.id)?),
            None => None,
        };
        let models = match p.models_json {
            Value::Array(items) => Value::Array(items),
            _ => Value::Array(Vec::new()),
        };
        let done = sqlx::query(
            "INSERT INTO cloud_organization_providers (id, organization_id, kind, label, base_url, \
               credential_type, models_json, default_model, supports_cloud_runtime, secret_ciphertext, \
               secret_nonce, secret_key_id, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
        )
        .bind(&p.id)
        .bind(&org.id)
        .bind(&p.kind)
        .bind(&p.label)
        .bind(&p.base_url)
        .bind(one_of(&p.credential_type, &["api_key", "oauth"], "api_key"))
        .bind(models)
        .bind(&p.default_model)
        .bind(p.supports_cloud_runtime)
        .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
        .bind(sealed.as_ref().map(|s| s.nonce.clone()))
        .bind(sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut **tx)
        .await?;
        summary.count("providers", done);
    }
    Ok(())
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Imports the organization's projects; returns the ids now present here.
async fn projects(
    source: &PgPool,
    tx: &mut Tx,
    secrets: &SecretBox,
    org: &LegacyOrg,
    summary: &mut Summary,
) -> anyhow::Result<HashSet<String>> {
    let rows: Vec<LegacyProject> = sqlx::query_as(
        "SELECT p.id, p.user_id, p.name, p.repo_name, p.project_kind, p.workspace_capability, \
                p.repository_json, p.cloud_status, p.created_at, p.updated_at, s.access_token \
         FROM cloud_projects p \
         LEFT JOIN cloud_project_repository_secrets s ON s.project_id = p.id \
         WHERE p.organization_id = $1 ORDER BY p.created_at, p.id",
    )
    .bind(&org.id)
    .fetch_all(source)
    .await
    .context("reading cloud_projects")?;
    let mut present = HashSet::new();
    for p in rows {
        present.insert(p.id.clone());
        if exists(tx, "cloud_projects", &p.id).await? {
            summary.unchanged("projects");
            continue;
        }
        let kind = ProjectKind::parse(&p.project_kind).unwrap_or(ProjectKind::ConversationOnly);
        let capability = match WorkspaceCapability::parse(&p.workspace_capability) {
            Some(c) => c,
            None if kind == ProjectKind::Repository => WorkspaceCapability::FullTools,
            None => WorkspaceCapability::ChatOnly,
        };
        // Only repository projects keep a repository (the first system exposed the one of
        // conversation-only projects too).
        let repo = p
            .repository_json
            .as_ref()
            .filter(|_| kind == ProjectKind::Repository);
        let clone_url = text(repo.and_then(|r| r.get("cloneUrl")));
        let branch = text(repo.and_then(|r| r.get("defaultBranch")));
        let auth_mode = clone_url.as_ref().map(|_| {
            match text(repo.and_then(|r| r.get("authMode"))).as_deref() {
                Some("token") => "token",
                _ => "none",
            }
        });
        let token = clone_url
            .as_ref()
            .and(
                p.access_token
                    .clone()
                    .or_else(|| text(repo.and_then(|r| r.get("accessToken")))),
            )
            .filter(|t| !t.trim().is_empty());
        let sealed = match token {
            Some(t) => Some(secrets.seal(t.trim(), &p.id)?),
            None => None,
        };
        let creator = exists(tx, "cloud_users", &p.user_id)
            .await?
            .then_some(p.user_id.as_str());
        let done = sqlx::query(
            "INSERT INTO cloud_projects (id, organization_id, created_by, name, repo_name, project_kind, \
               workspace_capability, repository_clone_url, repository_default_branch, repository_auth_mode, \
               repository_token_ciphertext, repository_token_nonce, repository_token_key_id, cloud_status, \
               created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)",
        )
        .bind(&p.id)
        .bind(&org.id)
        .bind(creator)
        .bind(&p.name)
        .bind(&p.repo_name)
        .bind(kind.as_str())
        .bind(capability.as_str())
        .bind(&clone_url)
        .bind(&branch)
        .bind(auth_mode)
        .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
        .bind(sealed.as_ref().map(|s| s.nonce.clone()))
        .bind(sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(&p.cloud_status)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut **tx)
        .await?;
        summary.count("projects", done);
    }
    Ok(present)
}

/// Imports the conversations of the organization's projects with their transcripts; returns the
/// ids now present here.
async fn conversations(
    source: &PgPool,
    tx: &mut Tx,
    org: &LegacyOrg,
    projects: &HashSet<String>,
    summary: &mut Summary,
) -> anyhow::Result<HashSet<String>> {
    let ids: Vec<String> = projects.iter().cloned().collect();
    let rows: Vec<LegacyConversation> = sqlx::query_as(
        "SELECT c.id, c.user_id, c.project_id, c.title, c.status, c.model_provider, c.model_id, \
                c.created_at, c.updated_at, m.messages_json \
         FROM cloud_conversations c \
         LEFT JOIN cloud_conversation_messages m ON m.conversation_id = c.id \
         WHERE c.project_id = ANY($1) ORDER BY c.created_at, c.id",
    )
    .bind(&ids)
    .fetch_all(source)
    .await
    .context("reading cloud_conversations")?;
    let mut present = HashSet::new();
    for c in rows {
        present.insert(c.id.clone());
        if exists(tx, "cloud_conversations", &c.id).await? {
            summary.unchanged("conversations");
        } else {
            let creator = exists(tx, "cloud_users", &c.user_id)
                .await?
                .then_some(c.user_id.as_str());
            let done = sqlx::query(
                "INSERT INTO cloud_conversations (id, organization_id, project_id, created_by, title, \
                   status, model_provider, model_id, created_at, updated_at) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            )
            .bind(&c.id)
            .bind(&org.id)
            .bind(&c.project_id)
            .bind(creator)
            .bind(&c.title)
            .bind(ConversationStatus::parse(&c.status).unwrap_or(ConversationStatus::Active).as_str())
            .bind(&c.model_provider)
            .bind(&c.model_id)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut **tx)
            .await?;
            summary.count("conversations", done);
        }
        transcript(tx, &c, summary).await?;
    }
    Ok(present)
}

/// The conversation's messages, unless its transcript here already has some.
async fn transcript(
    tx: &mut Tx,
    c: &LegacyConversation,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let Some(Value::Array(messages)) = &c.messages_json else {
        return Ok(());
    };
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cloud_conversation_messages WHERE conversation_id = $1",
    )
    .bind(&c.id)
    .fetch_one(&mut **tx)
    .await?;
    if held > 0 {
        summary.unchanged("transcripts");
        return Ok(());
    }
    let fallback_ts = c.created_at.timestamp_millis();
    let mut seen = HashSet::new();
    for (position, m) in messages.iter().enumerate() {
        let mut id = text(m.get("id")).unwrap_or_else(|| format!("message-{position}"));
        if !seen.insert(id.clone()) {
            id = format!("{id}-{position}");
            seen.insert(id.clone());
        }
        let role = text(m.get("role")).unwrap_or_else(|| "user".into());
        let timestamp = match m.get("timestamp") {
            Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis()),
            _ => None,
        }
        .unwrap_or(fallback_ts);
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let content: String = content.chars().take(MAX_MESSAGE_CONTENT).collect();
        sqlx::query(
            "INSERT INTO cloud_conversation_messages (conversation_id, position, id, role, timestamp_ms, content) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(&c.id)
        // Positions start at 1 (lists page after position 0).
        .bind(position as i64 + 1)
        .bind(&id)
        .bind(&role)
        .bind(timestamp)
        .bind(content.replace('\0', ""))
        .execute(&mut **tx)
        .await?;
        summary.created("messages");
    }
    Ok(())
}

async fn memories(
    source: &PgPool,
    tx: &mut Tx,
    org: &LegacyOrg,
    projects: &HashSet<String>,
    conversations: &HashSet<String>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let rows: Vec<LegacyMemory> = sqlx::query_as(
        "SELECT id, user_id, project_id, scope, kind, title, content, tags_json, topic_key, confidence, \
                schema_version, reinforced_at, last_used_at, times_used, source_conversation_id, \
                origin_type, status, visibility, fingerprint, archived, source, created_at, updated_at \
         FROM cloud_memories WHERE organization_id = $1 ORDER BY created_at, id",
    )
    .bind(&org.id)
    .fetch_all(source)
    .await
    .context("reading cloud_memories")?;
    for m in rows {
        let (user, project) = match m.scope.as_str() {
            "global" => match &m.user_id {
                Some(u) if exists(tx, "cloud_users", u).await? => (Some(u.as_str()), None),
                _ => {
                    summary.skipped("memories", &format!("{}: owner not imported", m.id));
                    continue;
                }
            },
            "project" => match &m.project_id {
                Some(p) if projects.contains(p) => (None, Some(p.as_str())),
                _ => {
                    summary.skipped("memories", &format!("{}: project not imported", m.id));
                    continue;
                }
            },
            other => {
                summary.skipped("memories", &format!("{}: unknown scope {other:?}", m.id));
                continue;
            }
        };
        let tags = match &m.tags_json {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter(|t| t.as_str().is_some_and(|s| !s.trim().is_empty()))
                    .cloned()
                    .collect(),
            ),
            _ => Value::Array(Vec::new()),
        };
        let conversation = m
            .source_conversation_id
            .as_deref()
            .filter(|c| conversations.contains(*c));
        let done = sqlx::query(
            "INSERT INTO cloud_memories (id, organization_id, user_id, project_id, scope, kind, title, \
               content, tags_json, topic_key, confidence, schema_version, reinforced_at, last_used_at, \
               times_used, source_conversation_id, origin_type, status, visibility, fingerprint, \
               archived, source, created_by, created_at, updated_at, search_document) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25, \
               to_tsvector('simple', coalesce($7,'') || ' ' || $8 || ' ' || $10 || ' ' || \
                 coalesce((SELECT string_agg(x, ' ') FROM jsonb_array_elements_text($9) x), '') || ' ' || $6)) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&m.id)
        .bind(&org.id)
        .bind(user)
        .bind(project)
        .bind(&m.scope)
        .bind(&m.kind)
        .bind(&m.title)
        .bind(&m.content)
        .bind(tags)
        .bind(&m.topic_key)
        .bind(m.confidence.unwrap_or(0.5).clamp(0.0, 1.0))
        .bind(m.schema_version.unwrap_or(1))
        .bind(m.reinforced_at)
        .bind(m.last_used_at)
        .bind(m.times_used.unwrap_or(0).max(0))
        .bind(conversation)
        .bind(m.origin_type.as_deref().unwrap_or("manual"))
        .bind(m.status.as_deref().and_then(MemoryStatus::parse).unwrap_or(MemoryStatus::Active).as_str())
        .bind(one_of(m.visibility.as_deref().unwrap_or(""), &["private", "shared"], "private"))
        .bind(&m.fingerprint)
        .bind(m.archived.unwrap_or(false))
        .bind(m.source.as_deref().unwrap_or("manual"))
        .bind(m.user_id.as_deref().filter(|_| user.is_some()))
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut **tx)
        .await?;
        summary.count("memories", done);
    }
    Ok(())
}
