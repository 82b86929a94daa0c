//! A short-lived cache of runtime grants, so the hot path (commands, snapshots, acquire) does
//! not wait on cloud-api for every call while the grant is still enforced on every call.
//!
//! An entry is used for at most `ttl` (one second by default): a revoked token, a removed
//! member or a changed plan is refused within that time, without any invalidation message.
//! Past half its life an entry is still served while one background refresh replaces it, so a
//! steady client never waits; concurrent misses for one key share a single request. Denials
//! and errors are never cached (a newly granted user is not refused for a second, an outage
//! is not remembered). Keys hold a SHA-256 of the bearer token, never the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloud_common::Secret;
use cloud_common::internal::{InternalCallError, RuntimeSessionAccessRequest};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{AccessRequest, GrantClient, RuntimeGrant};
use crate::domain::TranscriptMessage;

type Key = [u8; 32];
/// What waiters of a shared fetch get (an error travels as its text).
type Shared = Result<Option<RuntimeGrant>, String>;

enum Entry {
    Ready {
        grant: Box<RuntimeGrant>,
        at: Instant,
        refreshing: bool,
    },
    /// A fetch is in flight; waiters subscribe.
    Pending(watch::Receiver<Option<Shared>>),
}

pub struct CachedGrants {
    inner: Arc<dyn GrantClient>,
    ttl: Duration,
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
    /// Bound on entries (oldest evicted): one per (token, instance, project, conversation).
    capacity: usize,
}

fn key(req: &AccessRequest) -> Key {
    let mut h = Sha256::new();
    for part in [
        Some(req.access_token.as_str()),
        Some(req.cloud_instance_id.as_str()),
        req.project_id.as_deref(),
        req.conversation_id.as_deref(),
    ] {
        h.update(part.unwrap_or("\u{0}none").as_bytes());
        h.update([0xff]);
    }
    h.finalize().into()
}

impl CachedGrants {
    pub fn new(inner: Arc<dyn GrantClient>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Arc::new(Mutex::new(HashMap::new())),
            capacity: 50_000,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the fetch for `k` (the caller marked the entry pending or refreshing).
    fn fetch(&self, k: Key, req: AccessRequest, tx: Option<watch::Sender<Option<Shared>>>) {
        let inner = self.inner.clone();
        let entries = self.entries.clone();
        let capacity = self.capacity;
        tokio::spawn(async move {
            let result = inner.runtime_access(&req).await;
            {
                let mut map = entries.lock().unwrap_or_else(|p| p.into_inner());
                match &result {
                    Ok(Some(grant)) => {
                        if map.len() >= capacity && !map.contains_key(&k) {
                            evict_oldest(&mut map);
                        }
                        map.insert(
                            k,
                            Entry::Ready {
                                grant: Box::new(grant.clone()),
                                at: Instant::now(),
                                refreshing: false,
                            },
                        );
                    }
                    // Denied or failed: forget the key, the next call asks again.
                    _ => {
                        map.remove(&k);
                    }
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Some(result.map_err(|e| e.to_string())));
            }
        });
    }
}

fn evict_oldest(map: &mut HashMap<Key, Entry>) {
    let oldest = map
        .iter()
        .filter_map(|(k, e)| match e {
            Entry::Ready { at, .. } => Some((*k, *at)),
            Entry::Pending(_) => None,
        })
        .min_by_key(|(_, at)| *at)
        .map(|(k, _)| k);
    if let Some(k) = oldest {
        map.remove(&k);
    }
}

#[async_trait]
impl GrantClient for CachedGrants {
    async fn runtime_access(
        &self,
        req: &AccessRequest,
    ) -> Result<Option<RuntimeGrant>, InternalCallError> {
        let k = key(req);
        let now = Instant::now();
        let mut rx = {
            let mut map = self.lock();
            match map.get_mut(&k) {
                Some(Entry::Ready {
                    grant,
                    at,
                    refreshing,
                }) if now.duration_since(*at) < self.ttl => {
                    let grant = grant.clone();
                    if now.duration_since(*at) >= self.ttl / 2 && !*refreshing {
                        *refreshing = true;
                        drop(map);
                        self.fetch(k, req.clone(), None);
                    }
                    return Ok(Some(*grant));
                }
                Some(Entry::Pending(rx)) => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(k, Entry::Pending(rx.clone()));
                    drop(map);
                    self.fetch(k, req.clone(), Some(tx));
                    rx
                }
            }
        };
        loop {
            if let Some(result) = rx.borrow().clone() {
                return result.map_err(InternalCallError::Unreachable);
            }
            if rx.changed().await.is_err() {
                // The fetch task is gone without an answer: ask directly.
                return self.inner.runtime_access(req).await;
            }
        }
    }

    async fn token_is_valid(&self, token: &Secret) -> Result<bool, InternalCallError> {
        self.inner.token_is_valid(token).await
    }

    /// Not cached: it is asked only for snapshots without a token, and must follow a removed
    /// member at once.
    async fn session_access(
        &self,
        req: &RuntimeSessionAccessRequest,
    ) -> Result<bool, InternalCallError> {
        self.inner.session_access(req).await
    }

    async fn conversation_exists(
        &self,
        token: &Secret,
        conversation_id: &str,
    ) -> Result<bool, InternalCallError> {
        self.inner.conversation_exists(token, conversation_id).await
    }

    async fn transcript(
        &self,
        token: &Secret,
        conversation_id: &str,
    ) -> Result<Option<Vec<TranscriptMessage>>, InternalCallError> {
        self.inner.transcript(token, conversation_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        allow: std::sync::atomic::AtomicBool,
    }

    fn grant() -> RuntimeGrant {
        super::super::tests::grant_json(|_| {})
    }

    #[async_trait]
    impl GrantClient for Counting {
        async fn runtime_access(
            &self,
            _req: &AccessRequest,
        ) -> Result<Option<RuntimeGrant>, InternalCallError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(self.allow.load(Ordering::SeqCst).then(grant))
        }
        async fn token_is_valid(&self, _: &Secret) -> Result<bool, InternalCallError> {
            Ok(true)
        }
        async fn session_access(
            &self,
            _: &RuntimeSessionAccessRequest,
        ) -> Result<bool, InternalCallError> {
            Ok(true)
        }
        async fn conversation_exists(
            &self,
            _: &Secret,
            _: &str,
        ) -> Result<bool, InternalCallError> {
            Ok(true)
        }
        async fn transcript(
            &self,
            _: &Secret,
            _: &str,
        ) -> Result<Option<Vec<TranscriptMessage>>, InternalCallError> {
            Ok(None)
        }
    }

    fn req(token: &str) -> AccessRequest {
        AccessRequest {
            access_token: token.into(),
            cloud_instance_id: "i".into(),
            project_id: None,
            conversation_id: Some("c".into()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shares_fetches_refreshes_ahead_and_forgets_revocations_within_the_ttl() {
        let backend = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            allow: std::sync::atomic::AtomicBool::new(true),
        });
        let cache = Arc::new(CachedGrants::new(backend.clone(), Duration::from_secs(1)));
        // Ten concurrent first calls: one request.
        let calls = (0..10).map(|_| {
            let c = cache.clone();
            async move { c.runtime_access(&req("t")).await }
        });
        for r in futures_util::future::join_all(calls).await {
            assert!(r.unwrap().is_some());
        }
        assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
        // Fresh: served from the cache.
        cache.runtime_access(&req("t")).await.unwrap();
        assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
        // Another token is another key.
        cache.runtime_access(&req("other")).await.unwrap();
        assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
        // Past half its life: served at once, refreshed in the background.
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(cache.runtime_access(&req("t")).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(backend.calls.load(Ordering::SeqCst), 3);
        // Revoked: the cached grant is used for at most the TTL, then refused.
        backend.allow.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(cache.runtime_access(&req("t")).await.unwrap().is_none());
        // Denials are not cached.
        backend.allow.store(true, Ordering::SeqCst);
        assert!(cache.runtime_access(&req("t")).await.unwrap().is_some());
    }
}
