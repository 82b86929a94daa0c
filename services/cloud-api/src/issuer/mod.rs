//! The OpenID Connect issuer's core: signing keys and JWKS, registered clients, authorization
//! codes and device grants (stores), PKCE and id_token claims, and the discovery document. No HTTP here: the
//! routes are the `oidc` adapter.

pub mod claims;
pub mod clients;
pub mod codes;
pub mod device;
pub mod keys;
pub mod pkce;

use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};

use crate::Config;
use clients::Client;
use codes::{AuthCodes, MemoryAuthCodes, PgAuthCodes};
use device::{DeviceGrants, MemoryDeviceGrants, PgDeviceGrants};
use keys::SigningKey;

/// The client id portal (browser) sessions are issued to.
pub const PORTAL_CLIENT: &str = "chatons-portal";

/// The grant type a device polls the token endpoint with (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub struct Oidc {
    /// The issuer identifier, without a trailing slash (relying parties compare it exactly).
    pub issuer: String,
    pub signing: SigningKey,
    pub retired: Vec<Value>,
    pub clients: Vec<Client>,
    pub codes: Arc<dyn AuthCodes>,
    pub devices: Arc<dyn DeviceGrants>,
}

impl Oidc {
    pub fn build(config: &Config, pool: Option<&sqlx::PgPool>) -> anyhow::Result<Self> {
        let signing = match &config.jwt_signing_key {
            Some(pem) => SigningKey::from_pem(pem.expose()).context("JWT_SIGNING_KEY")?,
            None => {
                tracing::warn!(
                    "JWT_SIGNING_KEY is not set: using a development key from CHATONS_DATA_DIR."
                );
                SigningKey::load_or_create_dev(&config.data_dir)
                    .context("development signing key")?
            }
        };
        let retired = match &config.oidc_retired_keys {
            Some(raw) => keys::parse_retired(raw)
                .map_err(anyhow::Error::msg)
                .context("JWT_RETIRED_PUBLIC_KEYS")?,
            None => Vec::new(),
        };
        let mut clients = vec![
            Client::desktop(config.client_id.clone(), config.client_secret.clone()),
            Client::cli(),
        ];
        if let Some(raw) = &config.oidc_extra_clients {
            clients.extend(
                clients::parse_extra_clients(raw)
                    .map_err(anyhow::Error::msg)
                    .context("OIDC_EXTRA_CLIENTS")?,
            );
        }
        let (codes, devices): (Arc<dyn AuthCodes>, Arc<dyn DeviceGrants>) = match pool {
            Some(pool) => (
                Arc::new(PgAuthCodes(pool.clone())),
                Arc::new(PgDeviceGrants(pool.clone())),
            ),
            None => (
                Arc::new(MemoryAuthCodes::default()),
                Arc::new(MemoryDeviceGrants::default()),
            ),
        };
        Ok(Self {
            issuer: config.issuer.as_str().trim_end_matches('/').to_owned(),
            signing,
            retired,
            clients,
            codes,
            devices,
        })
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("/oidc/authorize"),
            "token_endpoint": self.endpoint("/oidc/token"),
            "device_authorization_endpoint": self.endpoint("/oidc/device/authorize"),
            "userinfo_endpoint": self.endpoint("/oidc/userinfo"),
            "jwks_uri": self.endpoint("/oidc/jwks.json"),
            "revocation_endpoint": self.endpoint("/oidc/revoke"),
            "end_session_endpoint": self.endpoint("/oidc/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.signing.alg.name()],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "amr", "nonce", "at_hash", "azp",
                                  "email", "email_verified", "name", "preferred_username"],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
        })
    }

    pub fn jwks(&self) -> Value {
        keys::jwks(&self.signing, &self.retired)
    }

    /// The claims of an id_token this issuer signed (active or retired key, `iss` ours); the
    /// expiry is not checked: an end-session hint may be an old token.
    pub fn verified_id_token(&self, token: &str) -> Option<Value> {
        let keys: Vec<&Value> = std::iter::once(&self.signing.jwk)
            .chain(&self.retired)
            .collect();
        keys::verify_jws(token, &keys).filter(|c| c["iss"] == self.issuer.as_str())
    }
}
