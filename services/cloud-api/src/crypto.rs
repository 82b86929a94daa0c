//! Secrets at rest and opaque tokens.
//!
//! Provider and repository secrets are sealed with AES-256-GCM under
//! `CHATONS_SECRETS_ENCRYPTION_KEY`; each ciphertext carries the id of its key, so after a
//! rotation the previous keys (`CHATONS_SECRETS_PREVIOUS_KEYS`) still open old rows until
//! `cloud-api reseal-secrets` has sealed them under the current key. Access, refresh and invite
//! tokens are random 32-byte values handed out once; only their SHA-256 is stored, so a database
//! leak yields no usable token.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::domain::Sealed;

/// Seals and opens secrets. The key id is the first 8 hex digits of SHA-256(key), which
/// identifies the key without revealing it. Sealing always uses the current key; opening uses
/// whichever configured key the ciphertext names.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// HMAC key for values derived from the current key ([`SecretBox::derive_token`]).
    mac: ring::hmac::Key,
    key_id: String,
    previous: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox(key {})", self.key_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("secret was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("secret cannot be decrypted (corrupt or wrong key)")]
    Corrupt,
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
            key_id: key_id_of(key),
            previous: Vec::new(),
        }
    }

    /// From the base64 text of `CHATONS_SECRETS_ENCRYPTION_KEY`.
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        Ok(Self::from_key(&decode_key(
            text,
            "CHATONS_SECRETS_ENCRYPTION_KEY",
        )?))
    }

    /// Adds the keys of `CHATONS_SECRETS_PREVIOUS_KEYS` (comma-separated base64), for opening
    /// secrets sealed before a rotation.
    pub fn with_previous(mut self, list: &str) -> anyhow::Result<Self> {
        for (n, text) in list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            let key = decode_key(
                text,
                &format!("CHATONS_SECRETS_PREVIOUS_KEYS entry {}", n + 1),
            )?;
            let id = key_id_of(&key);
            if id != self.key_id && !self.previous.iter().any(|(k, _)| *k == id) {
                self.previous.push((id, Aes256Gcm::new((&key).into())));
            }
        }
        Ok(self)
    }

    /// Development: the key kept in `<data dir>/secrets-encryption.key`, created on first use.
    pub fn load_or_create_dev(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("secrets-encryption.key");
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Self::from_base64(&text).with_context(|| path.display().to_string());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let fresh = STANDARD.encode(key);
        let text = create_private_once(&path, fresh.as_bytes())
            .with_context(|| format!("creating {}", path.display()))?;
        if text == fresh {
            tracing::warn!(path = %path.display(), "Generated a development secrets-encryption key.");
        }
        Self::from_base64(&text).with_context(|| path.display().to_string())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The secret's owner id is bound as associated data, so a ciphertext copied onto another
    /// row does not decrypt there.
    pub fn seal(&self, plaintext: &str, bound_to: &str) -> Result<Sealed, CryptoError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
            key_id: self.key_id.clone(),
        })
    }

    /// `<prefix>` + base64url(HMAC-SHA256(current key, purpose ‖ 0 ‖ input)): a token only this
    /// server can compute from `input`. The refresh rotation derives a successor pair from the
    /// presented refresh token this way, so presenting the same token again within the grace
    /// window names the same successor without storing its raw value anywhere.
    pub fn derive_token(&self, prefix: &str, purpose: &str, input: &str) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.mac);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(input.as_bytes());
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(ctx.sign().as_ref()))
    }

    pub fn open(&self, sealed: &Sealed, bound_to: &str) -> Result<String, CryptoError> {
        let cipher = if sealed.key_id == self.key_id {
            &self.cipher
        } else {
            self.previous
                .iter()
                .find(|(id, _)| *id == sealed.key_id)
                .map(|(_, c)| c)
                .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?
        };
        if sealed.nonce.len() != 12 {
            return Err(CryptoError::Corrupt);
        }
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Corrupt)
    }
}

fn key_id_of(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

/// A 32-byte key from base64 (standard or URL-safe); `what` names it in errors, never its value.
fn decode_key(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = STANDARD
        .decode(text.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim()))
        .map_err(|_| anyhow::anyhow!("{what} is not base64"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("{what} must decode to 32 bytes, got {}", b.len()))
}

/// Creates the private (0600) file `path` with `bytes` unless it exists, and answers what it
/// holds: `bytes`, or what another process wrote first. The file is written whole under a
/// unique name and then linked into place, so processes that start together on one data
/// directory (replicas, parallel tests) agree on one value and never read a half-written file.
pub(crate) fn create_private_once(path: &Path, bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Write;
    let staged = path.with_extension(format!("{}.partial", new_token("")));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&staged)
        .and_then(|mut file| file.write_all(bytes));
    let linked = written.and_then(|()| std::fs::hard_link(&staged, path));
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path),
        Err(e) => Err(e),
    }
}

/// A fresh opaque token: `<prefix>` + base64url of 32 random bytes.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `len` characters drawn uniformly from `alphabet` (ASCII, at most 255 symbols): short codes
/// people type (device-login user codes, recovery codes).
pub fn random_code(alphabet: &[u8], len: usize) -> String {
    let n = alphabet.len() as u8;
    // Rejection sampling: only bytes below a multiple of the alphabet's size, so every symbol
    // is equally likely.
    let limit = u8::MAX - u8::MAX % n;
    let mut code = String::with_capacity(len);
    while code.len() < len {
        let mut byte = [0u8; 1];
        rand::rngs::OsRng.fill_bytes(&mut byte);
        if byte[0] < limit {
            code.push(alphabet[usize::from(byte[0] % n)] as char);
        }
    }
    code
}

/// Hex SHA-256: how tokens are stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_roundtrip_bound_to_the_row() {
        let b = SecretBox::from_key(&[7u8; 32]);
        let s = b.seal("sk-secret", "provider-1").unwrap();
        assert!(!s.ciphertext.windows(9).any(|w| w == b"sk-secret"));
        assert_eq!(b.open(&s, "provider-1").unwrap(), "sk-secret");
        assert!(b.open(&s, "provider-2").is_err());
        let other = SecretBox::from_key(&[8u8; 32]);
        assert!(matches!(
            other.open(&s, "provider-1"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn previous_keys_open_old_secrets_and_new_ones_use_the_current_key() {
        let old = SecretBox::from_key(&[1u8; 32]);
        let sealed = old.seal("sk-old", "provider-1").unwrap();
        let rotated = SecretBox::from_key(&[2u8; 32])
            .with_previous(&format!(" {} ,", STANDARD.encode([1u8; 32])))
            .unwrap();
        assert_eq!(rotated.open(&sealed, "provider-1").unwrap(), "sk-old");
        let resealed = rotated.seal("sk-old", "provider-1").unwrap();
        assert_eq!(resealed.key_id, rotated.key_id());
        assert_ne!(resealed.key_id, sealed.key_id);
        let err = SecretBox::from_key(&[2u8; 32])
            .with_previous("c2hvcnQ=")
            .unwrap_err()
            .to_string();
        assert!(err.contains("entry 1 must decode to 32 bytes"), "{err}");
    }

    #[test]
    fn derived_tokens_depend_on_key_purpose_and_input() {
        let b = SecretBox::from_key(&[3u8; 32]);
        let a = b.derive_token("access-", "refresh-successor-access", "refresh-x");
        assert!(a.starts_with("access-") && a.len() > 40);
        assert_eq!(
            a,
            b.derive_token("access-", "refresh-successor-access", "refresh-x")
        );
        assert_ne!(
            a,
            b.derive_token("access-", "refresh-successor-refresh", "refresh-x")
        );
        assert_ne!(
            a,
            b.derive_token("access-", "refresh-successor-access", "refresh-y")
        );
        let other = SecretBox::from_key(&[4u8; 32]);
        assert_ne!(
            a,
            other.derive_token("access-", "refresh-successor-access", "refresh-x")
        );
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token("access-");
        assert!(a.starts_with("access-") && a.len() > 40);
        assert_ne!(a, new_token("access-"));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn dev_key_is_created_once() {
        let dir = std::env::temp_dir().join(format!("chatons-key-{}", uuid::Uuid::new_v4()));
        let a = SecretBox::load_or_create_dev(&dir).unwrap();
        let b = SecretBox::load_or_create_dev(&dir).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let _ = std::fs::remove_dir_all(dir);
    }
}
