//! Abuse of cloud-api's browser side (issue 16): open redirects through every redirect
//! parameter (`return_to`, `redirect_uri`, `post_logout_redirect_uri`), forged form posts
//! (CSRF) on every form, and replayed codes and refresh tokens across endpoints.
//!
//! Covered elsewhere: a reused code (`oidc::a_reused_code_is_refused_and_revokes_what_it_issued`),
//! a reused refresh token (`oidc::a_reused_refresh_token_revokes_the_family_after_the_grace_window`),
//! tabs in `return_to` (`findings_web::a_return_to_with_control_characters_stays_on_site`).

use cloud_testkit::oidc::pkce_pair;
use serde_json::json;

use crate::findings_web::{signed_in, signed_in_with_id_token};
use crate::helpers::{TestApp, assert_error, assert_status, spawn_app};
use crate::oidc::{LOOPBACK, browser, desktop_authorize_url, desktop_code, exchange, token_form};
use crate::tenant::{Tenant, Unchanged};

/// Places a redirect must never lead to (each names `evil.example` or runs script).
const EVIL_RETURN_TO: &[&str] = &[
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "https:evil.example",
    "http://evil.example@127.0.0.1/",
    "https://127.0.0.1.evil.example/",
    " //evil.example/",
    "javascript:alert('evil.example')",
    "data:text/html,<script>alert('evil.example')</script>",
    "//evil.example/%2F..",
];

/// Redirect URIs the desktop client must not be sent to.
const EVIL_REDIRECT_URI: &[&str] = &[
    "https://evil.example/cb",
    "//evil.example/cb",
    "chatons://cloud/auth/callback.evil.example",
    "chatons://cloud/auth/callback@evil.example",
    "chatons://evil.example/auth/callback",
    "http://127.0.0.1.evil.example/cb",
    "http://localhost:53682/cb",
    "http://evil.example@127.0.0.1:53682/cb",
    "http://127.0.0.1:53682/cb#@evil.example",
    "https://evil.example/chatons://cloud/auth/callback",
    "javascript:alert(1)//chatons://cloud/auth/callback",
    "http://[::1].evil.example/cb",
    "http://127.0.0.1:53682\\@evil.example/cb",
];

/// A Location that stays on this site: a path (never `//` or a backslash) or this origin.
fn on_site(app: &TestApp, location: &str) -> bool {
    let path = location.strip_prefix(app.base.as_str()).unwrap_or(location);
    path.starts_with('/') && !path.starts_with("//") && !path.contains('\\')
}

/// A Location the desktop client may be sent to: its custom scheme or a loopback address,
/// as any URL parser reads it (no userinfo, nothing before the path).
fn desktop_target(location: &str) -> bool {
    let loopback = ["http://127.0.0.1:", "http://[::1]:"]
        .iter()
        .find_map(|p| location.strip_prefix(p))
        .is_some_and(|rest| {
            let port = rest.split('/').next().unwrap_or_default();
            !port.is_empty() && port.chars().all(|c| c.is_ascii_digit())
        });
    loopback
        || location.starts_with("chatons://cloud/auth/callback?")
        || location == "chatons://cloud/auth/callback"
}

/// `resp` is a 400 without a redirect, or a redirect to a [`desktop_target`].
fn desktop_target_or_refused(resp: &reqwest::Response, what: &str) {
    match resp.headers().get("location") {
        Some(l) => {
            let l = l.to_str().unwrap();
            assert!(desktop_target(l), "{what} redirected to {l}");
        }
        None => assert_eq!(resp.status(), 400, "{what}"),
    }
}

/// Whether a browser would read `uri` as a loopback address of this machine.
fn loopback_as_parsed(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(u.host_str(), Some("127.0.0.1" | "[::1]"))
            && u.username().is_empty()
    })
}

#[tokio::test]
async fn return_to_never_leads_off_site() {
    let app = spawn_app().await;
    for evil in EVIL_RETURN_TO {
        // A user per value: each signs in twice, well within the per-account budget.
        let user = app.signup().await;
        for page in ["/cloud/login", "/cloud/signup"] {
            let b = browser();
            let resp = b
                .get(app.url(page))
                .query(&[("return_to", evil)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{page} {evil:?}");
            let html = resp.text().await.unwrap();
            assert!(!html.contains("evil.example"), "{page} keeps {evil:?}");
        }
        // Signing in through the portal's form and through the first system's form post.
        for path in ["/cloud/login", "/v1/web/login"] {
            let b = browser();
            let csrf = app.csrf_of(&b, "/cloud/login").await;
            let resp = b
                .post(app.url(path))
                .form(&[
                    ("email", user.email.as_str()),
                    ("password", user.password.as_str()),
                    ("return_to", evil),
                    ("csrf_token", csrf.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_redirection(), "{path} {evil:?}");
            let location = resp.headers()["location"].to_str().unwrap();
            assert!(
                on_site(&app, location) && !location.contains("evil.example"),
                "{path} with return_to={evil:?} sent the browser to {location}"
            );
        }
    }
}

/// Follows redirects while they stay on this site; the last response.
async fn follow_on_site(app: &TestApp, b: &reqwest::Client, url: String) -> reqwest::Response {
    let mut url = url;
    for _ in 0..5 {
        let resp = b.get(&url).send().await.unwrap();
        let Some(location) = resp.headers().get("location") else {
            return resp;
        };
        let location = location.to_str().unwrap().to_owned();
        if !on_site(app, &location) {
            return resp;
        }
        url = if location.starts_with('/') {
            app.url(&location)
        } else {
            location
        };
    }
    panic!("redirect loop from {url}");
}

#[tokio::test]
async fn redirect_uri_accepts_only_the_desktop_targets() {
    let app = spawn_app().await;
    let user = app.signup().await;
    // Signed in: an accepted URI would get a code at once, so a refusal is what is seen.
    let b = app.portal_browser(&user).await;
    let (_, challenge) = pkce_pair();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("code_challenge", &challenge);
    let pkce = q.finish();
    for evil in EVIL_REDIRECT_URI {
        let enc: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        for start in [
            desktop_authorize_url(&app, evil, &challenge, "s"),
            app.url(&format!("/desktop/auth?{pkce}&redirect_uri={enc}")),
            app.url(&format!("/cloud/desktop?{pkce}&redirect_uri={enc}")),
        ] {
            let resp = follow_on_site(&app, &b, start.clone()).await;
            desktop_target_or_refused(&resp, &start);
        }
    }
    // The login form of the authorization page re-checks its hidden parameters.
    let anonymous = browser();
    let good = desktop_authorize_url(&app, LOOPBACK, &challenge, "s");
    let csrf = app.csrf_of(&anonymous, &good).await;
    for evil in EVIL_REDIRECT_URI {
        let resp = anonymous
            .post(app.url("/oidc/authorize"))
            .form(&[
                ("response_type", "code"),
                ("client_id", "chatons-desktop"),
                ("redirect_uri", evil),
                ("scope", "openid"),
                ("state", "s"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("email", user.email.as_str()),
                ("password", user.password.as_str()),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        desktop_target_or_refused(&resp, &format!("the authorization form with {evil:?}"));
    }
}

#[tokio::test]
async fn post_logout_redirect_uri_is_only_a_registered_one() {
    let app = spawn_app().await;
    let b = browser();
    let hint = signed_in_with_id_token(&app, &b, "plo@example.com").await;
    // A loopback address (as browsers parse it) is the desktop's, any path: accepted by design.
    let evils = EVIL_REDIRECT_URI.iter().chain(EVIL_RETURN_TO);
    for evil in evils.filter(|e| !loopback_as_parsed(e)) {
        for query in [
            vec![("post_logout_redirect_uri", *evil)],
            vec![
                ("post_logout_redirect_uri", *evil),
                ("client_id", "chatons-desktop"),
            ],
            vec![
                ("post_logout_redirect_uri", *evil),
                ("id_token_hint", hint.as_str()),
            ],
        ] {
            let resp = b
                .get(app.url("/oidc/logout"))
                .query(&query)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{query:?}");
            assert!(resp.headers().get("location").is_none(), "{query:?}");
        }
        // The confirmation form re-checks what it carries.
        let csrf = app.csrf_of(&b, "/oidc/logout").await;
        let resp = b
            .post(app.url("/oidc/logout"))
            .form(&[
                ("post_logout_redirect_uri", *evil),
                ("client_id", "chatons-desktop"),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        desktop_target_or_refused(&resp, &format!("the logout confirmation with {evil:?}"));
        assert!(signed_in(&app, &b).await, "refused: still signed in");
    }
}

/// Every form the portal and the issuer serve, with the fields a real submission carries.
fn every_form(t: &Tenant) -> Vec<(String, Vec<(&'static str, String)>)> {
    let s = |v: &str| v.to_owned();
    let (prov, org) = (&t.provider, &t.org);
    vec![
        (
            s("/cloud/signup"),
            vec![
                ("email", s("forged@example.com")),
                ("display_name", s("F")),
                ("password", s("a long password")),
            ],
        ),
        (
            s("/cloud/login"),
            vec![
                ("email", t.user.email.clone()),
                ("password", t.user.password.clone()),
            ],
        ),
        (
            s("/v1/web/login"),
            vec![
                ("email", t.user.email.clone()),
                ("password", t.user.password.clone()),
            ],
        ),
        (
            s("/v1/web/signup"),
            vec![
                ("email", s("forged2@example.com")),
                ("displayName", s("F")),
                ("password", s("a long password")),
            ],
        ),
        (s("/cloud/logout"), vec![]),
        (s("/cloud/verify-email"), vec![("token", s("x"))]),
        (s("/cloud/verify-email/resend"), vec![]),
        (
            s("/cloud/forgot-password"),
            vec![("email", t.user.email.clone())],
        ),
        (
            s("/cloud/reset-password"),
            vec![("token", s("x")), ("password", s("a long password"))],
        ),
        (s("/cloud/organizations"), vec![("name", s("Forged Org"))]),
        (
            s("/cloud/organizations/rename"),
            vec![("organization_id", org.clone()), ("name", s("Forged"))],
        ),
        (
            s("/cloud/organizations/invite"),
            vec![
                ("organization_id", org.clone()),
                ("email", s("x@example.com")),
            ],
        ),
        (s("/cloud/accept-invite"), vec![("token", s("x"))]),
        (
            s("/cloud/providers"),
            vec![
                ("kind", s("openai")),
                ("label", s("Forged")),
                ("secret", s("s")),
            ],
        ),
        (
            format!("/cloud/providers/{prov}"),
            vec![("label", s("Forged"))],
        ),
        (format!("/cloud/providers/{prov}/delete"), vec![]),
        (
            s("/oidc/authorize"),
            vec![
                ("response_type", s("code")),
                ("client_id", s("chatons-desktop")),
                ("redirect_uri", s(LOOPBACK)),
                ("code_challenge", pkce_pair().1),
                ("code_challenge_method", s("S256")),
                ("email", t.user.email.clone()),
                ("password", t.user.password.clone()),
            ],
        ),
        (s("/oidc/logout"), vec![]),
    ]
}

#[tokio::test]
async fn every_form_refuses_a_missing_wrong_or_foreign_csrf_token() {
    let app = spawn_app().await;
    let t = Tenant::create(&app, app.signup().await).await;
    let victim = app.portal_browser(&t.user).await;
    // The attacker's own session gives it a genuine token, bound to the wrong session.
    let attacker = app.portal_browser(&app.signup().await).await;
    let foreign = app.csrf_of(&attacker, "/cloud/organizations").await;
    let unchanged = Unchanged::from_now(&app).await;
    for (path, fields) in every_form(&t) {
        for token in [
            None,
            Some("forged-forged-forged-forged-forged-00"),
            Some(foreign.as_str()),
        ] {
            let mut form: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            if let Some(token) = token {
                form.push(("csrf_token", token));
            }
            let resp = victim
                .post(app.url(&path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{path} with token {token:?}");
        }
    }
    assert!(
        signed_in(&app, &victim).await,
        "no forged post signed the victim out"
    );
    unchanged.check("a forged form changed something").await;
    // The pages' own token still works (the table's forms are real).
    let csrf = app.csrf_of(&victim, "/cloud/organizations").await;
    let form = [("name", "Real Org"), ("csrf_token", csrf.as_str())];
    let resp = crate::web::submit(&victim, app.url("/cloud/organizations"), &form).await;
    assert_eq!(resp.status(), 303);
}

#[tokio::test]
async fn a_code_replayed_on_the_other_exchange_endpoint_is_refused_and_revokes() {
    let app = spawn_app().await;
    crate::oidc::signup(&app, "replay@example.com").await;
    let legacy = |code: String, verifier: String| {
        let app = &app;
        async move {
            let resp = reqwest::Client::new()
                .post(app.url("/v1/auth/desktop/exchange"))
                .json(&json!({"code": code, "clientId": "chatons-desktop",
                              "redirectUri": LOOPBACK, "codeVerifier": verifier}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    // Exchanged at the token endpoint, replayed at the legacy one, and the other way round.
    for legacy_first in [false, true] {
        let (code, verifier) = desktop_code(&app, "replay@example.com", LOOPBACK).await;
        let (status, first) = if legacy_first {
            legacy(code.clone(), verifier.clone()).await
        } else {
            exchange(&app, &code, &verifier, LOOPBACK).await
        };
        assert_eq!(status, 200, "{first}");
        let access = first["access_token"].as_str().unwrap().to_owned();
        let (status, body) = if legacy_first {
            exchange(&app, &code, &verifier, LOOPBACK).await
        } else {
            legacy(code, verifier).await
        };
        assert_error(status, &body, 400, "invalid_grant");
        let (status, _) = app.get("/v1/bootstrap", &access).await;
        assert_eq!(status, 401, "what the replayed code issued is revoked");
    }
}

#[tokio::test]
async fn a_refresh_token_is_dead_after_sign_out() {
    let app = spawn_app().await;
    crate::oidc::signup(&app, "out@example.com").await;
    let (code, verifier) = desktop_code(&app, "out@example.com", LOOPBACK).await;
    let (_, tokens) = exchange(&app, &code, &verifier, LOOPBACK).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_status(app.post("/v1/web/logout", access, json!({})).await, 200);
    let (status, body) = token_form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "chatons-desktop"),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}
