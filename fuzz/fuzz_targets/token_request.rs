//! The token endpoint's body parsing: form-encoded (RFC 6749) and the desktop's JSON, through
//! cloud-common's `parse_form` / `parse_json` (what `ApiForm` / `ApiJson` and cloud-api's token
//! endpoint use). Any input must parse or be a 400 — never a panic, never another status.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The token request's fields, with the desktop's camelCase aliases.
#[derive(Debug, Default, Deserialize)]
#[allow(dead_code)]
struct TokenRequest {
    #[serde(alias = "grantType")]
    grant_type: Option<String>,
    code: Option<String>,
    #[serde(alias = "redirectUri")]
    redirect_uri: Option<String>,
    #[serde(alias = "codeVerifier")]
    code_verifier: Option<String>,
    #[serde(alias = "refreshToken")]
    refresh_token: Option<String>,
    #[serde(alias = "clientId")]
    client_id: Option<String>,
    #[serde(alias = "clientSecret")]
    client_secret: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    use cloud_common::extract::{parse_form, parse_json};
    for result in [
        parse_form::<TokenRequest>(data).map(|_| ()),
        parse_json::<TokenRequest>(data).map(|_| ()),
        parse_form::<HashMap<String, String>>(data).map(|_| ()),
        parse_json::<serde_json::Value>(data).map(|_| ()),
    ] {
        if let Err(e) = result {
            assert_eq!(e.status.as_u16(), 400, "{e:?}");
            assert!(!e.message.is_empty());
        }
    }
});
