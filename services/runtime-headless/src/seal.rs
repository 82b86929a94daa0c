//! Sealing of turn specs (which provider to call, with its secret) so any replica can run a
//! queued turn without the secret ever being stored in plaintext. AES-256-GCM under the
//! sealing key `CHATONS_RUNTIME_SEALING_KEY`, which every replica shares.
//!
//! The key is its own secret, not derived from the internal service token, so rotating the
//! token never strands queued turns. Rotating the sealing key itself: the replaced key goes to
//! `CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS`, which still opens specs sealed before the rotation
//! (each sealed spec names the id of its key) until they have run.
//!
//! Formats: `0x02 ‖ key id (4 bytes) ‖ nonce (12) ‖ ciphertext` (current), and the legacy
//! `nonce ‖ ciphertext` under the token-derived key (opened only, so turns queued by an older
//! release still run after an upgrade). Development without a sealing key seals under the
//! token-derived key (so several local replicas agree), or a per-process key without a token.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use cloud_common::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Capability;
use crate::domain::thinking::ThinkingLevel;

const NONCE_LEN: usize = 12;
const VERSION: u8 = 2;
const KEY_ID_LEN: usize = 4;

/// Everything a worker needs to call the provider for one turn.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSpec {
    pub provider_id: String,
    pub provider_kind: String,
    pub base_url: String,
    pub model: String,
    pub secret: String,
    #[serde(default)]
    pub thinking_level: Option<String>,
    /// The project's capability when the turn was queued (the grant of that moment decides).
    #[serde(default)]
    pub capability: Capability,
    /// The user's bearer token, for the memory tools (their calls are the user's own).
    #[serde(default)]
    pub user_token: Option<String>,
    /// The project's repository, for repository projects.
    #[serde(default)]
    pub repository: Option<RepoSpec>,
}

/// Where a repository project's code comes from, with its access token (sealed like the rest).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoSpec {
    pub clone_url: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl std::fmt::Debug for RepoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoSpec")
            .field("clone_url", &self.clone_url)
            .field("default_branch", &self.default_branch)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl TurnSpec {
    pub fn thinking(&self) -> ThinkingLevel {
        self.thinking_level
            .as_deref()
            .and_then(ThinkingLevel::parse)
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for TurnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSpec")
            .field("provider_id", &self.provider_id)
            .field("provider_kind", &self.provider_kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("secret", &"***")
            .field("capability", &self.capability)
            .field("user_token", &self.user_token.as_ref().map(|_| "***"))
            .field("repository", &self.repository)
            .finish()
    }
}

/// 32 bytes of AES-256 key material (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({})", hex_id(&self.id()))
    }
}

impl SealKey {
    /// Standard base64 of exactly 32 bytes (`openssl rand -base64 32`).
    pub fn from_base64(raw: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| "not base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("decodes to {} bytes, expected 32", b.len()))?;
        Ok(Self(key))
    }

    /// Comma-separated list of [`SealKey::from_base64`] keys.
    pub fn list_from_base64(raw: &str) -> Result<Vec<Self>, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, k)| Self::from_base64(k).map_err(|e| format!("key {}: {e}", i + 1)))
            .collect()
    }

    /// The legacy key: SHA-256 of a label and the internal service token.
    fn from_token(token: &Secret) -> Self {
        let mut h = Sha256::new();
        h.update(b"chatons-runtime-turn-spec/v1\0");
        h.update(token.expose().as_bytes());
        Self(h.finalize().into())
    }

    /// First bytes of the key's SHA-256: names the key in each sealed spec without revealing it.
    fn id(&self) -> [u8; KEY_ID_LEN] {
        let digest = Sha256::digest(self.0);
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
    }
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone)]
struct Keyed {
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

impl Keyed {
    fn new(key: &SealKey) -> Self {
        Self {
            id: key.id(),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }
}

#[derive(Clone)]
pub struct Sealer {
    current: Keyed,
    /// Keys that only open: previous sealing keys, then the legacy token-derived key.
    openers: Vec<Keyed>,
}

#[derive(Debug, thiserror::Error)]
#[error("the turn's provider settings cannot be read on this worker")]
pub struct SealError;

impl Sealer {
    /// `current`: `CHATONS_RUNTIME_SEALING_KEY`; `previous`: the keys it replaced;
    /// `internal_token`: for the legacy key (opening turns sealed by older releases, and
    /// sealing in development when no sealing key is set).
    pub fn new(
        current: Option<&SealKey>,
        previous: &[SealKey],
        internal_token: Option<&Secret>,
    ) -> Self {
        let legacy = internal_token.map(SealKey::from_token);
        let current_key = match (current, &legacy) {
            (Some(k), _) => k.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => SealKey(Aes256Gcm::generate_key(&mut OsRng).into()),
        };
        let mut openers: Vec<Keyed> = previous.iter().map(Keyed::new).collect();
        if let Some(l) = legacy.filter(|l| *l != current_key) {
            openers.push(Keyed::new(&l));
        }
        Self {
            current: Keyed::new(&current_key),
            openers,
        }
    }

    pub fn seal(&self, spec: &TurnSpec) -> Result<Vec<u8>, SealError> {
        let plain = serde_json::to_vec(spec).map_err(|_| SealError)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + plain.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend(
            self.current
                .cipher
                .encrypt(&nonce, plain.as_slice())
                .map_err(|_| SealError)?,
        );
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<TurnSpec, SealError> {
        let keys = || std::iter::once(&self.current).chain(&self.openers);
        if sealed.len() > 1 + KEY_ID_LEN + NONCE_LEN && sealed[0] == VERSION {
            let (id, rest) = sealed[1..].split_at(KEY_ID_LEN);
            if let Some(k) = keys().find(|k| k.id == id) {
                if let Ok(spec) = decrypt(&k.cipher, rest) {
                    return Ok(spec);
                }
            }
        }
        // Legacy layout (no version, no key id): try each key; GCM authentication rejects
        // the wrong ones.
        keys()
            .find_map(|k| decrypt(&k.cipher, sealed).ok())
            .ok_or(SealError)
    }
}

fn decrypt(cipher: &Aes256Gcm, nonce_and_body: &[u8]) -> Result<TurnSpec, SealError> {
    if nonce_and_body.len() <= NONCE_LEN {
        return Err(SealError);
    }
    let (nonce, body) = nonce_and_body.split_at(NONCE_LEN);
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), body)
        .map_err(|_| SealError)?;
    serde_json::from_slice(&plain).map_err(|_| SealError)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TurnSpec {
        TurnSpec {
            provider_id: "p".into(),
            provider_kind: "openai".into(),
            base_url: "http://x".into(),
            model: "m".into(),
            secret: "sk-very-secret".into(),
            thinking_level: None,
            capability: Capability::FullTools,
            user_token: Some("user-bearer-token".into()),
            repository: Some(RepoSpec {
                clone_url: "https://git.example/r.git".into(),
                default_branch: None,
                token: Some("ghp_repo_token".into()),
            }),
        }
    }

    fn key(byte: u8) -> SealKey {
        SealKey([byte; 32])
    }

    #[test]
    fn round_trips_and_hides_the_secret() {
        let a = Sealer::new(Some(&key(1)), &[], None);
        let sealed = a.seal(&spec()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("sk-very-secret"));
        let b = Sealer::new(Some(&key(1)), &[], None);
        assert_eq!(b.open(&sealed).unwrap().secret, "sk-very-secret");
        assert!(Sealer::new(Some(&key(2)), &[], None).open(&sealed).is_err());
        let shown = format!("{:?}", spec());
        assert!(
            !shown.contains("sk-very") && !shown.contains("user-bearer") && !shown.contains("ghp_")
        );
        assert!(!format!("{:?}", key(7)).contains("0707"));
    }

    #[test]
    fn rotating_the_internal_token_keeps_queued_specs_readable() {
        let sealed = Sealer::new(Some(&key(1)), &[], Some(&Secret::new("old-token")))
            .seal(&spec())
            .unwrap();
        let after = Sealer::new(Some(&key(1)), &[], Some(&Secret::new("new-token")));
        assert_eq!(after.open(&sealed).unwrap().secret, "sk-very-secret");
    }

    #[test]
    fn previous_keys_open_specs_sealed_before_a_rotation() {
        let sealed = Sealer::new(Some(&key(1)), &[], None).seal(&spec()).unwrap();
        let rotated = Sealer::new(Some(&key(2)), &[key(1)], None);
        assert_eq!(rotated.open(&sealed).unwrap().model, "m");
        // New specs are sealed under the new key only.
        let fresh = rotated.seal(&spec()).unwrap();
        assert!(Sealer::new(Some(&key(1)), &[], None).open(&fresh).is_err());
        // Once the previous key is dropped, the old spec no longer opens.
        assert!(Sealer::new(Some(&key(2)), &[], None).open(&sealed).is_err());
    }

    #[test]
    fn specs_sealed_by_the_token_derived_key_of_older_releases_still_open() {
        let token = Secret::new("t");
        let legacy = Keyed::new(&SealKey::from_token(&token));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut old = nonce.to_vec();
        old.extend(
            legacy
                .cipher
                .encrypt(&nonce, serde_json::to_vec(&spec()).unwrap().as_slice())
                .unwrap(),
        );
        let upgraded = Sealer::new(Some(&key(3)), &[], Some(&token));
        assert_eq!(upgraded.open(&old).unwrap().secret, "sk-very-secret");
        assert!(Sealer::new(Some(&key(3)), &[], None).open(&old).is_err());
    }

    #[test]
    fn keys_parse_from_base64_with_clear_errors() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert_eq!(SealKey::from_base64(&b64).unwrap(), key(9));
        assert!(SealKey::from_base64("not base64!").is_err());
        assert!(
            SealKey::from_base64("AAAA")
                .unwrap_err()
                .contains("3 bytes")
        );
        let list = SealKey::list_from_base64(&format!("{b64}, {b64}")).unwrap();
        assert_eq!(list.len(), 2);
        assert!(
            SealKey::list_from_base64(&format!("{b64},AAAA"))
                .unwrap_err()
                .starts_with("key 2")
        );
    }
}
