//! Registered OAuth clients and their redirect URIs.
//!
//! The desktop is a public client (RFC 8252): it may use its private-use scheme callback
//! `chatons://cloud/auth/callback` or a loopback redirect `http://127.0.0.1:{any port}/{path}`
//! (also `[::1]`), where only the port may vary. Every other redirect URI must match a registered
//! one exactly, byte for byte.

use serde::Deserialize;
use url::Url;

use cloud_common::Secret;

pub const DESKTOP_CALLBACK: &str = "chatons://cloud/auth/callback";

/// The command-line client, registered by default: public, device grant only (RFC 8628).
pub const CLI_CLIENT: &str = "chatons-cli";

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// What the consent and device pages call it.
    pub label: String,
    /// `None`: public client (PKCE only). `Some`: must authenticate at the token endpoint.
    pub secret: Option<Secret>,
    pub redirect_uris: Vec<String>,
    /// Loopback redirects with any port are accepted (native apps).
    pub allow_loopback: bool,
    pub post_logout_redirect_uris: Vec<String>,
    /// May start device authorization grants (RFC 8628).
    pub device_grant: bool,
}

impl Client {
    /// The desktop client (`OIDC_CLIENT_ID`, optional `OIDC_CLIENT_SECRET`).
    pub fn desktop(id: String, secret: Option<Secret>) -> Self {
        Self {
            id,
            label: "Chatons desktop".to_owned(),
            secret,
            redirect_uris: vec![DESKTOP_CALLBACK.to_owned()],
            allow_loopback: true,
            post_logout_redirect_uris: vec![DESKTOP_CALLBACK.to_owned()],
            device_grant: false,
        }
    }

    /// The command line (`chatons-cli`): no redirect URI at all, so it can only sign in through
    /// the device grant, on machines without a browser of their own (SSH, containers).
    pub fn cli() -> Self {
        Self {
            id: CLI_CLIENT.to_owned(),
            label: "Chatons command line".to_owned(),
            secret: None,
            redirect_uris: Vec::new(),
            allow_loopback: false,
            post_logout_redirect_uris: Vec::new(),
            device_grant: true,
        }
    }

    /// Whether `uri` may receive this client's authorization responses.
    pub fn accepts_redirect(&self, uri: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == uri) {
            return true;
        }
        self.allow_loopback && is_loopback_redirect(uri)
    }

    pub fn accepts_post_logout_redirect(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
            || self.redirect_uris.iter().any(|r| r == uri)
            || (self.allow_loopback && is_loopback_redirect(uri))
    }
}

/// `http://127.0.0.1:{port}/{path}` or `http://[::1]:{port}/{path}`, no credentials, no fragment.
/// `localhost` is refused (RFC 8252 §8.3: it may resolve elsewhere).
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http"
        && matches!(url.host_str(), Some("127.0.0.1") | Some("[::1]"))
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
}

/// Extra clients from `OIDC_EXTRA_CLIENTS` (JSON array).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSpec {
    pub id: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub device_grant: bool,
}

impl From<ClientSpec> for Client {
    fn from(spec: ClientSpec) -> Self {
        Self {
            label: spec.id.clone(),
            id: spec.id,
            secret: spec.secret.filter(|s| !s.is_empty()).map(Secret::new),
            redirect_uris: spec.redirect_uris,
            allow_loopback: false,
            post_logout_redirect_uris: spec.post_logout_redirect_uris,
            device_grant: spec.device_grant,
        }
    }
}

/// Parses `OIDC_EXTRA_CLIENTS`; every redirect URI must be absolute and fragment-free.
pub fn parse_extra_clients(raw: &str) -> Result<Vec<Client>, String> {
    let specs: Vec<ClientSpec> =
        serde_json::from_str(raw).map_err(|e| format!("not a JSON client list: {e}"))?;
    for spec in &specs {
        if spec.id.trim().is_empty() {
            return Err("a client has an empty id".into());
        }
        for uri in spec
            .redirect_uris
            .iter()
            .chain(&spec.post_logout_redirect_uris)
        {
            match Url::parse(uri) {
                Ok(u) if u.fragment().is_none() => {}
                _ => {
                    return Err(format!(
                        "client {}: {uri:?} is not an absolute URI without fragment",
                        spec.id
                    ));
                }
            }
        }
    }
    Ok(specs.into_iter().map(Client::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_accepts_its_callback_and_loopback_only() {
        let c = Client::desktop("chatons-desktop".into(), None);
        assert!(c.accepts_redirect(DESKTOP_CALLBACK));
        assert!(c.accepts_redirect("http://127.0.0.1:53123/callback"));
        assert!(c.accepts_redirect("http://127.0.0.1:1/"));
        assert!(c.accepts_redirect("http://[::1]:8080/cb"));
        assert!(!c.accepts_redirect("chatons://cloud/auth/callback/extra"));
        assert!(!c.accepts_redirect("chatons://evil/auth/callback"));
        assert!(!c.accepts_redirect("http://localhost:5000/cb"));
        assert!(!c.accepts_redirect("https://127.0.0.1:5000/cb"));
        assert!(!c.accepts_redirect("http://127.0.0.1.evil.com/cb"));
        assert!(!c.accepts_redirect("http://user@127.0.0.1:5/cb"));
        assert!(!c.accepts_redirect("http://127.0.0.1:5/cb#frag"));
        assert!(!c.accepts_redirect("https://evil.example/cb"));
    }

    #[test]
    fn extra_clients_match_exactly() {
        let clients = parse_extra_clients(
            r#"[{"id":"rp","secret":"s","redirectUris":["https://rp.example/cb"]}]"#,
        )
        .unwrap();
        assert!(clients[0].accepts_redirect("https://rp.example/cb"));
        assert!(!clients[0].accepts_redirect("https://rp.example/cb?x=1"));
        assert!(!clients[0].accepts_redirect("http://127.0.0.1:5/cb"));
        assert!(parse_extra_clients(r#"[{"id":"rp","redirectUris":["/relative"]}]"#).is_err());
        assert!(parse_extra_clients("nope").is_err());
    }
}
