//! Workspace snapshots on Postgres (`runtime_workspaces`).

use async_trait::async_trait;
use sqlx::Row;

use super::PgStore;
use crate::store::{StoreError, StoreResult, WorkspaceKind, WorkspaceSnapshot, WorkspaceStore};

#[async_trait]
impl WorkspaceStore for PgStore {
    async fn save_snapshot(&self, s: &WorkspaceSnapshot) -> StoreResult<i64> {
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO runtime_workspaces (conversation_id, kind, generation, snapshot, \
               size_bytes, base_commit, branch, saved_by, turn_id) \
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (conversation_id) DO UPDATE SET kind = EXCLUDED.kind, \
               generation = runtime_workspaces.generation + 1, snapshot = EXCLUDED.snapshot, \
               size_bytes = EXCLUDED.size_bytes, base_commit = EXCLUDED.base_commit, \
               branch = EXCLUDED.branch, saved_by = EXCLUDED.saved_by, \
               turn_id = EXCLUDED.turn_id, updated_at = now() \
             RETURNING generation",
        )
        .bind(&s.conversation_id)
        .bind(s.kind.as_str())
        .bind(&s.data)
        .bind(s.data.len() as i64)
        .bind(&s.base_commit)
        .bind(&s.branch)
        .bind(&s.saved_by)
        .bind(s.turn_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(generation)
    }

    async fn snapshot_generation(&self, conversation_id: &str) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT generation FROM runtime_workspaces WHERE conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn load_snapshot(&self, conversation_id: &str) -> StoreResult<Option<WorkspaceSnapshot>> {
        let row = sqlx::query(
            "SELECT conversation_id, kind, generation, snapshot, base_commit, branch, saved_by, \
             turn_id FROM runtime_workspaces WHERE conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let kind: String = r.try_get("kind")?;
        Ok(Some(WorkspaceSnapshot {
            conversation_id: r.try_get("conversation_id")?,
            kind: WorkspaceKind::parse(&kind)
                .ok_or_else(|| StoreError::Other(format!("unknown workspace kind {kind:?}")))?,
            generation: r.try_get("generation")?,
            data: r.try_get("snapshot")?,
            base_commit: r.try_get("base_commit")?,
            branch: r.try_get("branch")?,
            saved_by: r
                .try_get::<Option<String>, _>("saved_by")?
                .unwrap_or_default(),
            turn_id: r.try_get("turn_id")?,
        }))
    }

    async fn delete_snapshot(&self, conversation_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM runtime_workspaces WHERE conversation_id = $1")
            .bind(conversation_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
