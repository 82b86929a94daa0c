//! The id_token: standard OIDC Core claims plus email, email_verified and name, so the desktop
//! needs no userinfo call.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::domain::Timestamp;

/// What goes into one id_token.
pub struct IdTokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub email_verified: bool,
    pub name: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: Timestamp,
    /// Space-separated `amr` values (RFC 8176); empty: no claim.
    pub amr: &'a str,
    pub now: Timestamp,
    pub ttl_secs: i64,
    pub access_token: Option<&'a str>,
}

pub fn id_token_claims(input: &IdTokenInput<'_>) -> Value {
    let iat = input.now.timestamp();
    let mut claims = json!({
        "iss": input.issuer,
        "sub": input.subject,
        "aud": input.client_id,
        "azp": input.client_id,
        "iat": iat,
        "exp": iat + input.ttl_secs,
        "auth_time": input.auth_time.timestamp(),
        "email": input.email,
        "email_verified": input.email_verified,
        "name": input.name,
        "preferred_username": input.email.split('@').next().unwrap_or(input.email),
    });
    let amr: Vec<&str> = input.amr.split_whitespace().collect();
    if !amr.is_empty() {
        claims["amr"] = json!(amr);
    }
    if let Some(nonce) = input.nonce {
        claims["nonce"] = Value::String(nonce.to_owned());
    }
    if let Some(token) = input.access_token {
        claims["at_hash"] = Value::String(at_hash(token));
    }
    claims
}

/// OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the access token (both ES256 and
/// RS256 use SHA-256).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_carry_profile_nonce_and_at_hash() {
        let now = chrono::Utc::now();
        let claims = id_token_claims(&IdTokenInput {
            issuer: "https://cloud.example",
            client_id: "chatons-desktop",
            subject: "user-1",
            email: "ada@example.com",
            email_verified: true,
            name: "Ada",
            nonce: Some("n-1"),
            auth_time: now,
            amr: "pwd otp mfa",
            now,
            ttl_secs: 60,
            access_token: Some("tok"),
        });
        assert_eq!(claims["aud"], "chatons-desktop");
        assert_eq!(claims["exp"].as_i64(), Some(now.timestamp() + 60));
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["preferred_username"], "ada");
        assert_eq!(claims["at_hash"].as_str().map(str::len), Some(22));
    }
}
