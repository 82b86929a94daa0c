//! Agent messages on Postgres (`runtime_messages`).

use async_trait::async_trait;
use sqlx::Row;

use super::{ACTIVE, PgStore};
use crate::domain::Lease;
use crate::domain::message::AgentMessage;
use crate::domain::message::TokenUsage;
use crate::store::{MessageStore, MessageTally, StoreError, StoreResult, StoredMessage};

fn decode(value: serde_json::Value) -> StoreResult<AgentMessage> {
    serde_json::from_value(value).map_err(|e| StoreError::Other(format!("stored message: {e}")))
}

#[async_trait]
impl MessageStore for PgStore {
    async fn append_messages(
        &self,
        session_id: &str,
        lease: &Lease,
        turn_id: i64,
        messages: &[AgentMessage],
    ) -> StoreResult<bool> {
        if messages.is_empty() {
            return Ok(true);
        }
        let ids: Vec<&str> = messages.iter().map(AgentMessage::id).collect();
        let bodies: Vec<serde_json::Value> = messages.iter().map(AgentMessage::to_json).collect();
        // One statement: the fence and every row; `WITH ORDINALITY` keeps the given order.
        let done = sqlx::query(&format!(
            "WITH held AS (SELECT id FROM runtime_sessions WHERE id = $1 AND owner_id = $2 \
               AND lease_version = $3 AND {ACTIVE}) \
             INSERT INTO runtime_messages (session_id, message_id, turn_id, message) \
             SELECT held.id, m.id, $4, m.body FROM held, \
               unnest($5::text[], $6::jsonb[]) WITH ORDINALITY AS m(id, body, n) ORDER BY m.n \
             ON CONFLICT (session_id, message_id) DO UPDATE SET message = EXCLUDED.message"
        ))
        .bind(session_id)
        .bind(&lease.owner)
        .bind(lease.version)
        .bind(turn_id)
        .bind(&ids)
        .bind(&bodies)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn session_messages(&self, session_id: &str) -> StoreResult<Vec<StoredMessage>> {
        let rows = sqlx::query(
            "SELECT turn_id, message FROM runtime_messages WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredMessage {
                    turn_id: r.try_get("turn_id")?,
                    message: decode(r.try_get("message")?)?,
                })
            })
            .collect()
    }

    async fn turn_messages(&self, turn_id: i64) -> StoreResult<Vec<AgentMessage>> {
        let rows =
            sqlx::query("SELECT message FROM runtime_messages WHERE turn_id = $1 ORDER BY seq")
                .bind(turn_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| decode(r.try_get("message")?)).collect()
    }

    async fn session_tally(&self, session_id: &str) -> StoreResult<MessageTally> {
        // Only the ids leave the database; the token sums are added up where the rows are.
        let row = sqlx::query(
            "SELECT COALESCE(array_agg(message_id ORDER BY seq), '{}') AS ids, \
               COALESCE(sum((message->'usage'->>'input')::bigint) \
                 FILTER (WHERE message->>'role' = 'assistant'), 0)::bigint AS input, \
               COALESCE(sum((message->'usage'->>'output')::bigint) \
                 FILTER (WHERE message->>'role' = 'assistant'), 0)::bigint AS output \
             FROM runtime_messages WHERE session_id = $1",
        )
        .bind(session_id)
        .fetch_one(&self.pool)
        .await?;
        let tokens = |name: &str| -> StoreResult<u64> {
            let n: i64 = row.try_get(name)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(MessageTally {
            ids: row.try_get("ids")?,
            usage: TokenUsage::new(tokens("input")?, tokens("output")?),
        })
    }
}
