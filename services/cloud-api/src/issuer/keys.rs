//! Signing keys of the issuer and the JWKS that publishes them.
//!
//! ES256 (P-256) by default; RS256 when `JWT_SIGNING_KEY` holds an RSA key. Keys are PEM:
//! PKCS#8 (`BEGIN PRIVATE KEY`, EC or RSA) or PKCS#1 (`BEGIN RSA PRIVATE KEY`). Without a
//! configured key a P-256 key is generated once and kept in the data directory (development).
//! `kid` is the RFC 7638 JWK thumbprint, so it changes exactly when the key does. Retired public
//! keys (`JWT_RETIRED_PUBLIC_KEYS`, JWKS JSON) stay published until their tokens expire.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key")]
    NotPem,
    #[error("unsupported or invalid key: {0}")]
    Invalid(String),
    #[error("cannot read or write the development key: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    Rs256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The active signing key.
pub struct SigningKey {
    pair: Pair,
    pub kid: String,
    pub alg: Algorithm,
    /// Public JWK, with `kid`, `alg` and `use`.
    pub jwk: Value,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl SigningKey {
    /// Parses a PEM private key (EC P-256 or RSA ≥ 2048 bits).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        match PrivateKeyDer::from_pem_slice(pem.trim().as_bytes()) {
            Ok(PrivateKeyDer::Pkcs1(der)) => Self::rsa(
                RsaKeyPair::from_der(der.secret_pkcs1_der())
                    .map_err(|e| KeyError::Invalid(e.to_string()))?,
            ),
            Ok(PrivateKeyDer::Pkcs8(der)) => {
                let der = der.secret_pkcs8_der();
                let rng = SystemRandom::new();
                if let Ok(ec) =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                {
                    Ok(Self::ec(ec))
                } else {
                    let rsa = RsaKeyPair::from_pkcs8(der).map_err(|e| {
                        KeyError::Invalid(format!("neither P-256 nor RSA PKCS#8 ({e})"))
                    })?;
                    Self::rsa(rsa)
                }
            }
            Ok(_) => Err(KeyError::Invalid(
                "an EC PRIVATE KEY (SEC1) block; expected PRIVATE KEY (PKCS#8) or RSA PRIVATE KEY"
                    .into(),
            )),
            Err(_) => Err(KeyError::NotPem),
        }
    }

    /// Generates a fresh P-256 key and returns it with its PKCS#8 PEM.
    pub fn generate() -> Result<(Self, String), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pem = encode_pem("PRIVATE KEY", pkcs8.as_ref());
        Ok((Self::from_pem(&pem)?, pem))
    }

    /// The development key under `dir` (created with mode 0600 on first use).
    pub fn load_or_create_dev(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join("oidc-signing-key.pem");
        if let Ok(pem) = std::fs::read_to_string(&path) {
            return Self::from_pem(&pem);
        }
        std::fs::create_dir_all(dir)?;
        let (key, pem) = Self::generate()?;
        let stored = crate::crypto::create_private_once(&path, pem.as_bytes())?;
        if stored != pem {
            return Self::from_pem(&stored);
        }
        tracing::info!(path = %path.display(), kid = %key.kid, "Generated a development signing key.");
        Ok(key)
    }

    fn ec(pair: EcdsaKeyPair) -> Self {
        // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
        let point = pair.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = thumbprint(&thumbprint_input);
        let jwk = json!({"kty":"EC","crv":"P-256","x":x,"y":y,"kid":kid,"alg":"ES256","use":"sig"});
        Self {
            pair: Pair::Ec(pair),
            kid,
            alg: Algorithm::Es256,
            jwk,
            rng: SystemRandom::new(),
        }
    }

    fn rsa(pair: RsaKeyPair) -> Result<Self, KeyError> {
        if pair.public().modulus_len() < 256 {
            return Err(KeyError::Invalid(
                "RSA keys must have at least 2048 bits".into(),
            ));
        }
        // Big-endian without leading zeros, as JWK wants.
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let (n, e) = (
            URL_SAFE_NO_PAD.encode(public.n),
            URL_SAFE_NO_PAD.encode(public.e),
        );
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        let jwk = json!({"kty":"RSA","n":n,"e":e,"kid":kid,"alg":"RS256","use":"sig"});
        Ok(Self {
            pair: Pair::Rsa(pair),
            kid,
            alg: Algorithm::Rs256,
            jwk,
            rng: SystemRandom::new(),
        })
    }

    /// JWS signature over `message` (the `header.payload` signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| KeyError::Invalid(e.to_string())),
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                Ok(sig)
            }
        }
    }

    /// A compact JWS of `claims` with `typ: JWT` and this key's `kid`.
    pub fn sign_jwt(&self, claims: &Value) -> Result<String, KeyError> {
        let header = json!({"alg": self.alg.name(), "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The claims of a compact JWS signed by one of `keys` (public JWKs, matched by `kid`; ES256 or
/// RS256 as the key says), or `None` when the signature does not verify. Only the signature
/// is checked here; the caller judges the claims.
pub fn verify_jws(token: &str, keys: &[&Value]) -> Option<Value> {
    let mut parts = token.split('.');
    let (h, p, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let key = keys.iter().find(|k| k["kid"] == header["kid"])?;
    if key["alg"] != header["alg"] {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let input = &token.as_bytes()[..h.len() + 1 + p.len()];
    let field = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str()?).ok();
    let verified = match key["alg"].as_str()? {
        "ES256" => {
            let mut point = vec![0x04];
            point.extend(field("x")?);
            point.extend(field("y")?);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input, &sig)
                .is_ok()
        }
        "RS256" => signature::RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, &sig)
        .is_ok(),
        _ => false,
    };
    if !verified {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

/// The published key set: the active key first, then retired keys.
pub fn jwks(active: &SigningKey, retired: &[Value]) -> Value {
    let mut keys = vec![active.jwk.clone()];
    keys.extend(
        retired
            .iter()
            .filter(|k| k["kid"] != active.jwk["kid"])
            .cloned(),
    );
    json!({ "keys": keys })
}

/// Parses `JWT_RETIRED_PUBLIC_KEYS`: a JWKS document (`{"keys":[…]}`) of public keys only.
pub fn parse_retired(raw: &str) -> Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc["keys"].as_array().ok_or("expected {\"keys\": [...]}")?;
    for k in keys {
        if k.get("d").is_some() || k.get("p").is_some() {
            return Err("retired keys must be public keys (no private members)".into());
        }
        if k["kid"].as_str().is_none() || k["kty"].as_str().is_none() {
            return Err("every retired key needs kty and kid".into());
        }
    }
    Ok(keys.clone())
}

fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()))
}

/// Writing PEM is a base64 body between two lines, with no parsing risk; reading it is
/// `rustls-pki-types`' (which also tells PKCS#1, PKCS#8 and SEC1 blocks apart).
fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_keys_created_together_are_one_key() {
        let dir =
            std::env::temp_dir().join(format!("chatons-key-race-{}", crate::crypto::new_token("")));
        let (secrets, signing): (Vec<_>, Vec<_>) = std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let secrets = crate::crypto::SecretBox::load_or_create_dev(&dir)
                            .map(|b| b.key_id().to_owned());
                        let signing = SigningKey::load_or_create_dev(&dir).map(|k| k.kid);
                        (
                            secrets.map_err(|e| e.to_string()),
                            signing.map_err(|e| e.to_string()),
                        )
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().unwrap_or_else(|_| panic!("a run panicked")))
                .unzip()
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            secrets.iter().all(|k| k.is_ok() && *k == secrets[0]),
            "{secrets:?}"
        );
        assert!(
            signing.iter().all(|k| k.is_ok() && *k == signing[0]),
            "{signing:?}"
        );
    }

    #[test]
    fn verifies_its_own_signatures_only() {
        let (key, _) = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        let token = key
            .sign_jwt(&json!({"sub": "u1"}))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(verify_jws(&token, &[&key.jwk]), Some(json!({"sub": "u1"})));
        let (other, _) = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        assert_eq!(verify_jws(&token, &[&other.jwk]), None, "another key");
        let mut forged = token.clone();
        forged.truncate(token.rfind('.').unwrap_or(0));
        let unsigned = format!("{forged}.");
        assert_eq!(verify_jws(&unsigned, &[&key.jwk]), None);
        let payload = URL_SAFE_NO_PAD.encode(json!({"sub": "admin"}).to_string());
        let parts: Vec<&str> = token.split('.').collect();
        let swapped = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(verify_jws(&swapped, &[&key.jwk]), None, "claims changed");
    }

    #[test]
    fn generated_key_signs_a_verifiable_es256_jwt() {
        let (key, pem) = SigningKey::generate().unwrap();
        assert_eq!(key.alg, Algorithm::Es256);
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.kid, key.kid, "kid is stable for the same key");
        let jwt = key.sign_jwt(&json!({"sub":"u"})).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let x = URL_SAFE_NO_PAD
            .decode(key.jwk["x"].as_str().unwrap())
            .unwrap();
        let y = URL_SAFE_NO_PAD
            .decode(key.jwk["y"].as_str().unwrap())
            .unwrap();
        let mut point = vec![4u8];
        point.extend(x);
        point.extend(y);
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], key.kid);
        assert_eq!(header["alg"], "ES256");
    }

    #[test]
    fn rejects_garbage_and_keeps_dev_key_across_loads() {
        assert!(matches!(
            SigningKey::from_pem("secret"),
            Err(KeyError::NotPem)
        ));
        assert!(
            SigningKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .is_err()
        );
        let dir = std::env::temp_dir().join(format!("chatons-key-{}", uuid::Uuid::new_v4()));
        let a = SigningKey::load_or_create_dev(&dir).unwrap();
        let b = SigningKey::load_or_create_dev(&dir).unwrap();
        assert_eq!(a.kid, b.kid);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn jwks_lists_active_then_retired_public_keys() {
        let (key, _) = SigningKey::generate().unwrap();
        let retired =
            parse_retired(r#"{"keys":[{"kty":"EC","kid":"old","crv":"P-256","x":"a","y":"b"}]}"#)
                .unwrap();
        let set = jwks(&key, &retired);
        assert_eq!(set["keys"][0]["kid"], key.kid);
        assert_eq!(set["keys"][1]["kid"], "old");
        assert!(set["keys"][0].get("d").is_none());
        assert!(parse_retired(r#"{"keys":[{"kty":"EC","kid":"x","d":"secret"}]}"#).is_err());
    }

    /// RSA keys come from the `openssl` command (ring cannot generate them): PKCS#8 and the
    /// traditional PKCS#1 block both parse, sign, verify against their own JWK, and the JWK's
    /// modulus is openssl's.
    #[test]
    fn reads_rsa_keys_in_both_pem_forms() {
        let run = |args: &[&str], input: Option<&str>| -> String {
            use std::io::Write;
            let mut child = std::process::Command::new("openssl")
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("the openssl command (scripts/test installs it)");
            if let Some(input) = input {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "openssl {args:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let pkcs8 = run(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            None,
        );
        let pkcs1 = run(&["genrsa", "-traditional", "2048"], None);
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        for pem in [pkcs8, pkcs1] {
            let key = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(key.jwk["alg"], "RS256");
            let token = key.sign_jwt(&json!({"sub": "u1"})).unwrap();
            assert_eq!(verify_jws(&token, &[&key.jwk]), Some(json!({"sub": "u1"})));
            let modulus = run(&["rsa", "-noout", "-modulus"], Some(&pem));
            let n = URL_SAFE_NO_PAD
                .decode(key.jwk["n"].as_str().unwrap())
                .unwrap();
            assert_eq!(modulus.trim(), format!("Modulus={}", hex::encode_upper(n)));
            assert_eq!(key.jwk["e"], "AQAB");
        }
        assert!(matches!(
            SigningKey::from_pem("not a key"),
            Err(KeyError::NotPem)
        ));
    }
}
