//! What a user signs in with besides the password: the TOTP secret, its recovery codes and
//! passkeys. Atomic single-use steps (a TOTP step, a recovery code) are single store calls, so
//! two replicas racing on one code accept it once.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::{Sealed, StoreError, Timestamp, UserId};

/// A user's TOTP secret, sealed (bound to the user id).
#[derive(Debug, Clone, PartialEq)]
pub struct TotpRecord {
    pub sealed: Sealed,
    /// Whether enrolment finished (the user typed a code from it).
    pub confirmed: bool,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

/// A WebAuthn credential: `credential` is the library's serialized passkey, opaque here.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyRecord {
    /// The credential id, base64url.
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    pub credential: serde_json::Value,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[async_trait]
pub trait FactorStore: Send + Sync + 'static {
    async fn totp(&self, user: &UserId) -> Result<Option<TotpRecord>, StoreError>;
    /// Stores a new unconfirmed secret (replacing an unconfirmed one); `Conflict` when the user
    /// has a confirmed one (disable it first).
    async fn begin_totp(&self, user: &UserId, sealed: &Sealed) -> Result<(), StoreError>;
    /// Atomically: confirms the unconfirmed secret, records `step` as used and replaces the
    /// recovery codes with `recovery_hashes`. `false` when there was nothing to confirm.
    async fn confirm_totp(
        &self,
        user: &UserId,
        step: i64,
        recovery_hashes: &[String],
    ) -> Result<bool, StoreError>;
    /// Records `step` as used if it is newer than the last one (confirmed secrets only);
    /// `false` for a code used before.
    async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError>;
    /// Marks the unused recovery code `hash` used; `false` when unknown or used.
    async fn use_recovery_code(
        &self,
        user: &UserId,
        hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn recovery_codes_left(&self, user: &UserId) -> Result<u64, StoreError>;
    /// Removes the secret and every recovery code.
    async fn remove_totp(&self, user: &UserId) -> Result<(), StoreError>;
    /// Up to `limit` TOTP secrets (by user, after `after`) sealed under a key other than
    /// `key_id`: what `cloud-api reseal-secrets` still has to do.
    async fn totp_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Sealed)>, StoreError>;
    /// Replaces a TOTP secret's sealing only if it is still the one sealed with `old_nonce`;
    /// true when replaced.
    async fn reseal_totp(
        &self,
        user: &UserId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> Result<bool, StoreError>;

    /// `Conflict` when the credential id is registered already (to anyone).
    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<(), StoreError>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError>;
    async fn passkey(&self, id: &str) -> Result<Option<PasskeyRecord>, StoreError>;
    /// Stores the credential as updated by a sign-in (counter, backup state) and the time.
    async fn touch_passkey(
        &self,
        id: &str,
        credential: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// `false` when the user has no such passkey.
    async fn remove_passkey(&self, user: &UserId, id: &str) -> Result<bool, StoreError>;

    /// Keeps the server's half of a WebAuthn ceremony until `expires_at`.
    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError>;
    /// Takes (deletes and returns) an unexpired ceremony: each is answered once.
    async fn take_ceremony(&self, id: &str, now: Timestamp)
    -> Result<Option<Ceremony>, StoreError>;
    /// Deletes ceremonies that expired before `before` (housekeeping).
    async fn purge_ceremonies(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// The server's half of a WebAuthn ceremony (challenge and expectations), opaque here.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceremony {
    pub id: String,
    /// The registering user; `None` for a sign-in (the user is not known yet).
    pub user_id: Option<UserId>,
    pub state: serde_json::Value,
    pub expires_at: Timestamp,
}

#[derive(Default)]
struct Tables {
    totp: HashMap<UserId, TotpRecord>,
    /// (user, code hash) → used at.
    recovery: HashMap<(UserId, String), Option<Timestamp>>,
    passkeys: Vec<PasskeyRecord>,
    ceremonies: HashMap<String, Ceremony>,
}

/// Development and tests.
#[derive(Default)]
pub struct MemoryFactors(Mutex<Tables>);

impl MemoryFactors {
    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> Result<T, StoreError> {
        self.0
            .lock()
            .map(|mut t| f(&mut t))
            .map_err(|_| StoreError::Internal("factor tables poisoned".into()))
    }
}

#[async_trait]
impl FactorStore for MemoryFactors {
    async fn totp(&self, user: &UserId) -> Result<Option<TotpRecord>, StoreError> {
        self.with(|t| t.totp.get(user).cloned())
    }

    async fn begin_totp(&self, user: &UserId, sealed: &Sealed) -> Result<(), StoreError> {
        self.with(|t| {
            if t.totp.get(user).is_some_and(|r| r.confirmed) {
                return Err(StoreError::Conflict("totp".into()));
            }
            let record = TotpRecord {
                sealed: sealed.clone(),
                confirmed: false,
                last_step: None,
            };
            t.totp.insert(user.clone(), record);
            Ok(())
        })?
    }

    async fn confirm_totp(
        &self,
        user: &UserId,
        step: i64,
        recovery_hashes: &[String],
    ) -> Result<bool, StoreError> {
        self.with(|t| {
            let Some(record) = t.totp.get_mut(user).filter(|r| !r.confirmed) else {
                return false;
            };
            record.confirmed = true;
            record.last_step = Some(step);
            t.recovery.retain(|(u, _), _| u != user);
            for hash in recovery_hashes {
                t.recovery.insert((user.clone(), hash.clone()), None);
            }
            true
        })
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> Result<bool, StoreError> {
        self.with(|t| match t.totp.get_mut(user) {
            Some(r) if r.confirmed && r.last_step.is_none_or(|last| last < step) => {
                r.last_step = Some(step);
                true
            }
            _ => false,
        })
    }

    async fn use_recovery_code(
        &self,
        user: &UserId,
        hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.with(
            |t| match t.recovery.get_mut(&(user.clone(), hash.to_owned())) {
                Some(used @ None) => {
                    *used = Some(now);
                    true
                }
                _ => false,
            },
        )
    }

    async fn recovery_codes_left(&self, user: &UserId) -> Result<u64, StoreError> {
        self.with(|t| {
            t.recovery
                .iter()
                .filter(|((u, _), used)| u == user && used.is_none())
                .count() as u64
        })
    }

    async fn remove_totp(&self, user: &UserId) -> Result<(), StoreError> {
        self.with(|t| {
            t.totp.remove(user);
            t.recovery.retain(|(u, _), _| u != user);
        })
    }

    async fn totp_sealed_with_other_key(
        &self,
        key_id: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, Sealed)>, StoreError> {
        self.with(|t| {
            let mut rows: Vec<(UserId, Sealed)> = t
                .totp
                .iter()
                .filter(|(u, r)| r.sealed.key_id != key_id && after.is_none_or(|a| *u > a))
                .map(|(u, r)| (u.clone(), r.sealed.clone()))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows.truncate(limit);
            rows
        })
    }

    async fn reseal_totp(
        &self,
        user: &UserId,
        old_nonce: &[u8],
        sealed: &Sealed,
    ) -> Result<bool, StoreError> {
        self.with(|t| match t.totp.get_mut(user) {
            Some(r) if r.sealed.nonce == old_nonce => {
                r.sealed = sealed.clone();
                true
            }
            _ => false,
        })
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord) -> Result<(), StoreError> {
        self.with(|t| {
            if t.passkeys.iter().any(|p| p.id == passkey.id) {
                return Err(StoreError::Conflict("passkey".into()));
            }
            t.passkeys.push(passkey.clone());
            Ok(())
        })?
    }

    async fn passkeys(&self, user: &UserId) -> Result<Vec<PasskeyRecord>, StoreError> {
        self.with(|t| {
            t.passkeys
                .iter()
                .filter(|p| &p.user_id == user)
                .cloned()
                .collect()
        })
    }

    async fn passkey(&self, id: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        self.with(|t| t.passkeys.iter().find(|p| p.id == id).cloned())
    }

    async fn touch_passkey(
        &self,
        id: &str,
        credential: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(p) = t.passkeys.iter_mut().find(|p| p.id == id) {
                p.credential = credential.clone();
                p.last_used_at = Some(now);
            }
        })
    }

    async fn remove_passkey(&self, user: &UserId, id: &str) -> Result<bool, StoreError> {
        self.with(|t| {
            let before = t.passkeys.len();
            t.passkeys.retain(|p| !(p.id == id && &p.user_id == user));
            t.passkeys.len() < before
        })
    }

    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        self.with(|t| {
            t.ceremonies.insert(ceremony.id.clone(), ceremony.clone());
        })
    }

    async fn take_ceremony(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Ceremony>, StoreError> {
        self.with(|t| t.ceremonies.remove(id).filter(|c| c.expires_at > now))
    }

    async fn purge_ceremonies(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.with(|t| {
            let n = t.ceremonies.len();
            t.ceremonies.retain(|_, c| c.expires_at >= before);
            (n - t.ceremonies.len()) as u64
        })
    }
}
