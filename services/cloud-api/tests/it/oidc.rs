//! The OIDC issuer seen from outside: a standard relying party (the `openidconnect` crate), the
//! desktop's flows, and each way a request can be wrong, with the exact OAuth error.

use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloud_testkit::oidc::{csrf_from, pkce_pair, query_of};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const LOOPBACK: &str = "http://127.0.0.1:53682/callback";
const DESKTOP: &str = "chatons://cloud/auth/callback";

pub(crate) use crate::web::browser;

pub(crate) async fn signup(app: &TestApp, email: &str) -> Value {
    let body = json!({"email": email, "displayName": "Ada Lovelace", "password": PASSWORD});
    let (status, body) = app.post_public("/v1/web/signup", body).await;
    assert_eq!(status, 201, "signup: {body}");
    body
}

/// Opens `authorize_url` in a cookie-keeping client, fills the login form, and returns the
/// final redirect's `Location`.
pub(crate) async fn login_through(
    browser: &reqwest::Client,
    app: &TestApp,
    authorize_url: &str,
    email: &str,
) -> String {
    let page = browser.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in to Chatons Cloud"));
    let mut form: Vec<(String, String)> = url::Url::parse(authorize_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    form.push(("csrf_token".into(), csrf_from(&html)));
    form.push(("email".into(), email.into()));
    form.push(("password".into(), PASSWORD.into()));
    form.push(("action".into(), "login".into()));
    let resp = browser
        .post(format!("{}/oidc/authorize", app.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        303,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    resp.headers()["location"].to_str().unwrap().to_owned()
}

pub(crate) fn desktop_authorize_url(
    app: &TestApp,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
) -> String {
    cloud_testkit::oidc::desktop_authorize_url(&app.base, redirect_uri, challenge, state)
}

/// Runs the desktop's login and returns `(code, verifier)`.
pub(crate) async fn desktop_code(
    app: &TestApp,
    email: &str,
    redirect_uri: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let location = login_through(
        &browser(),
        app,
        &desktop_authorize_url(app, redirect_uri, &challenge, "st-1"),
        email,
    )
    .await;
    assert!(location.starts_with(redirect_uri), "{location}");
    let q = query_of(&location);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.base);
    (q["code"].clone(), verifier)
}

pub(crate) async fn token_form(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/oidc/token", app.base))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

pub(crate) async fn exchange(
    app: &TestApp,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> (u16, Value) {
    token_form(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "chatons-desktop"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
        ],
    )
    .await
}

async fn bootstrap_status(app: &TestApp, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/bootstrap", app.base))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_standard_relying_party_completes_the_whole_flow() {
    let app = spawn_app().await;
    let account = signup(&app, "rp@example.com").await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new("chatons-desktop".into()), None)
            .set_redirect_uri(RedirectUrl::new(LOOPBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let location = login_through(&browser(), &app, auth_url.as_str(), "rp@example.com").await;
    let q = query_of(&location);
    assert_eq!(&q["state"], csrf_state.secret());
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");

    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id_token = tokens.id_token().expect("id_token");
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("id_token verifies against the JWKS");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("rp@example.com"));
    assert_eq!(
        claims.email_verified(),
        account["user"]["emailVerified"].as_bool()
    );
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Ada Lovelace")
    );
    assert!(claims.auth_time().is_some());
    let at_hash = claims.access_token_hash().expect("at_hash");
    let expected =
        URL_SAFE_NO_PAD.encode(&Sha256::digest(tokens.access_token().secret().as_bytes())[..16]);
    assert_eq!(at_hash.as_str(), expected);

    // A tampered id_token (payload changed, signature kept) fails verification.
    let raw = id_token.to_string();
    let parts: Vec<&str> = raw.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["email"] = json!("mallory@example.com");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    let forged = CoreIdToken::from_str(&forged).unwrap();
    assert!(
        forged.claims(&verifier, &nonce).is_err(),
        "tampered id_token must not verify"
    );

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("rp@example.com"));

    let refresh = tokens
        .refresh_token()
        .expect("offline_access yields a refresh token")
        .clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let rotated = refreshed
        .refresh_token()
        .expect("rotated refresh token")
        .clone();
    assert_ne!(rotated.secret(), refresh.secret());

    // RFC 7009 revocation. (The RP library refuses revocation endpoints that are not https, so
    // this one request is sent as the plain form POST the RFC defines.)
    let resp = reqwest::Client::new()
        .post(format!("{}/oidc/revoke", app.base))
        .form(&[
            ("token", rotated.secret().as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", "chatons-desktop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after = client
        .exchange_refresh_token(&rotated)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(after.is_err(), "a revoked refresh token must not refresh");
    assert_eq!(
        bootstrap_status(&app, refreshed.access_token().secret()).await,
        401,
        "revoking the refresh token revokes its family"
    );
}

#[tokio::test]
async fn desktop_login_with_its_custom_scheme_yields_working_tokens() {
    let app = spawn_app().await;
    signup(&app, "desk@example.com").await;
    let (code, verifier) = desktop_code(&app, "desk@example.com", DESKTOP).await;
    // The desktop's own JSON body, camelCase, as the first system defined it.
    let resp = reqwest::Client::new()
        .post(format!("{}/oidc/token", app.base))
        .json(&json!({"grantType":"authorization_code","clientId":"chatons-desktop","code":code,"redirectUri":DESKTOP,"codeVerifier":verifier}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["session"]["accessToken"].is_string()
            && body["idToken"].is_string()
            && body["user"]["email"] == "desk@example.com"
    );
    assert_eq!(
        bootstrap_status(&app, body["session"]["accessToken"].as_str().unwrap()).await,
        200
    );
    // Refresh through the desktop's JSON shape too.
    let refresh = json!({"grantType":"refresh_token","clientId":"chatons-desktop","redirectUri":DESKTOP,"refreshToken":body["session"]["refreshToken"]});
    let (status, body) = app.post_public("/oidc/token", refresh).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn desktop_login_with_a_loopback_redirect_and_the_legacy_exchange() {
    let app = spawn_app().await;
    signup(&app, "loop@example.com").await;
    let (code, verifier) =
        desktop_code(&app, "loop@example.com", "http://127.0.0.1:61234/auth").await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/auth/desktop/exchange", app.base))
        .json(&json!({"code":code,"clientId":"chatons-desktop","redirectUri":"http://127.0.0.1:61234/auth","codeVerifier":verifier}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        bootstrap_status(&app, body["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn legacy_desktop_auth_requires_a_real_pkce_challenge() {
    let app = spawn_app().await;
    let none = browser()
        .get(format!("{}/desktop/auth?state=abc", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 400);
    let (_, challenge) = pkce_pair();
    let ok = browser()
        .get(format!(
            "{}/desktop/auth?state=abc&code_challenge={challenge}&code_challenge_method=S256",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 302);
    let location = ok.headers()["location"].to_str().unwrap();
    let q = query_of(location);
    assert_eq!(q["code_challenge"], challenge);
    assert_eq!(q["redirect_uri"], DESKTOP);
}

#[tokio::test]
async fn a_wrong_verifier_is_invalid_grant_and_does_not_burn_the_code() {
    let app = spawn_app().await;
    signup(&app, "wv@example.com").await;
    let (code, verifier) = desktop_code(&app, "wv@example.com", LOOPBACK).await;
    let (other, _) = pkce_pair();
    let (status, body) = exchange(&app, &code, &other, LOOPBACK).await;
    assert_error(status, &body, 400, "invalid_grant");
    let (status, _) = exchange(&app, &code, &verifier, LOOPBACK).await;
    assert_eq!(status, 200, "the right verifier still works");
}

#[tokio::test]
async fn missing_or_plain_pkce_is_refused_at_the_authorization_endpoint() {
    let app = spawn_app().await;
    let base = format!(
        "{}/oidc/authorize?response_type=code&client_id=chatons-desktop&redirect_uri={LOOPBACK}&state=s1",
        app.base
    );
    for extra in [
        "",
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=plain",
    ] {
        let resp = browser()
            .get(format!("{base}{extra}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let q = query_of(resp.headers()["location"].to_str().unwrap());
        assert_eq!(q["error"], "invalid_request");
        assert_eq!(q["state"], "s1");
        assert!(!q.contains_key("code"));
    }
    // And the token endpoint refuses an exchange without a verifier.
    let (status, body) = token_form(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "chatons-desktop"),
            ("code", "x"),
            ("redirect_uri", LOOPBACK),
        ],
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let app = spawn_app().await;
    signup(&app, "reuse@example.com").await;
    let (code, verifier) = desktop_code(&app, "reuse@example.com", LOOPBACK).await;
    let (status, first) = exchange(&app, &code, &verifier, LOOPBACK).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(bootstrap_status(&app, access).await, 200);
    let (status, body) = exchange(&app, &code, &verifier, LOOPBACK).await;
    assert_error(status, &body, 400, "invalid_grant");
    assert_eq!(
        bootstrap_status(&app, access).await,
        401,
        "tokens of a replayed code are revoked"
    );
    let (status, _) = token_form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "chatons-desktop"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn redirect_uri_mismatches_are_refused() {
    let app = spawn_app().await;
    signup(&app, "mm@example.com").await;
    let (_, challenge) = pkce_pair();
    // Unregistered at the authorization endpoint: a page, never a redirect.
    let resp = browser()
        .get(desktop_authorize_url(
            &app,
            "https://evil.example/cb",
            &challenge,
            "s",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    // Registered but different at the token endpoint.
    let (code, verifier) = desktop_code(&app, "mm@example.com", LOOPBACK).await;
    let (status, body) = exchange(&app, &code, &verifier, "http://127.0.0.1:53682/other").await;
    assert_error(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let app = spawn_app_with(&[("CHATONS_DESKTOP_AUTH_REQUEST_TTL_SECONDS", "1")]).await;
    signup(&app, "exp@example.com").await;
    let (code, verifier) = desktop_code(&app, "exp@example.com", LOOPBACK).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = exchange(&app, &code, &verifier, LOOPBACK).await;
    assert_error(status, &body, 400, "invalid_grant");
}

/// The desktop's refresh call: JSON, camelCase (reference part C.3), from `forwarded_for`.
async fn desktop_refresh(app: &TestApp, token: &str, forwarded_for: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(app.url("/oidc/token")).json(
        &json!({"grantType": "refresh_token", "clientId": "chatons-desktop",
                      "redirectUri": "chatons://cloud/auth/callback", "refreshToken": token}),
    );
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_family_after_the_grace_window() {
    let app = spawn_app_with(&[("CHATONS_REFRESH_REUSE_GRACE_SECONDS", "1")]).await;
    signup(&app, "rt@example.com").await;
    let (code, verifier) = desktop_code(&app, "rt@example.com", LOOPBACK).await;
    let (_, first) = exchange(&app, &code, &verifier, LOOPBACK).await;
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let app = &app;
        async move {
            token_form(
                app,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", "chatons-desktop"),
                    ("refresh_token", &token),
                ],
            )
            .await
        }
    };
    let (status, second) = refresh(old.clone()).await;
    assert_eq!(status, 200);
    // Within the window: the same successor pair again, nothing revoked.
    let (status, again) = refresh(old.clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["access_token"], second["access_token"]);
    assert_eq!(again["refresh_token"], second["refresh_token"]);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    // After it: re-use revokes the family.
    let (status, body) = refresh(old).await;
    assert_error(status, &body, 400, "invalid_grant");
    let (status, _) = refresh(second["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, 400, "the newest token of the family is revoked too");
    assert_eq!(
        bootstrap_status(&app, second["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_get_the_same_pair() {
    let app = spawn_app().await;
    signup(&app, "cc@example.com").await;
    let (code, verifier) = desktop_code(&app, "cc@example.com", LOOPBACK).await;
    let (_, first) = exchange(&app, &code, &verifier, LOOPBACK).await;
    let token = first["refresh_token"].as_str().unwrap();
    let ((sa, a), (sb, b)) = tokio::join!(
        desktop_refresh(&app, token, None),
        desktop_refresh(&app, token, None)
    );
    assert_eq!((sa, sb), (200, 200), "{a} {b}");
    assert_eq!(a["session"]["accessToken"], b["session"]["accessToken"]);
    assert_eq!(a["session"]["refreshToken"], b["session"]["refreshToken"]);
    let access = a["session"]["accessToken"].as_str().unwrap();
    assert_eq!(bootstrap_status(&app, access).await, 200);
    let (status, next) =
        desktop_refresh(&app, a["session"]["refreshToken"].as_str().unwrap(), None).await;
    assert_eq!(status, 200, "the shared successor refreshes: {next}");
}

#[tokio::test]
async fn a_refresh_refused_with_429_rotates_nothing() {
    // No grace: had a refused request rotated the token, presenting it again would be a re-use.
    let app = spawn_app_with(&[
        ("CHATONS_TOKEN_RATE_PER_SECOND", "1"),
        ("CHATONS_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("CHATONS_REFRESH_REUSE_GRACE_SECONDS", "0"),
    ])
    .await;
    signup(&app, "rl@example.com").await;
    let (code, verifier) = desktop_code(&app, "rl@example.com", LOOPBACK).await;
    let (_, first) = exchange(&app, &code, &verifier, LOOPBACK).await;
    let mut token = first["refresh_token"].as_str().unwrap().to_owned();
    // Per user: burst 5 (the exchange took no user token); each call from a fresh address.
    let mut statuses = Vec::new();
    for n in 0..6 {
        let (status, body) = desktop_refresh(&app, &token, Some(&format!("198.51.100.{n}"))).await;
        statuses.push(status);
        if status == 200 {
            token = body["session"]["refreshToken"].as_str().unwrap().to_owned();
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = desktop_refresh(&app, &token, Some("198.51.100.50")).await;
    assert_eq!(
        status, 200,
        "the token refused by the per-user limit still works: {body}"
    );
    token = body["session"]["refreshToken"].as_str().unwrap().to_owned();

    // Per IP: one address spends its burst on junk, then presents the real token.
    let ip = "203.0.113.9";
    for _ in 0..5 {
        desktop_refresh(&app, "refresh-unknown", Some(ip)).await;
    }
    let (status, _) = desktop_refresh(&app, &token, Some(ip)).await;
    assert_eq!(status, 429);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body) = desktop_refresh(&app, &token, Some(ip)).await;
    assert_eq!(
        status, 200,
        "the token refused by the per-IP limit still works: {body}"
    );
}

#[tokio::test]
async fn unknown_clients_are_refused() {
    let app = spawn_app().await;
    let (status, body) = token_form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "nobody"),
            ("refresh_token", "x"),
        ],
    )
    .await;
    assert_error(status, &body, 401, "invalid_client");
    let authorize = format!(
        "{}/oidc/authorize?response_type=code&client_id=nobody&redirect_uri={LOOPBACK}",
        app.base
    );
    let resp = browser().get(authorize).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test]
async fn prompt_none_and_a_forged_form_behave() {
    let app = spawn_app().await;
    signup(&app, "pn@example.com").await;
    let (_, challenge) = pkce_pair();
    let url = format!(
        "{}&prompt=none",
        desktop_authorize_url(&app, LOOPBACK, &challenge, "s9")
    );
    let resp = browser().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        query_of(resp.headers()["location"].to_str().unwrap())["error"],
        "login_required"
    );

    // Signed in once, prompt=none answers a code without any page.
    let b = browser();
    login_through(
        &b,
        &app,
        &desktop_authorize_url(&app, LOOPBACK, &challenge, "s1"),
        "pn@example.com",
    )
    .await;
    let resp = b.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert!(query_of(resp.headers()["location"].to_str().unwrap()).contains_key("code"));

    // A login POST without the CSRF pair changes nothing.
    let form = [
        ("client_id", "chatons-desktop"),
        ("email", "pn@example.com"),
        ("password", PASSWORD),
        ("action", "login"),
    ];
    let resp = crate::web::submit(&reqwest::Client::new(), app.url("/oidc/authorize"), &form).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_issuer() {
    let app = spawn_app().await;
    let d: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], app.base);
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert!(
        d["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_token"))
    );
    let jwks: Value = reqwest::get(d["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("EC"), Some("ES256"))
    );
    assert!(key.get("d").is_none(), "no private material in the JWKS");
}

#[tokio::test]
async fn the_token_endpoint_is_rate_limited_with_retry_after() {
    // 1 request/s per client IP, burst 5: the sixth immediate request is refused.
    let app = spawn_app_with(&[("CHATONS_TOKEN_RATE_PER_SECOND", "1")]).await;
    let (statuses, retry_after) = token_calls(&app, None, 6).await;
    assert_eq!(
        statuses[..5],
        [400; 5],
        "the first five are judged on their merits"
    );
    assert_eq!(statuses[5], 429);
    assert!(
        retry_after.is_some_and(|v| v >= 1),
        "429 carries Retry-After"
    );
}

/// Sends `n` refresh grants with an unknown token (optionally claiming, through
/// `X-Forwarded-For`, to come from somewhere); returns the statuses and the last Retry-After.
async fn token_calls(
    app: &TestApp,
    forwarded_for: Option<&str>,
    n: usize,
) -> (Vec<u16>, Option<u64>) {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..n {
        let mut req = client.post(format!("{}/oidc/token", app.base)).form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "chatons-desktop"),
            ("refresh_token", "unknown"),
        ]);
        if let Some(f) = forwarded_for {
            req = req.header("x-forwarded-for", f);
        }
        let resp = req.send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if let Some(v) = resp.headers().get("retry-after") {
            retry_after = v.to_str().ok().and_then(|v| v.parse().ok());
        }
    }
    (statuses, retry_after)
}

async fn token_statuses(app: &TestApp, forwarded_for: &str, n: usize) -> Vec<u16> {
    token_calls(app, Some(forwarded_for), n).await.0
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let app = spawn_app_with(&[
        ("CHATONS_TOKEN_RATE_PER_SECOND", "1"),
        ("CHATONS_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
    ])
    .await;
    // A client that prepends a forged address still lands in its real bucket.
    assert_eq!(
        token_statuses(&app, "6.6.6.6, 198.51.100.1", 6).await,
        [400, 400, 400, 400, 400, 429]
    );
    assert_eq!(
        token_statuses(&app, "7.7.7.7, 198.51.100.1", 1).await,
        [429]
    );
    // Another user behind the same ingress is not locked out.
    assert_eq!(token_statuses(&app, "198.51.100.2", 1).await, [400]);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app_with(&[("CHATONS_TOKEN_RATE_PER_SECOND", "1")]).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.extend(token_statuses(&app, &format!("198.51.100.{n}"), 1).await);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429]);
}
