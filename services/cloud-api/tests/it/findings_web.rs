//! The browser-facing findings of the hostile review (issue 16): redirects, `max_age`, CSRF and
//! end-session. Each test failed against the code before its fix.

use cloud_testkit::oidc::{csrf_from, pkce_pair, query_of};

use crate::helpers::spawn_app;
use crate::oidc::{LOOPBACK, PASSWORD, browser, desktop_authorize_url, login_through, signup};

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
