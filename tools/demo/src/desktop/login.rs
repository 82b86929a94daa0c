//! The desktop's sign-in (reference §C.1): PKCE S256 with a 32-byte verifier, the authorize
//! URL the app opens in the browser, the login form filled as a browser would (its hidden
//! fields, CSRF token included, and its submit button), the `chatons://` redirect, and the
//! code exchanged with the desktop's JSON body.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use super::{Failure, step};
use crate::report::Report;

pub const CLIENT_ID: &str = "chatons-desktop";
pub const REDIRECT_URI: &str = "chatons://cloud/auth/callback";

/// `(code_verifier, S256 code_challenge)`: 32 random bytes, base64url, as the desktop.
pub fn pkce_pair() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The URL the desktop opens: its `authorization_endpoint` with the app's parameters.
pub fn authorize_url(
    endpoint: &str,
    base_url: &str,
    state: &str,
    challenge: &str,
) -> anyhow::Result<String> {
    let mut url = url::Url::parse(endpoint).context("authorization_endpoint is not a URL")?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", state)
        .append_pair("nonce", &uuid::Uuid::new_v4().to_string())
        .append_pair("base_url", base_url)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// A form of a page: where it posts and the fields a browser would send without typing.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
    /// Names of the visible inputs (the ones a person fills).
    pub inputs: Vec<String>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The first `method="post"` form that has a field named `must_have`.
pub fn find_form(html: &str, must_have: &str) -> Option<Form> {
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let after = &rest[start..];
        let end = after.find("</form>").unwrap_or(after.len());
        let body = &after[..end];
        rest = &after[end..];
        let open = &body[..body.find('>')?];
        if !attr(open, "method").is_some_and(|m| m.eq_ignore_ascii_case("post")) {
            continue;
        }
        let mut form = Form {
            action: attr(open, "action").unwrap_or_default(),
            fields: Vec::new(),
            inputs: Vec::new(),
        };
        for piece in body.split('<').skip(1) {
            let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
            let kind = tag.split_whitespace().next().unwrap_or_default();
            let Some(name) = attr(tag, "name") else {
                continue;
            };
            let ty = attr(tag, "type").unwrap_or_default();
            match (kind, ty.as_str()) {
                ("input", "hidden") => form
                    .fields
                    .push((name, attr(tag, "value").unwrap_or_default())),
                // The first submit button is the one a person clicks.
                ("button" | "input", "submit") if !form.fields.iter().any(|(n, _)| *n == name) => {
                    form.fields
                        .push((name, attr(tag, "value").unwrap_or_default()))
                }
                ("button", _) | ("input", "submit") => {}
                ("input", _) | ("textarea", _) | ("select", _) => form.inputs.push(name),
                _ => {}
            }
        }
        if form.inputs.iter().any(|n| n == must_have) {
            return Some(form);
        }
    }
    None
}

/// The query of the `chatons://` redirect: `code` and `state`, or the `error` it carries.
pub fn callback(location: &str, state: &str) -> anyhow::Result<String> {
    if !location.starts_with(REDIRECT_URI) {
        bail!("redirected to {location:?}, not to {REDIRECT_URI}");
    }
    let url = url::Url::parse(location).context("the redirect is not a URL")?;
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    if let Some(e) = q.get("error") {
        bail!(
            "the redirect carries error={e} {}",
            q.get("error_description").cloned().unwrap_or_default()
        );
    }
    if q.get("state").map(String::as_str) != Some(state) {
        bail!("the redirect's state does not match the one sent");
    }
    q.get("code").cloned().context("the redirect has no code")
}

/// The three sign-in steps; returns the access token (never printed).
pub async fn sign_in(
    report: &mut Report,
    client: &reqwest::Client,
    api: &str,
    authorize_endpoint: &str,
    email: &str,
    password: &str,
) -> Result<String, Failure> {
    // The system browser: keeps cookies (the form's CSRF cookie), does not follow redirects
    // (the last one goes to chatons://, which only the desktop handles).
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure {
            step: "login page",
            error: e.into(),
        })?;
    let state = uuid::Uuid::new_v4().to_string();
    let (verifier, challenge) = pkce_pair();

    let (page_url, form) = step(report, "login page", async {
        let url = authorize_url(authorize_endpoint, api, &state, &challenge)?;
        let resp = browser
            .get(&url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("request failed: {}", e.without_url()))?;
        let status = resp.status();
        if status != 200 {
            bail!("GET /oidc/authorize answered HTTP {} instead of the login page", status.as_u16());
        }
        let page_url = resp.url().clone();
        let html = resp.text().await.context("reading the page")?;
        let form = find_form(&html, "password").context("the page has no login form")?;
        if !form.fields.iter().any(|(n, v)| n == "csrf_token" && !v.is_empty()) {
            bail!("the login form carries no CSRF token");
        }
        let detail = format!(
            "GET /oidc/authorize (client {CLIENT_ID}, PKCE S256): form posting to {} with {} hidden fields",
            form.action,
            form.fields.len()
        );
        Ok(((page_url, form), detail))
    })
    .await?;

    let code = step(report, "sign in", async {
        let target = page_url.join(&form.action).context("the form's action")?;
        let mut fields = form.fields.clone();
        fields.push(("email".into(), email.to_owned()));
        fields.push(("password".into(), password.to_owned()));
        let resp = browser
            .post(target)
            .form(&fields)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("request failed: {}", e.without_url()))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let body = resp.text().await.unwrap_or_default();
            let hint = body
                .split("class=\"error\"")
                .nth(1)
                .and_then(|r| r.split('>').nth(1))
                .and_then(|r| r.split('<').next())
                .unwrap_or("no redirect");
            bail!("the login form answered HTTP {}: {hint}", status.as_u16());
        };
        let code = callback(&location, &state)?;
        Ok((
            code,
            format!(
                "HTTP {} to {REDIRECT_URI}?code=…&state=… (state matches)",
                status.as_u16()
            ),
        ))
    })
    .await?;

    step(report, "token exchange", async {
        let body = super::http::ok(client.post(format!("{api}/oidc/token")).json(
            &serde_json::json!({
                "grantType": "authorization_code", "clientId": CLIENT_ID, "code": code,
                "redirectUri": REDIRECT_URI, "codeVerifier": verifier,
            }),
        ))
        .await?;
        let access = super::http::field(&body, &["session", "accessToken"])?.to_owned();
        let detail = format!(
            "POST /oidc/token (desktop JSON body): session for {}, expires {}{}",
            body["user"]["email"].as_str().unwrap_or("?"),
            body["session"]["expiresAt"].as_str().unwrap_or("?"),
            if body["idToken"].is_string() {
                ", id_token"
            } else {
                ""
            }
        );
        Ok((access, detail))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<form method="get" action="/search"><input name="q"></form>
      <form method="post" action="/oidc/authorize">
        <input type="hidden" name="csrf_token" value="tok&amp;1">
        <input type="hidden" name="state" value="s1">
        <label for="email">Email</label>
        <input id="email" name="email" type="email" required value="">
        <input id="password" name="password" type="password" required>
        <button class="full" type="submit" name="action" value="login">Sign in</button>
      </form>"#;

    #[test]
    fn reads_the_login_form_as_a_browser() {
        let form = find_form(PAGE, "email").expect("the login form");
        assert_eq!(form.action, "/oidc/authorize");
        assert_eq!(
            form.fields,
            vec![
                ("csrf_token".to_owned(), "tok&1".to_owned()),
                ("state".to_owned(), "s1".to_owned()),
                ("action".to_owned(), "login".to_owned()),
            ]
        );
        assert_eq!(form.inputs, vec!["email", "password"]);
        assert!(find_form(PAGE, "otp").is_none());
    }

    #[test]
    fn pkce_is_s256_of_a_32_byte_verifier() {
        let (v, c) = pkce_pair();
        assert_eq!(URL_SAFE_NO_PAD.decode(&v).unwrap().len(), 32);
        assert_eq!(c, URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())));
        assert_ne!(pkce_pair().0, v);
    }

    #[test]
    fn callback_checks_target_state_and_error() {
        let ok = format!("{REDIRECT_URI}?code=c1&state=s1&iss=x");
        assert_eq!(callback(&ok, "s1").unwrap(), "c1");
        assert!(callback(&ok, "other").is_err());
        assert!(callback("https://evil.test/?code=c1&state=s1", "s1").is_err());
        let denied = format!("{REDIRECT_URI}?error=access_denied&state=s1");
        assert!(
            callback(&denied, "s1")
                .unwrap_err()
                .to_string()
                .contains("access_denied")
        );
    }
}
