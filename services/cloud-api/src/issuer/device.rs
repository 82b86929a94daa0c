//! RFC 8628 device authorization grants: a CLI or a headless machine shows a short user code,
//! the user approves it in a browser where they are signed in, and meanwhile the device polls the
//! token endpoint.
//!
//! Both codes are stored only as SHA-256 hashes. What one poll does (expiry, `slow_down`, single
//! use) is one pure function, [`poll_step`], that both stores apply under their lock (the
//! memory map's, a Postgres row lock), so the two cannot disagree on the rules.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::PgPool;

use crate::domain::{DeviceGrantState, StoreError, Timestamp, UserId};

/// Consonants only, without look-alikes: no vowels (no words), no 0/O, 1/I/L pairs to confuse.
pub const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// 20^8 ≈ 2^34.6 codes: with lookups rate limited per account and per IP and a lifetime of
/// minutes, guessing a live one is hopeless (RFC 8628 §6.1).
pub const USER_CODE_LEN: usize = 8;
/// How much `slow_down` raises a grant's interval (RFC 8628 §3.5), and its ceiling.
pub const SLOW_DOWN_STEP_SECS: i32 = 5;
pub const MAX_INTERVAL_SECS: i32 = 60;

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceGrant {
    pub device_code_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    pub scope: String,
    pub interval_secs: i32,
    pub state: DeviceGrantState,
    /// Who decided, and when they last authenticated (the id_token's `auth_time`).
    pub user_id: Option<UserId>,
    pub auth_time: Option<Timestamp>,
    /// How they signed in (see `Session::amr`).
    pub amr: Option<String>,
    pub last_polled_at: Option<Timestamp>,
    pub expires_at: Timestamp,
}

/// What a poll tells the device.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    Unknown,
    Expired,
    /// Polled sooner than the interval: the interval grew by [`SLOW_DOWN_STEP_SECS`] to this.
    SlowDown(i32),
    Pending,
    Denied,
    /// The user approved: the grant (now consumed) to issue tokens for.
    Approved(DeviceGrant),
    /// Redeemed before: a device code is good for one token response.
    AlreadyRedeemed,
}

/// The user's answer on the verification page.
#[derive(Debug, Clone)]
pub struct Decision {
    pub user: UserId,
    pub auth_time: Timestamp,
    pub amr: String,
    pub approve: bool,
}

/// One poll of `grant` at `now`: the grant as it is afterwards, and the outcome.
pub fn poll_step(grant: &DeviceGrant, now: Timestamp) -> (DeviceGrant, PollOutcome) {
    let mut next = grant.clone();
    match grant.state {
        DeviceGrantState::Consumed => return (next, PollOutcome::AlreadyRedeemed),
        _ if grant.expires_at <= now => return (next, PollOutcome::Expired),
        DeviceGrantState::Denied => return (next, PollOutcome::Denied),
        DeviceGrantState::Pending | DeviceGrantState::Approved => {}
    }
    // A tenth of the interval is forgiven: timers and networks jitter.
    let too_fast = grant.last_polled_at.is_some_and(|last| {
        now < last + chrono::Duration::milliseconds(i64::from(grant.interval_secs) * 900)
    });
    next.last_polled_at = Some(now);
    let outcome = if too_fast {
        next.interval_secs = (grant.interval_secs + SLOW_DOWN_STEP_SECS).min(MAX_INTERVAL_SECS);
        PollOutcome::SlowDown(next.interval_secs)
    } else if grant.state == DeviceGrantState::Pending {
        PollOutcome::Pending
    } else {
        next.state = DeviceGrantState::Consumed;
        PollOutcome::Approved(next.clone())
    };
    (next, outcome)
}

/// A fresh user code, normalized (no separator): see [`display_user_code`].
pub fn new_user_code() -> String {
    crate::crypto::random_code(USER_CODE_ALPHABET, USER_CODE_LEN)
}

/// `BCDFGHJK` → `BCDF-GHJK`: two groups of four are easier to read out and type.
pub fn display_user_code(normalized: &str) -> String {
    let (a, b) = normalized.split_at(normalized.len().min(USER_CODE_LEN / 2));
    format!("{a}-{b}")
}

/// What the user typed (any case, with or without separator and spaces) as the normalized code,
/// or `None` when it cannot be one.
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

#[async_trait]
pub trait DeviceGrants: Send + Sync + 'static {
    /// `Conflict` when either code's hash is taken (the caller draws a new user code).
    async fn insert(&self, grant: &DeviceGrant) -> Result<(), StoreError>;
    /// The pending, unexpired grant a user code names.
    async fn pending_by_user_code(
        &self,
        user_code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<DeviceGrant>, StoreError>;
    /// Approves or denies the grant if it is still pending and unexpired; `false` otherwise.
    async fn decide(
        &self,
        user_code_hash: &str,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// One poll by `client_id` ([`poll_step`]), atomic with respect to concurrent polls and
    /// decisions. Another client's device code is `Unknown` (and left as it was).
    async fn poll(
        &self,
        device_code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<PollOutcome, StoreError>;
    /// Deletes grants that expired before `before` (housekeeping).
    async fn purge_expired(&self, before: Timestamp) -> Result<u64, StoreError>;
}

pub struct PgDeviceGrants(pub PgPool);

type GrantRow = (
    String,
    String,
    String,
    String,
    i32,
    String,
    Option<String>,
    Option<Timestamp>,
    Option<Timestamp>,
    Timestamp,
    Option<String>,
);

const COLUMNS: &str = "device_code_hash, user_code_hash, client_id, scope, interval_secs, state, \
                       user_id, auth_time, last_polled_at, expires_at, amr";

fn grant_of(r: GrantRow) -> Result<DeviceGrant, StoreError> {
    Ok(DeviceGrant {
        device_code_hash: r.0,
        user_code_hash: r.1,
        client_id: r.2,
        scope: r.3,
        interval_secs: r.4,
        state: DeviceGrantState::try_from(r.5).map_err(StoreError::Internal)?,
        user_id: r.6.map(UserId),
        auth_time: r.7,
        last_polled_at: r.8,
        expires_at: r.9,
        amr: r.10,
    })
}

#[async_trait]
impl DeviceGrants for PgDeviceGrants {
    async fn insert(&self, g: &DeviceGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cloud_oidc_device_grants
               (device_code_hash, user_code_hash, client_id, scope, interval_secs, state,
                user_id, auth_time, last_polled_at, expires_at, amr)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&g.device_code_hash)
        .bind(&g.user_code_hash)
        .bind(&g.client_id)
        .bind(&g.scope)
        .bind(g.interval_secs)
        .bind(g.state.as_str())
        .bind(g.user_id.as_ref().map(UserId::as_str))
        .bind(g.auth_time)
        .bind(g.last_polled_at)
        .bind(g.expires_at)
        .bind(&g.amr)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn pending_by_user_code(
        &self,
        user_code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<DeviceGrant>, StoreError> {
        let row: Option<GrantRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM cloud_oidc_device_grants
              WHERE user_code_hash = $1 AND state = 'pending' AND expires_at > $2"
        ))
        .bind(user_code_hash)
        .bind(now)
        .fetch_optional(&self.0)
        .await?;
        row.map(grant_of).transpose()
    }

    async fn decide(
        &self,
        user_code_hash: &str,
        d: &Decision,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let state = if d.approve {
            DeviceGrantState::Approved
        } else {
            DeviceGrantState::Denied
        };
        let done = sqlx::query(
            "UPDATE cloud_oidc_device_grants
                SET state = $3, user_id = $4, auth_time = $5, amr = $6
              WHERE user_code_hash = $1 AND state = 'pending' AND expires_at > $2",
        )
        .bind(user_code_hash)
        .bind(now)
        .bind(state.as_str())
        .bind(d.user.as_str())
        .bind(d.auth_time)
        .bind(&d.amr)
        .execute(&self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn poll(
        &self,
        device_code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<PollOutcome, StoreError> {
        let mut tx = self.0.begin().await?;
        let row: Option<GrantRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM cloud_oidc_device_grants
              WHERE device_code_hash = $1 AND client_id = $2 FOR UPDATE"
        ))
        .bind(device_code_hash)
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(grant) = row.map(grant_of).transpose()? else {
            return Ok(PollOutcome::Unknown);
        };
        let (next, outcome) = poll_step(&grant, now);
        if next != grant {
            sqlx::query(
                "UPDATE cloud_oidc_device_grants
                    SET state = $2, interval_secs = $3, last_polled_at = $4
                  WHERE device_code_hash = $1",
            )
            .bind(device_code_hash)
            .bind(next.state.as_str())
            .bind(next.interval_secs)
            .bind(next.last_polled_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn purge_expired(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM cloud_oidc_device_grants WHERE expires_at < $1")
            .bind(before)
            .execute(&self.0)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Grants keyed by device code hash (development and tests).
#[derive(Default)]
pub struct MemoryDeviceGrants(Mutex<HashMap<String, DeviceGrant>>);

impl MemoryDeviceGrants {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, DeviceGrant>) -> T,
    ) -> Result<T, StoreError> {
        self.0
            .lock()
            .map(|mut map| f(&mut map))
            .map_err(|_| StoreError::Internal("device grant map poisoned".into()))
    }
}

fn is_pending(g: &DeviceGrant, user_code_hash: &str, now: Timestamp) -> bool {
    g.user_code_hash == user_code_hash && g.state == DeviceGrantState::Pending && g.expires_at > now
}

#[async_trait]
impl DeviceGrants for MemoryDeviceGrants {
    async fn insert(&self, grant: &DeviceGrant) -> Result<(), StoreError> {
        self.with(|m| {
            let taken = m.contains_key(&grant.device_code_hash)
                || m.values().any(|g| g.user_code_hash == grant.user_code_hash);
            if taken {
                return Err(StoreError::Conflict("device grant".into()));
            }
            m.insert(grant.device_code_hash.clone(), grant.clone());
            Ok(())
        })?
    }

    async fn pending_by_user_code(
        &self,
        user_code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<DeviceGrant>, StoreError> {
        self.with(|m| {
            m.values()
                .find(|g| is_pending(g, user_code_hash, now))
                .cloned()
        })
    }

    async fn decide(
        &self,
        user_code_hash: &str,
        d: &Decision,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.with(|m| {
            let Some(g) = m.values_mut().find(|g| is_pending(g, user_code_hash, now)) else {
                return false;
            };
            g.state = if d.approve {
                DeviceGrantState::Approved
            } else {
                DeviceGrantState::Denied
            };
            g.user_id = Some(d.user.clone());
            g.auth_time = Some(d.auth_time);
            g.amr = Some(d.amr.clone());
            true
        })
    }

    async fn poll(
        &self,
        device_code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<PollOutcome, StoreError> {
        self.with(|m| match m.get_mut(device_code_hash) {
            Some(grant) if grant.client_id == client_id => {
                let (next, outcome) = poll_step(grant, now);
                *grant = next;
                outcome
            }
            _ => PollOutcome::Unknown,
        })
    }

    async fn purge_expired(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.with(|m| {
            let n = m.len();
            m.retain(|_, g| g.expires_at >= before);
            (n - m.len()) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_drawn_from_the_alphabet_and_normalize_back() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), USER_CODE_LEN);
            let shown = display_user_code(&code);
            assert_eq!(shown.len(), USER_CODE_LEN + 1);
            assert_eq!(normalize_user_code(&shown).as_deref(), Some(code.as_str()));
            let typed = format!(" {} ", shown.to_lowercase().replace('-', " "));
            assert_eq!(normalize_user_code(&typed).as_deref(), Some(code.as_str()));
        }
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJ0"), None);
        assert_eq!(normalize_user_code(&"B".repeat(100)), None);
    }

    fn grant(state: DeviceGrantState, interval_secs: i32) -> DeviceGrant {
        let t = crate::domain::now();
        DeviceGrant {
            device_code_hash: "d".into(),
            user_code_hash: "u".into(),
            client_id: "chatons-cli".into(),
            scope: "openid".into(),
            interval_secs,
            state,
            user_id: None,
            auth_time: None,
            amr: None,
            last_polled_at: None,
            expires_at: t + chrono::Duration::minutes(10),
        }
    }

    #[test]
    fn polling_too_soon_slows_down_and_an_approval_redeems_once() {
        let t0 = crate::domain::now();
        let secs = chrono::Duration::seconds;
        let g = grant(DeviceGrantState::Pending, 5);
        let (g, first) = poll_step(&g, t0);
        assert_eq!(first, PollOutcome::Pending);
        let (g, soon) = poll_step(&g, t0 + secs(2));
        assert_eq!(soon, PollOutcome::SlowDown(10));
        // Measured from the last poll, with the new interval (less a tenth).
        let (g, early) = poll_step(&g, t0 + secs(10));
        assert_eq!(early, PollOutcome::SlowDown(15));
        let (mut g, waited) = poll_step(&g, t0 + secs(24));
        assert_eq!((waited, g.interval_secs), (PollOutcome::Pending, 15));
        g.state = DeviceGrantState::Approved;
        let (g, redeemed) = poll_step(&g, t0 + secs(40));
        assert!(
            matches!(redeemed, PollOutcome::Approved(ref r) if r.state == DeviceGrantState::Consumed)
        );
        assert_eq!(poll_step(&g, t0 + secs(60)).1, PollOutcome::AlreadyRedeemed);
    }

    #[test]
    fn expiry_and_denial_end_the_grant_and_the_interval_has_a_ceiling() {
        let g = grant(DeviceGrantState::Pending, MAX_INTERVAL_SECS);
        let late = g.expires_at;
        assert_eq!(poll_step(&g, late).1, PollOutcome::Expired);
        let (g, _) = poll_step(&g, crate::domain::now());
        let (_, soon) = poll_step(&g, crate::domain::now());
        assert_eq!(soon, PollOutcome::SlowDown(MAX_INTERVAL_SECS));
        let denied = grant(DeviceGrantState::Denied, 5);
        assert_eq!(
            poll_step(&denied, crate::domain::now()).1,
            PollOutcome::Denied
        );
    }
}
