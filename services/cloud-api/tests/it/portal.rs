//! The web portal and its mail: CSRF on forms, the JSON email routes (verify, forgot, reset),
//! no account enumeration, reset revoking sessions, and the outbox surviving an SMTP outage
//! (a real SMTP sink on a TCP port, stopped and started again).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloud_api::domain::Timestamp;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use cloud_testkit::oidc::csrf_from;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with, token_in};
use crate::web::{browser, location, page, portal_login, submit};

const PASSWORD: &str = "correct horse battery staple";

fn pool(app: &TestApp) -> sqlx::PgPool {
    app.db.as_ref().expect("postgres").pool.clone()
}

async fn json_signup(app: &TestApp, email: &str) -> (u16, Value) {
    let body = json!({"email": email, "displayName": "Ada <b>Lovelace</b>", "password": PASSWORD});
    app.post_public("/v1/web/signup", body).await
}

async fn login(app: &TestApp, email: &str, password: &str) -> Option<String> {
    let (status, v) = app.login(email, password).await;
    if status != 200 {
        return None;
    }
    v["session"]["accessToken"].as_str().map(str::to_owned)
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.post_public(path, body).await
}

/// Text bodies queued for `to` whose subject contains `subject`, oldest first.
async fn mails(app: &TestApp, to: &str, subject: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT text_body FROM cloud_mail_outbox WHERE recipient = $1 AND subject LIKE $2 ORDER BY id",
    )
    .bind(to)
    .bind(format!("%{subject}%"))
    .fetch_all(&pool(app))
    .await
    .unwrap()
}

/// `column` of the one outbox row for `to`.
async fn outbox_row<T>(app: &TestApp, column: &str, to: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let query = format!("SELECT {column} FROM cloud_mail_outbox WHERE recipient = $1");
    sqlx::query_scalar(&query)
        .bind(to)
        .fetch_one(&pool(app))
        .await
        .unwrap()
}

/// Waits until `n` such mails are queued (forgot-password queues after answering).
async fn wait_mails(app: &TestApp, to: &str, subject: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = mails(app, to, subject).await;
        if m.len() >= n || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn account_status(app: &TestApp, token: &str) -> (u16, Value) {
    app.get("/v1/account", token).await
}

// A tiny SMTP sink ---------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicUsize>);

impl Received {
    /// Whether a message to (or naming) `email` was delivered.
    fn has_mail_for(&self, email: &str) -> bool {
        self.0.lock().unwrap().iter().any(|m| m.contains(email))
    }
}

/// Serves SMTP on `listener` until the task is aborted; every message (envelope recipients and
/// DATA) is recorded. While `down` is set, connections get no answer (server unavailable).
fn smtp_sink(
    listener: TcpListener,
    received: Received,
    down: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                // A black hole: the connection is held silently until the server "comes back",
                // then dropped. A sender that waited for it would hang.
                received.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let down = down.clone();
                tokio::spawn(async move {
                    while down.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    drop(socket);
                });
                continue;
            }
            let received = received.clone();
            tokio::spawn(async move {
                let mut envelope = String::new();
                let (r, mut w) = socket.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    if cmd.starts_with("RCPT") {
                        envelope.push_str(line.trim_end());
                        envelope.push('\n');
                    }
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        let _ = w.write_all(b"354 go on\r\n").await;
                        let mut data = std::mem::take(&mut envelope);
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        received.0.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    })
}

// Tests --------------------------------------------------------------------------------------------

#[tokio::test]
async fn form_posts_without_or_with_a_wrong_csrf_token_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let b = browser();
    let page_resp = b.get(app.url("/cloud/signup")).send().await.unwrap();
    assert_eq!(page_resp.status(), 200);
    for header in [
        "content-security-policy",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(page_resp.headers().contains_key(header), "{header}");
    }
    let csp = page_resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"));
    let csrf = csrf_from(&page_resp.text().await.unwrap());
    for token in [None, Some("wrong-token-wrong-token-wrong-token-00")] {
        let mut form = vec![
            ("email", "csrf@example.com"),
            ("display_name", "Csrf"),
            ("password", PASSWORD),
        ];
        if let Some(t) = token {
            form.push(("csrf_token", t));
        }
        let resp = submit(&b, app.url("/cloud/signup"), &form).await;
        assert_eq!(resp.status(), 400, "token {token:?}");
    }
    assert!(login(&app, "csrf@example.com", PASSWORD).await.is_none());
    // The same form with the right token works.
    let form = [
        ("email", "csrf@example.com"),
        ("display_name", "Csrf"),
        ("password", PASSWORD),
        ("csrf_token", csrf.as_str()),
    ];
    assert_eq!(
        submit(&b, app.url("/cloud/signup"), &form).await.status(),
        200
    );
    assert!(login(&app, "csrf@example.com", PASSWORD).await.is_some());

    // Signed in through the portal: an org-creation POST without the token creates nothing.
    let csrf = csrf_from(&page(&b, app.url("/cloud/login")).await);
    let resp = portal_login(&app, &b, "csrf@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 303);
    let orgs = app.url("/cloud/organizations");
    let resp = submit(&b, &orgs, &[("name", "Sneaky Org"), ("csrf_token", "nope")]).await;
    assert_eq!(resp.status(), 400);
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cloud_organizations WHERE name = 'Sneaky Org'")
            .fetch_one(&pool(&app))
            .await
            .unwrap();
    assert_eq!(count, 0);
    // Signed in, the forms carry a token bound to the new session: the one from before the
    // login no longer passes.
    let resp = submit(&b, &orgs, &[("name", "Sneaky Org"), ("csrf_token", &csrf)]).await;
    assert_eq!(resp.status(), 400);
    let fresh = csrf_from(&page(&b, &orgs).await);
    let resp = submit(&b, &orgs, &[("name", "Real Org"), ("csrf_token", &fresh)]).await;
    assert_eq!(resp.status(), 303);
    let html = page(&b, app.url(location(&resp))).await;
    assert!(html.contains("Real Org"));
}

#[tokio::test]
async fn verify_email_json_route_is_single_use() {
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = sink.local_addr().unwrap().port().to_string();
    let received = Received::default();
    let _sink = smtp_sink(sink, received.clone(), Arc::default());
    let app = spawn_app_with(&[("SMTP_HOST", "127.0.0.1"), ("SMTP_PORT", &port)]).await;
    let (status, body) = json_signup(&app, "verify@example.com").await;
    assert_eq!(status, 202);
    assert_eq!(body["requiresEmailVerification"], true);
    assert!(body.get("session").is_none(), "{body}");
    // An unverified account may sign in; it only lacks what needs a proven address.
    let access = login(&app, "verify@example.com", PASSWORD)
        .await
        .expect("login");
    let mail = wait_mails(&app, "verify@example.com", "Confirm", 1).await;
    assert_eq!(mail.len(), 1);
    let token = token_in(&mail[0], "/cloud/verify-email");
    let html: String = outbox_row(&app, "html_body", "verify@example.com").await;
    // askama's escaping (numeric references).
    assert!(
        html.contains("Ada &#60;b&#62;Lovelace&#60;/b&#62;") && !html.contains("<b>Lovelace"),
        "{html}"
    );

    assert_eq!(
        post_json(&app, "/v1/web/verify-email", json!({})).await.0,
        400
    );
    let (s, v) = post_json(
        &app,
        "/v1/web/verify-email",
        json!({"token": "verify-bogus"}),
    )
    .await;
    assert_error(s, &v, 400, "invalid_token");
    let (_, before) = account_status(&app, &access).await;
    assert_eq!(before["user"]["emailVerified"], false, "{before}");
    let (s, v) = post_json(&app, "/v1/web/verify-email", json!({"token": token})).await;
    assert_eq!((s, v), (200, json!({"ok": true})));
    let (_, after) = account_status(&app, &access).await;
    assert_eq!(after["user"]["emailVerified"], true, "{after}");
    let (s, _) = post_json(&app, "/v1/web/verify-email", json!({"token": token})).await;
    assert_eq!(s, 400, "a verification token works once");
    // The mail really went out over SMTP.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(received.has_mail_for("verify@example.com"));
}

#[tokio::test]
async fn reset_password_revokes_sessions_and_older_tokens() {
    let app = spawn_app().await;
    let email = "reset@example.com";
    assert_eq!(json_signup(&app, email).await.0, 201);
    let session = login(&app, email, PASSWORD).await.expect("login");
    assert_eq!(account_status(&app, &session).await.0, 200);

    assert_eq!(
        post_json(&app, "/v1/web/forgot-password", json!({}))
            .await
            .0,
        400
    );
    for _ in 0..2 {
        let (s, v) = post_json(&app, "/v1/web/forgot-password", json!({"email": email})).await;
        assert_eq!((s, v), (200, json!({"ok": true})));
    }
    let resets = wait_mails(&app, email, "Reset", 2).await;
    assert_eq!(resets.len(), 2);
    let first = token_in(&resets[0], "/cloud/reset-password");
    let second = token_in(&resets[1], "/cloud/reset-password");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cloud_password_reset_tokens WHERE token_hash = $1",
    )
    .bind(&second)
    .fetch_one(&pool(&app))
    .await
    .unwrap();
    assert_eq!(stored, 0, "tokens are stored hashed");

    let reset = |body: Value| post_json(&app, "/v1/web/reset-password", body);
    let (s, v) = reset(json!({"token": second, "password": "short"})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = reset(json!({"token": second})).await;
    assert_eq!(s, 400, "no password: {v}");
    let new_password = "a brand new passphrase";
    let (s, v) = reset(json!({"token": second, "password": new_password})).await;
    assert_eq!((s, v), (200, json!({"ok": true})));

    assert_eq!(
        account_status(&app, &session).await.0,
        401,
        "sessions are revoked"
    );
    let (s, v) = reset(json!({"token": second, "password": "another one 123"})).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_token")),
        "single use"
    );
    let (s, _) = reset(json!({"token": first, "password": "another one 123"})).await;
    assert_eq!(s, 400, "older reset tokens die with the reset");
    assert!(login(&app, email, PASSWORD).await.is_none());
    assert!(login(&app, email, new_password).await.is_some());
    assert_eq!(
        wait_mails(&app, email, "password was changed", 1)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn signup_and_forgot_password_do_not_reveal_accounts() {
    let app = spawn_app().await;
    let email = "taken@example.com";
    assert_eq!(json_signup(&app, email).await.0, 201);

    // Forgot-password: same answer; a mail only for the real account.
    let (s1, v1) = post_json(&app, "/v1/web/forgot-password", json!({"email": email})).await;
    let (s2, v2) = post_json(
        &app,
        "/v1/web/forgot-password",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    assert_eq!((s1, &v1), (s2, &v2));
    assert_eq!(wait_mails(&app, email, "Reset", 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mails(&app, "nobody@example.com", "").await.is_empty());

    // Portal signup: an existing address gets the same page as a new one; its owner a mail.
    let page = |email: &'static str| {
        let app_base = app.base.clone();
        async move {
            let b = browser();
            let signup = format!("{app_base}/cloud/signup");
            let csrf = csrf_from(&page(&b, &signup).await);
            let started = Instant::now();
            let form = [
                ("email", email),
                ("display_name", "Someone"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ];
            let resp = submit(&b, &signup, &form).await;
            let status = resp.status();
            let text = resp.text().await.unwrap();
            (status, text.replace(email, "EMAIL"), started.elapsed())
        }
    };
    let (s_new, body_new, _) = page("fresh@example.com").await;
    let (s_old, body_old, _) = page("taken@example.com").await;
    assert_eq!(s_new, s_old);
    assert_eq!(body_new, body_old);
    assert_eq!(wait_mails(&app, email, "already have", 1).await.len(), 1);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM cloud_users WHERE lower(email) = $1")
        .bind(email)
        .fetch_one(&pool(&app))
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn signup_answers_at_once_while_smtp_is_down_and_the_outbox_delivers_later() {
    // The SMTP server is down: connections hang without an answer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let received = Received::default();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let _sink = smtp_sink(listener, received.clone(), down.clone());
    let app = spawn_app_with(&[("SMTP_HOST", "127.0.0.1"), ("SMTP_PORT", &port)]).await;
    let started = Instant::now();
    // A signup waiting for SMTP would hang for the 20 s send timeout.
    let (status, _) = json_signup(&app, "outage@example.com").await;
    assert_eq!(
        status, 202,
        "a server that mails answers signups without a session"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "signup waited for SMTP: {:?}",
        started.elapsed()
    );
    // The worker has claimed the mail and is stuck on the silent server (its connection is
    // held by the sink, not merely about to be made); nothing was sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.1.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the worker never tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(received.0.lock().unwrap().is_empty());
    // The server comes back: the mail is delivered from the outbox.
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let sent: Option<Timestamp> = outbox_row(&app, "sent_at", "outage@example.com").await;
        if sent.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered after the sink came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(received.has_mail_for("outage@example.com"));
    let attempts: i32 = outbox_row(&app, "attempts", "outage@example.com").await;
    assert!(attempts >= 2, "delivered by a retry, attempts = {attempts}");
}
