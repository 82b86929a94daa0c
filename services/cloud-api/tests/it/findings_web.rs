//! The browser-facing findings of the hostile review (issue 16): redirects, `max_age`, CSRF and
//! end-session. Each test failed against the code before its fix.

use cloud_testkit::oidc::{csrf_from, pkce_pair, query_of};

use crate::helpers::spawn_app;
use crate::oidc::{
    LOOPBACK, PASSWORD, browser, desktop_authorize_url, exchange, login_through, signup,
};
use crate::web::{location, page, portal_login, set_cookie, submit};

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
        let mut login = url::Url::parse(&app.url("/cloud/login")).unwrap();
        login.query_pairs_mut().append_pair("return_to", evil);
        let html = page(&b, login).await;
        assert!(!html.contains("evil.example"), "{evil:?} kept in the page");
        let csrf = csrf_from(&html);
        let form = [
            ("email", "ret@example.com"),
            ("password", PASSWORD),
            ("return_to", evil),
            ("csrf_token", csrf.as_str()),
        ];
        let resp = submit(&b, app.url("/cloud/login"), &form).await;
        assert_eq!(resp.status(), 303);
        assert_eq!(location(&resp), "/cloud/account?notice=welcome", "{evil:?}");
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

/// `GET /oidc/logout?id_token_hint=…` in `b`.
async fn logout_with_hint(
    app: &crate::helpers::TestApp,
    b: &reqwest::Client,
    hint: &str,
) -> reqwest::Response {
    let mut url = url::Url::parse(&app.url("/oidc/logout")).unwrap();
    url.query_pairs_mut().append_pair("id_token_hint", hint);
    b.get(url).send().await.unwrap()
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
    let resp = logout_with_hint(&app, &b, &unsigned).await;
    assert_eq!(resp.status(), 400);
    assert!(signed_in(&app, &b).await);

    // The confirmation form without its CSRF token changes nothing; with it, signs out.
    let logout = app.url("/oidc/logout");
    let resp = submit(&b, &logout, &[("csrf_token", "forged")]).await;
    assert_eq!(resp.status(), 400);
    assert!(signed_in(&app, &b).await);
    let resp = submit(&b, &logout, &[("csrf_token", csrf_from(&html).as_str())]).await;
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
    let resp = logout_with_hint(&app, &b, &id_token).await;
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
    let resp = portal_login(&app, &b, "victim@example.com", PASSWORD).await;
    let session = set_cookie(&resp, "chatons_cloud_session").unwrap();
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
    let orgs = page(&b, app.url("/cloud/organizations")).await;
    assert!(!orgs.contains("Planted Org"));
    // The page's own token (bound to this session) works.
    let csrf = csrf_from(&orgs);
    let form = [("name", "Real Org"), ("csrf_token", csrf.as_str())];
    let resp = submit(&b, app.url("/cloud/organizations"), &form).await;
    assert_eq!(resp.status(), 303);
}
