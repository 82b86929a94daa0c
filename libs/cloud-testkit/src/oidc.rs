//! What a test needs to play the desktop's sign-in against cloud-api: a PKCE pair, the
//! authorization URL of `chatons-desktop`, the login form's CSRF token and the redirect's query.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// A fresh `(code_verifier, S256 code_challenge)`.
pub fn pkce_pair() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `GET {base}/oidc/authorize` for the desktop client, as the app builds it.
pub fn desktop_authorize_url(
    base: &str,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
) -> String {
    let mut url = url::Url::parse(&format!("{base}/oidc/authorize")).expect("base URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "chatons-desktop")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", state)
        .append_pair("nonce", "n-0S6_WzA2Mj")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// The hidden `csrf_token` value of a rendered form.
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The query parameters of a redirect `Location`.
pub fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .expect("redirect URL")
        .query_pairs()
        .into_owned()
        .collect()
}
