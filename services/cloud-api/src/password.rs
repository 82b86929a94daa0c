//! Password hashing with argon2id at OWASP-recommended parameters: 12 MiB, 3 passes, 1 lane, one
//! of the configurations the OWASP password-storage cheat sheet lists as equally strong (with
//! 19 MiB × 2, 9 MiB × 4, …). Of those it is the fastest here (≈19 ms against ≈26 ms for 19 MiB ×
//! 2 on this machine's cores: fewer, better-cached blocks). Stored hashes carry their own
//! parameters, so hashes made with other settings keep verifying.
//!
//! Hashing costs tens of milliseconds of CPU, so it runs on the blocking pool behind a semaphore
//! sized to the cores: a login flood queues here instead of starving every other request. Unknown
//! emails are verified against a dummy hash so the answer takes as long as for a real account.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<OnceCell<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
}

fn argon() -> Result<Argon2<'static>, HashError> {
    let params =
        Params::new(12 * 1024, 3, 1, None).map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            permits: Arc::new(Semaphore::new(cores.max(1))),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon()?
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await
    }

    /// Verifies against `hash`, or against a dummy hash when there is none (unknown account),
    /// so both paths cost the same. Always `false` in the dummy case. A legacy scrypt hash
    /// (imported from the first system) is accepted too; [`needs_upgrade`] tells the caller to
    /// replace it with argon2id now that the password is known.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let (target, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash().await?, false),
        };
        let password = password.to_owned();
        let ok = self
            .blocking(move || {
                if let Some(legacy) = LegacyScrypt::parse(&target) {
                    return Ok(legacy.verify(&password));
                }
                let parsed = match PasswordHash::new(&target) {
                    Ok(p) => p,
                    Err(_) => return Ok(false),
                };
                Ok(argon()?
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(ok && real)
    }

    async fn dummy_hash(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| async { self.hash("dummy password for timing").await })
            .await
            .cloned()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?
    }
}

/// Whether a stored hash is one of the first system's scrypt hashes, to be replaced by argon2id
/// at the next successful login.
pub fn needs_upgrade(hash: &str) -> bool {
    hash.starts_with("scrypt$")
}

/// The first system's password hashes: `scrypt$N$r$p$<salt hex>$<hash hex>`, scrypt with a
/// 64-byte output over the *trimmed* password, the salt being the hex text itself (not its
/// bytes). Only [`Hasher::verify`] reads them, so nothing but a login accepts them; the account
/// then gets an argon2id hash and the scrypt string is gone.
struct LegacyScrypt {
    log_n: u8,
    r: u32,
    p: u32,
    salt: String,
    hash: Vec<u8>,
}

impl LegacyScrypt {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('$');
        if parts.next()? != "scrypt" {
            return None;
        }
        let n: u64 = parts.next()?.parse().ok()?;
        let r: u32 = parts.next()?.parse().ok()?;
        let p: u32 = parts.next()?.parse().ok()?;
        let salt = parts.next()?.to_owned();
        let hash = hex::decode(parts.next()?).ok()?;
        if parts.next().is_some() || !n.is_power_of_two() || n < 2 || hash.is_empty() {
            return None;
        }
        // Refuse parameters that would make one login cost more than the first system allowed
        // (N ≤ 2^20, r·p bounded): a crafted row must not pin a core.
        let log_n = n.trailing_zeros() as u8;
        if log_n > 20 || r == 0 || p == 0 || u64::from(r) * u64::from(p) > 64 || hash.len() > 128 {
            return None;
        }
        Some(Self {
            log_n,
            r,
            p,
            salt,
            hash,
        })
    }

    fn verify(&self, password: &str) -> bool {
        let Ok(params) = scrypt::Params::new(self.log_n, self.r, self.p, self.hash.len()) else {
            return false;
        };
        let mut out = vec![0u8; self.hash.len()];
        if scrypt::scrypt(
            password.trim().as_bytes(),
            self.salt.as_bytes(),
            &params,
            &mut out,
        )
        .is_err()
        {
            return false;
        }
        subtle::ConstantTimeEq::ct_eq(out.as_slice(), self.hash.as_slice()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = Hasher::new();
        let hash = h.hash("correct horse").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
            "{hash}"
        );
        assert!(h.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!h.verify("wrong horse", Some(&hash)).await.unwrap());
        assert!(!h.verify("dummy password for timing", None).await.unwrap());
        assert!(!h.verify("x", Some("not a hash")).await.unwrap());
    }

    /// Made by Python's `hashlib.scrypt` (OpenSSL, as Node's `crypto.scryptSync` of the first
    /// system) for "legacy password 42" with N=16384, r=8, p=1, 64 bytes, salt = the hex text.
    const LEGACY: &str = "scrypt$16384$8$1$78b37c7cac38b52ba32169621ca627d7759f1b52fe8c8bbcdb11a0ae84b94483$1b20ec8307b7bc2931c924a7bb0f57c1bedfb7c69d7818e428edd913ba49b85634373fca41fdad076e86b21abac38b101fc422ec8599606d8dcdd0b3fe900719";

    #[tokio::test]
    async fn legacy_scrypt_hashes_verify_and_ask_for_an_upgrade() {
        let h = Hasher::new();
        assert!(h.verify("legacy password 42", Some(LEGACY)).await.unwrap());
        // The first system trimmed passwords before hashing.
        assert!(
            h.verify(" legacy password 42 ", Some(LEGACY))
                .await
                .unwrap()
        );
        assert!(!h.verify("legacy password 43", Some(LEGACY)).await.unwrap());
        assert!(needs_upgrade(LEGACY));
        assert!(!needs_upgrade("$argon2id$v=19$m=12288,t=3,p=1$x$y"));
        // Malformed or abusive parameters never verify.
        for bad in [
            "scrypt$16384$8$1$salt",
            "scrypt$1000$8$1$aa$bb",
            "scrypt$2097152$8$1$aa$bbbb",
            "scrypt$16384$8$1$aa$zz",
        ] {
            assert!(!h.verify("x", Some(bad)).await.unwrap(), "{bad}");
        }
    }

    #[tokio::test]
    async fn hashes_made_with_earlier_parameters_still_verify() {
        let earlier = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(19 * 1024, 2, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let hash = earlier
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(hash.contains("m=19456,t=2"), "{hash}");
        let h = Hasher::new();
        assert!(h.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!h.verify("wrong horse", Some(&hash)).await.unwrap());
    }
}
