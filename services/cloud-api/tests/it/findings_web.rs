//! The browser-facing findings of the hostile review (issue 16): redirects, `max_age`, CSRF and
//! end-session. Each test failed against the code before its fix.

use cloud_testkit::oidc::{csrf_from, pkce_pair, query_of};

use crate::helpers::spawn_app;
use crate::oidc::{
    LOOPBACK, PASSWORD, browser, desktop_authorize_url, exchange, login_through, signup,
};

/// `return_to=/%09/evil.example/` passed `safe_return`: browsers drop the tab and read
/// `//evil.example/`, another site.
#[tokio::test]
async fn a_return_to_with_control_characters_stays_on_site() {
    let app = spawn_app().await;
    signup(&app, "ret@example.com").await;
    for evil in [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
    ] {
        let b = browser();
        let html = b
            .get(app.url("/cloud/login"))
            .query(&[("return_to", evil)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("evil.example"), "{evil:?} kept in the page");
        let resp = b
            .post(app.url("/cloud/login"))
            .form(&[
                ("email", "ret@example.com"),
                ("password", PASSWORD),
                ("return_to", evil),
                ("csrf_token", csrf_from(&html).as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let location = resp.headers()["location"].to_str().unwrap();
        assert_eq!(location, "/cloud/account?notice=welcome", "{evil:?}");
    }
}

/// `max_age=0` did not force a fresh login within the first second of a session.
#[tokio::test]
async fn max_age_zero_always_asks_for_the_password() {
    let app = spawn_app().await;
    signup(&app, "fresh@example.com").await;
    let (_, challenge) = pkce_pair();
    let b = browser();
    let url = desktop_authorize_url(&app, LOOPBACK, &challenge, "s1");
    login_through(&b, &app, &url, "fresh@example.com").await;
    let resp = b.get(format!("{url}&max_age=0")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "a login page, not a code");
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Sign in to Chatons Cloud")
    );
    // A generous max_age still reuses the session.
    let resp = b.get(format!("{url}&max_age=600")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert!(query_of(resp.headers()["location"].to_str().unwrap()).contains_key("code"));
}

/// Signs `email` in through the authorization page in `b` and returns an id_token of it.
pub(crate) async fn signed_in_with_id_token(
    app: &crate::helpers::TestApp,
    b: &reqwest::Client,
    email: &str,
) -> String {
    signup(app, email).await;
    let (verifier, challenge) = pkce_pair();
    let url = desktop_authorize_url(app, LOOPBACK, &challenge, "s1");
    let location = login_through(b, app, &url, email).await;
    let code = query_of(&location)["code"].clone();
    let (status, tokens) = exchange(app, &code, &verifier, LOOPBACK).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["id_token"].as_str().unwrap().to_owned()
}

/// Whether `b`'s portal session still works.
pub(crate) async fn signed_in(app: &crate::helpers::TestApp, b: &reqwest::Client) -> bool {
    b.get(app.url("/cloud/account"))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

/// `GET /oidc/logout` signed anyone out from any site, and took an unsigned id_token_hint.
#[tokio::test]
async fn logout_needs_a_signed_hint_or_a_confirmation() {
    let app = spawn_app().await;
    let b = browser();
    let id_token = signed_in_with_id_token(&app, &b, "bye@example.com").await;
    assert!(signed_in(&app, &b).await);

    // A bare link (what an <img> on another site sends): a confirmation page, still signed in.
    let resp = b.get(app.url("/oidc/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sign out of Chatons Cloud?"), "{html}");
    assert!(signed_in(&app, &b).await, "a GET alone signs nobody out");

    // A forged hint (the real claims, no signature): refused, still signed in.
    let unsigned = format!("{}.", &id_token[..id_token.rfind('.').unwrap()]);
    let resp = b
        .get(app.url("/oidc/logout"))
        .query(&[("id_token_hint", unsigned.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(signed_in(&app, &b).await);

    // The confirmation form without its CSRF token changes nothing; with it, signs out.
    let resp = b
        .post(app.url("/oidc/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(signed_in(&app, &b).await);
    let resp = b
        .post(app.url("/oidc/logout"))
        .form(&[("csrf_token", csrf_from(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!signed_in(&app, &b).await, "confirmed: signed out");
}

/// A hint this issuer signed for the signed-in user signs out at once and may redirect to the
/// client's registered post-logout URI.
#[tokio::test]
async fn a_signed_hint_for_the_session_user_signs_out_at_once() {
    let app = spawn_app().await;
    let b = browser();
    let id_token = signed_in_with_id_token(&app, &b, "rp@example.com").await;
    let resp = b
        .get(app.url("/oidc/logout"))
        .query(&[("id_token_hint", id_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("You are signed out"));
    assert!(!signed_in(&app, &b).await);
}

/// The CSRF cookie was not bound to the session: a token planted in the victim's browser (a
/// cookie set from a sibling subdomain) let another site post forms as the victim.
#[tokio::test]
async fn a_planted_csrf_cookie_does_not_pass_for_a_session() {
    let app = spawn_app().await;
    signup(&app, "victim@example.com").await;
    let b = browser();
    let html = b
        .get(app.url("/cloud/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = b
        .post(app.url("/cloud/login"))
        .form(&[
            ("email", "victim@example.com"),
            ("password", PASSWORD),
            ("csrf_token", csrf_from(&html).as_str()),
        ])
        .send()
        .await
        .unwrap();
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("chatons_cloud_session="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let planted = "attackerknowsthisvalue0123456789abcdef";
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/cloud/organizations"))
        .header(
            "cookie",
            format!("chatons_cloud_session={session}; chatons_csrf={planted}"),
        )
        .form(&[("name", "Planted Org"), ("csrf_token", planted)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400, "the planted pair is refused");
    let orgs = b
        .get(app.url("/cloud/organizations"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!orgs.contains("Planted Org"));
    // The page's own token (bound to this session) works.
    let resp = b
        .post(app.url("/cloud/organizations"))
        .form(&[
            ("name", "Real Org"),
            ("csrf_token", csrf_from(&orgs).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
}
