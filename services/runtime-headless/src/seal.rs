//! Sealing of turn specs (which provider to call, with its secret) so any replica can run a
//! queued turn without the secret ever being stored in plaintext. AES-256-GCM under a key
//! derived from the internal service token, which every replica shares.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use cloud_common::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Capability;
use crate::domain::thinking::ThinkingLevel;

const NONCE_LEN: usize = 12;

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

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
#[error("the turn's provider settings cannot be read on this worker")]
pub struct SealError;

impl Sealer {
    /// Key = SHA-256 of a label and the internal token; without a token (one-replica dev mode)
    /// a random per-process key.
    pub fn new(internal_token: Option<&Secret>) -> Self {
        let key: [u8; 32] = match internal_token {
            Some(t) => {
                let mut h = Sha256::new();
                h.update(b"chatons-runtime-turn-spec/v1\0");
                h.update(t.expose().as_bytes());
                h.finalize().into()
            }
            None => Aes256Gcm::generate_key(&mut OsRng).into(),
        };
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    pub fn seal(&self, spec: &TurnSpec) -> Result<Vec<u8>, SealError> {
        let plain = serde_json::to_vec(spec).map_err(|_| SealError)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plain.as_slice())
                .map_err(|_| SealError)?,
        );
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<TurnSpec, SealError> {
        if sealed.len() <= NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SealError)?;
        serde_json::from_slice(&plain).map_err(|_| SealError)
    }
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

    #[test]
    fn round_trips_and_hides_the_secret() {
        let token = Secret::new("t");
        let a = Sealer::new(Some(&token));
        let sealed = a.seal(&spec()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("sk-very-secret"));
        let b = Sealer::new(Some(&token));
        assert_eq!(b.open(&sealed).unwrap().secret, "sk-very-secret");
        assert!(
            Sealer::new(Some(&Secret::new("other")))
                .open(&sealed)
                .is_err()
        );
        let shown = format!("{:?}", spec());
        assert!(
            !shown.contains("sk-very") && !shown.contains("user-bearer") && !shown.contains("ghp_")
        );
    }
}
