//! Redis broker: one Lua script assigns the sequence number, appends to the bounded replay list
//! and publishes, so every replica sees one order and a failure leaves no gap. Keys (prefix
//! `P` = `CHATONS_REALTIME_CHANNEL_PREFIX`):
//!
//! | key | type | content | expiry |
//! |---|---|---|---|
//! | `P<instance>` | channel | each stored event's JSON | — |
//! | `P<instance>:meta` | hash | `epoch`, `seq` | stream TTL after the last publish |
//! | `P<instance>:replay` | list | the last N events' JSON, oldest first | same |
//! | `P<instance>:id:<event id>` | string | `seq:epoch` of a published event id (retry dedup) | 10 min |
//! | `P<instance>:sockets` | sorted set | socket id → lease expiry (ms) | refreshed by heartbeats |
//! | `P:token:<token>` | string | the token's grant (JSON) | token TTL |
//!
//! Instance ids are never empty and never contain `:` (`hub::validate_instance_id`), so no
//! instance key can start with `P:`: websocket tokens have a namespace of their own. (They used
//! to live at `Ptoken:<token>`, the key space of an instance named `token`; a token is still
//! looked up there once, so tokens minted by a replica of the previous release stay valid
//! during a rolling upgrade. Only well-formed tokens are ever looked up, so no client-chosen
//! string reaches an instance's keys.)
//!
//! One subscriber connection per process (`PSUBSCRIBE P*`) feeds the local fan-out; it
//! reconnects with backoff, and after each (re)subscription every local socket catches up from
//! the replay list, so events published meanwhile are delivered (or the socket resyncs).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloud_common::realtime::EventEnvelope;
use cloud_common::server::Shutdown;
use futures_util::{FutureExt, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{
    Broker, BrokerError, BrokerResult, LocalFanout, Published, Replay, StoredEvent, TokenGrant,
    envelope_body, new_epoch,
};
use crate::hub::Snapshot;

const DEDUP_SECONDS: u64 = 600;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

const PUBLISH_LUA: &str = r#"
-- KEYS: meta, replay, dedup   ARGV: channel, body, size, ttl, new epoch, dedup ttl
local prior = redis.call('GET', KEYS[3])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if prior and epoch then
  local sep = string.find(prior, ':', 1, true)
  if sep and string.sub(prior, sep + 1) == epoch then
    return {tonumber(string.sub(prior, 1, sep - 1)), epoch}
  end
end
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local text = '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '",' .. ARGV[2]
redis.call('RPUSH', KEYS[2], text)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[3], seq .. ':' .. epoch, 'EX', ARGV[6])
redis.call('PUBLISH', ARGV[1], text)
return {seq, epoch}
"#;

const READ_LUA: &str = r#"
-- KEYS: meta, replay   ARGV: after seq, new epoch, ttl
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return {epoch, 0, 0, {}}
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local len = redis.call('LLEN', KEYS[2])
local after = tonumber(ARGV[1])
local events = {}
if after < seq and len > 0 then
  local first = seq - len + 1
  local start = after + 1 - first
  if start < 0 then start = 0 end
  events = redis.call('LRANGE', KEYS[2], start, -1)
end
return {epoch, seq, len, events}
"#;

const ACQUIRE_LUA: &str = r#"
-- KEYS: sockets   ARGV: member, lease ms, cap
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"#;

const REFRESH_LUA: &str = r#"
-- KEYS: sockets   ARGV: member, lease ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"#;

pub struct RedisBroker {
    conn: ConnectionManager,
    prefix: String,
    fanout: Arc<LocalFanout>,
    buffer_size: usize,
    stream_ttl: Duration,
    publish: Script,
    read: Script,
    acquire: Script,
    refresh: Script,
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

impl RedisBroker {
    /// Connects the command connection (retrying in the background after failures) and starts
    /// the subscriber task, which runs until `shutdown`.
    pub async fn connect(
        client: redis::Client,
        prefix: String,
        fanout: Arc<LocalFanout>,
        buffer_size: usize,
        stream_ttl: Duration,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(1000);
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT * 3,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not answer within {:?}", CONNECT_TIMEOUT * 3))??;
        tokio::spawn(subscriber(client, prefix.clone(), fanout.clone(), shutdown));
        Ok(Self {
            conn,
            prefix,
            fanout,
            buffer_size: buffer_size.max(1),
            stream_ttl,
            publish: Script::new(PUBLISH_LUA),
            read: Script::new(READ_LUA),
            acquire: Script::new(ACQUIRE_LUA),
            refresh: Script::new(REFRESH_LUA),
        })
    }

    fn key(&self, instance: &str, suffix: &str) -> String {
        format!("{}{instance}:{suffix}", self.prefix)
    }

    fn channel(&self, instance: &str) -> String {
        format!("{}{instance}", self.prefix)
    }

    fn token_key(&self, token: &str) -> String {
        format!("{}:token:{token}", self.prefix)
    }

    /// Where releases before the token namespace stored tokens (see the module doc).
    fn legacy_token_key(&self, token: &str) -> String {
        format!("{}token:{token}", self.prefix)
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, instance: &str, event: &EventEnvelope) -> BrokerResult<Published> {
        let body = envelope_body(event)
            .ok_or_else(|| BrokerError::Corrupt("event does not serialise".into()))?;
        let mut conn = self.conn.clone();
        let (seq, epoch): (u64, String) = self
            .publish
            .key(self.key(instance, "meta"))
            .key(self.key(instance, "replay"))
            .key(self.key(instance, &format!("id:{}", event.id)))
            .arg(self.channel(instance))
            .arg(body)
            .arg(self.buffer_size)
            .arg(self.stream_ttl.as_secs().max(1))
            .arg(new_epoch())
            .arg(DEDUP_SECONDS)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Published { seq, epoch })
    }

    async fn read(&self, instance: &str, after_seq: u64) -> BrokerResult<Replay> {
        let mut conn = self.conn.clone();
        let (epoch, last_seq, len, texts): (String, u64, u64, Vec<String>) = self
            .read
            .key(self.key(instance, "meta"))
            .key(self.key(instance, "replay"))
            .arg(after_seq)
            .arg(new_epoch())
            .arg(self.stream_ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let events = texts
            .into_iter()
            .filter_map(StoredEvent::from_text)
            .map(Arc::new)
            .filter(|e| e.seq > after_seq && *e.epoch == *epoch)
            .collect();
        Ok(Replay {
            snapshot: Snapshot {
                first_seq: last_seq + 1 - len.min(last_seq),
                epoch,
                last_seq,
            },
            events,
        })
    }

    fn fanout(&self) -> &Arc<LocalFanout> {
        &self.fanout
    }

    async fn put_token(&self, token: &str, grant: &TokenGrant, ttl: Duration) -> BrokerResult<()> {
        let value =
            serde_json::to_string(grant).map_err(|e| BrokerError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(self.token_key(token))
            .arg(value)
            .arg("PX")
            .arg(millis)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn take_token(&self, token: &str) -> BrokerResult<Option<TokenGrant>> {
        if !super::token_is_well_formed(token) {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let mut value: Option<String> = conn
            .get_del(self.token_key(token))
            .await
            .map_err(unavailable)?;
        if value.is_none() {
            value = conn
                .get_del(self.legacy_token_key(token))
                .await
                .map_err(unavailable)?;
        }
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn acquire_slot(
        &self,
        instance: &str,
        socket_id: &str,
        cap: usize,
        lease: Duration,
    ) -> BrokerResult<bool> {
        let mut conn = self.conn.clone();
        let ok: i64 = self
            .acquire
            .key(self.key(instance, "sockets"))
            .arg(socket_id)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .arg(cap)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(ok == 1)
    }

    async fn refresh_slot(
        &self,
        instance: &str,
        socket_id: &str,
        lease: Duration,
    ) -> BrokerResult<()> {
        let mut conn = self.conn.clone();
        self.refresh
            .key(self.key(instance, "sockets"))
            .arg(socket_id)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn release_slot(&self, instance: &str, socket_id: &str) -> BrokerResult<()> {
        let mut conn = self.conn.clone();
        conn.zrem::<_, _, i64>(self.key(instance, "sockets"), socket_id)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

/// Escapes glob characters so `PSUBSCRIBE <prefix>*` matches exactly the prefix.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

/// The one subscriber connection of this process: (re)connects with capped exponential backoff,
/// pings to notice dead connections, and after each successful subscription tells every local
/// socket to catch up.
async fn subscriber(
    client: redis::Client,
    prefix: String,
    fanout: Arc<LocalFanout>,
    shutdown: Shutdown,
) {
    let pattern = glob_escape(&prefix);
    let mut backoff = Duration::from_millis(100);
    let mut ever_connected = false;
    while !shutdown.is_triggered() {
        let attempt = async {
            let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(COMMAND_TIMEOUT, pubsub.psubscribe(&pattern))
                .await
                .map_err(|_| "PSUBSCRIBE timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub)
        };
        match attempt.await {
            Ok(pubsub) => {
                if ever_connected {
                    tracing::info!("Redis subscription re-established; sockets catch up.");
                }
                ever_connected = true;
                backoff = Duration::from_millis(100);
                // Anything published while we were not subscribed is in the replay lists.
                fanout.reset_all();
                let (mut sink, mut stream) = pubsub.split();
                let mut ping = tokio::time::interval(Duration::from_secs(5));
                ping.tick().await;
                loop {
                    tokio::select! {
                        () = shutdown.wait() => return,
                        msg = stream.next() => {
                            let Some(msg) = msg else {
                                tracing::warn!("Redis subscription lost; reconnecting.");
                                break;
                            };
                            // Everything already received goes out together: a burst becomes
                            // one write per socket instead of one per event.
                            let mut batch = Batch::default();
                            batch.add(&prefix, &fanout, msg);
                            let mut lost = false;
                            while batch.len < MAX_BATCH {
                                match stream.next().now_or_never() {
                                    Some(Some(msg)) => batch.add(&prefix, &fanout, msg),
                                    Some(None) => {
                                        lost = true;
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            batch.deliver(&fanout);
                            if lost {
                                tracing::warn!("Redis subscription lost; reconnecting.");
                                break;
                            }
                        }
                        _ = ping.tick() => {
                            let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(pong, Ok(Ok(_))) {
                                tracing::warn!("Redis subscription did not answer PING; reconnecting.");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Cannot subscribe to Redis.");
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Events per fan-out round at most (bounds the time one round holds the subscriber task).
const MAX_BATCH: usize = 256;

/// Received events grouped in runs of one instance, in arrival order.
#[derive(Default)]
struct Batch {
    runs: Vec<(String, Vec<Arc<StoredEvent>>)>,
    len: usize,
}

impl Batch {
    fn add(&mut self, prefix: &str, fanout: &LocalFanout, msg: redis::Msg) {
        self.len += 1;
        let channel = msg.get_channel_name();
        let Some(instance) = channel.strip_prefix(prefix) else {
            return;
        };
        let same = self.runs.last().is_some_and(|(i, _)| i == instance);
        if !same && !fanout.has(instance) {
            return;
        }
        let Some(event) = StoredEvent::from_json(msg.get_payload_bytes()) else {
            tracing::warn!(%instance, "Unparsable event on the Redis channel; skipped.");
            return;
        };
        match self.runs.last_mut() {
            Some((i, run)) if i == instance => run.push(Arc::new(event)),
            _ => self.runs.push((instance.to_owned(), vec![Arc::new(event)])),
        }
    }

    fn deliver(self, fanout: &LocalFanout) {
        for (instance, run) in self.runs {
            let evicted = fanout.send(&instance, &run);
            if evicted > 0 {
                tracing::debug!(%instance, evicted, "Slow sockets evicted.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_glob_characters() {
        assert_eq!(glob_escape("test:abc:"), "test:abc:*");
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]*");
    }
}
