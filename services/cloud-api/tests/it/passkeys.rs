//! Passkey endpoints with bad input (the full ceremonies run in the browser suite, with
//! Chromium's virtual authenticator): CSRF, sign-in state, expired or replayed ceremonies,
//! malformed answers, other users' keys, and servers without a domain name.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app, spawn_app_with};

const OPTIONS: &str = "/cloud/account/security/passkeys/options";

/// A JSON call of the portal's script from `b`, with `csrf` in `x-csrf-token` when given.
async fn script(
    app: &TestApp,
    b: &reqwest::Client,
    path: &str,
    csrf: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = b.post(app.url(path)).json(&body);
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn signed_in(app: &TestApp, user: &TestUser) -> (reqwest::Client, String) {
    let b = app.portal_browser(user).await;
    let csrf = app.csrf_of(&b, "/cloud/account/security").await;
    (b, csrf)
}

#[tokio::test]
async fn registration_options_need_a_session_a_csrf_token_and_name_a_discoverable_key() {
    let app = spawn_app_with(&[("CHATONS_CLOUD_WEB_URL", "http://localhost")]).await;
    let user = app.signup().await;
    let (b, csrf) = signed_in(&app, &user).await;

    let (status, body) = script(&app, &b, OPTIONS, None, json!({})).await;
    assert_error(status, &body, 400, "csrf_failed");
    let (status, body) = script(&app, &b, OPTIONS, Some("forged"), json!({})).await;
    assert_error(status, &body, 400, "csrf_failed");
    let stranger = crate::web::browser();
    let login_csrf = app.csrf_of(&stranger, "/cloud/login").await;
    let (status, body) = script(&app, &stranger, OPTIONS, Some(&login_csrf), json!({})).await;
    assert_error(status, &body, 401, "unauthorized");

    let (status, body) = script(&app, &b, OPTIONS, Some(&csrf), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let options = &body["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], user.email.as_str());
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert!(body["ceremony"].as_str().is_some_and(|c| !c.is_empty()));

    // Answering: a malformed credential is a clear 400, and a ceremony is answered once.
    let ceremony = body["ceremony"].as_str().unwrap();
    let register = "/cloud/account/security/passkeys";
    let (status, body) = script(
        &app,
        &b,
        register,
        Some(&csrf),
        json!({"ceremony": ceremony}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let fake = json!({
        "ceremony": ceremony,
        "credential": {
            "id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"},
        },
    });
    let (status, body) = script(&app, &b, register, Some(&csrf), fake.clone()).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = script(&app, &b, register, Some(&csrf), fake).await;
    assert_error(status, &body, 400, "invalid_token");
}

#[tokio::test]
async fn sign_in_ceremonies_are_single_use_and_unknown_keys_are_refused() {
    let app = spawn_app_with(&[("CHATONS_CLOUD_WEB_URL", "http://localhost")]).await;
    let b = crate::web::browser();
    let csrf = app.csrf_of(&b, "/cloud/login").await;
    let (status, body) = script(
        &app,
        &b,
        "/cloud/login/passkey/options",
        Some(&csrf),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["publicKey"]["rpId"], "localhost");
    assert_eq!(body["publicKey"]["userVerification"], "required");
    let ceremony = body["ceremony"].as_str().unwrap();
    let assertion = json!({
        "ceremony": ceremony,
        "credential": {
            "id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {
                "authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA",
                "userHandle": "AAAAAAAAAAAAAAAAAAAAAA",
            },
        },
    });
    let (status, body) = script(
        &app,
        &b,
        "/cloud/login/passkey",
        Some(&csrf),
        assertion.clone(),
    )
    .await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = script(&app, &b, "/cloud/login/passkey", Some(&csrf), assertion).await;
    assert_error(status, &body, 400, "invalid_token");
    let (status, _) = script(&app, &b, "/cloud/login/passkey", Some(&csrf), json!([1, 2])).await;
    assert_eq!(status, 400);
    let account = b.get(app.url("/cloud/account")).send().await.unwrap();
    assert_eq!(account.status(), 302, "nobody was signed in");
}

#[tokio::test]
async fn servers_on_an_ip_address_say_passkeys_are_unavailable() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let (b, csrf) = signed_in(&app, &user).await;
    let (status, body) = script(&app, &b, OPTIONS, Some(&csrf), json!({})).await;
    assert_error(status, &body, 409, "passkeys_unavailable");
}

#[tokio::test]
async fn only_the_owner_removes_a_passkey() {
    let app = spawn_app().await;
    let [ada, bob] = app.signups().await;
    let pool = &app.db.as_ref().unwrap().pool;
    sqlx::query(
        "INSERT INTO cloud_user_passkeys (id, user_id, name, credential) VALUES ('key-1', $1, 'Ada key', '{}')",
    )
    .bind(&ada.id)
    .execute(pool)
    .await
    .unwrap();
    let remove = "/cloud/account/security/passkeys/key-1/delete";
    for (user, want) in [(&bob, 404), (&ada, 303), (&ada, 404)] {
        let (b, csrf) = signed_in(&app, user).await;
        let resp = crate::web::submit(&b, app.url(remove), &[("csrf_token", csrf.as_str())]).await;
        assert_eq!(resp.status(), want, "{}", user.email);
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM cloud_user_passkeys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
