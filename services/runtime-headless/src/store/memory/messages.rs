//! Agent messages in memory.

use async_trait::async_trait;

use super::{MemoryStore, fenced};
use crate::domain::Lease;
use crate::domain::message::AgentMessage;
use crate::store::{MessageStore, MessageTally, StoreResult, StoredMessage};

#[async_trait]
impl MessageStore for MemoryStore {
    async fn append_messages(
        &self,
        session_id: &str,
        lease: &Lease,
        turn_id: i64,
        messages: &[AgentMessage],
    ) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        if fenced(&mut inner, session_id, lease).is_none() {
            return Ok(false);
        }
        let list = inner.messages.entry(session_id.to_owned()).or_default();
        for m in messages {
            match list.iter_mut().find(|s| s.message.id() == m.id()) {
                Some(existing) => existing.message = m.clone(),
                None => list.push(StoredMessage {
                    turn_id: Some(turn_id),
                    message: m.clone(),
                }),
            }
        }
        Ok(true)
    }

    async fn session_messages(&self, session_id: &str) -> StoreResult<Vec<StoredMessage>> {
        Ok(self
            .lock()?
            .messages
            .get(session_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn turn_messages(&self, turn_id: i64) -> StoreResult<Vec<AgentMessage>> {
        let inner = self.lock()?;
        let Some(session) = inner.turns.get(&turn_id).map(|t| t.session_id.clone()) else {
            return Ok(Vec::new());
        };
        Ok(inner
            .messages
            .get(&session)
            .map(|l| {
                l.iter()
                    .filter(|m| m.turn_id == Some(turn_id))
                    .map(|m| m.message.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn session_tally(&self, session_id: &str) -> StoreResult<MessageTally> {
        let inner = self.lock()?;
        let mut tally = MessageTally::default();
        for m in inner.messages.get(session_id).into_iter().flatten() {
            tally.ids.push(m.message.id().to_owned());
            if let AgentMessage::Assistant(a) = &m.message {
                tally.usage.add(a.usage);
            }
        }
        Ok(tally)
    }
}
