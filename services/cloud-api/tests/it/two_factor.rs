//! Two-step sign-in (TOTP, RFC 6238) from outside: enrolment on the security page, the code at
//! every password sign-in (portal, authorization page, JSON login), recovery codes used once,
//! rate limits, `amr` in the id_token, and turning it off.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloud_api::mfa::totp;
use cloud_testkit::oidc::{csrf_from, pkce_pair, query_of};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_error, spawn_app};
use crate::oidc::{LOOPBACK, desktop_authorize_url, exchange};
use crate::web::{browser, location, page, submit};

const SECURITY: &str = "/cloud/account/security";

/// The code of `secret` (base32) for time step `step`.
fn code(secret: &str, step: i64) -> String {
    totp::code_at(&totp::base32_decode(secret).unwrap(), step)
}

fn step_now() -> i64 {
    totp::step_at(chrono::Utc::now())
}

/// The text between `start` and the next `end` in `html`, after `after`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    html.split(start)
        .skip(1)
        .filter_map(|rest| rest.split_once(end).map(|(v, _)| v))
        .collect()
}

/// Posts `fields` (plus the CSRF token of `form_page`) to `path` from `b`.
async fn post(
    app: &TestApp,
    b: &reqwest::Client,
    form_page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let csrf = app.csrf_of(b, form_page).await;
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    let resp = submit(b, app.url(path), &form).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Two-step sign-in as [`enrol`] turned it on.
struct Enrolled {
    secret: String,
    recovery: Vec<String>,
    /// The time step of the code that confirmed it (spent).
    step: i64,
}

/// Turns two-step sign-in on for `user` through the security page.
async fn enrol(app: &TestApp, user: &TestUser) -> Enrolled {
    let b = app.portal_browser(user).await;
    let off = page(&b, app.url(SECURITY)).await;
    assert!(off.contains("Set up two-step sign-in"), "{off}");
    let (status, _) = post(app, &b, SECURITY, "/cloud/account/security/totp/begin", &[]).await;
    assert_eq!(status, 303);
    let pending = page(&b, app.url(SECURITY)).await;
    assert!(
        pending.contains("data:image/svg+xml;base64,"),
        "a QR code: {pending}"
    );
    let secret = between(&pending, "<code id=\"totp-secret\">", "</code>")[0].to_owned();
    assert_eq!(totp::base32_decode(&secret).map(|s| s.len()), Some(20));

    let confirm = "/cloud/account/security/totp/confirm";
    let step = step_now();
    let wrong = format!(
        "{:06}",
        (code(&secret, step).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let (status, refused) = post(app, &b, SECURITY, confirm, &[("code", &wrong)]).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused.contains("Wrong or already used code."));
    let (status, on) = post(
        app,
        &b,
        SECURITY,
        confirm,
        &[("code", &code(&secret, step))],
    )
    .await;
    assert_eq!(status, 200, "{on}");
    assert!(on.contains("They are shown only now."), "{on}");
    let codes: Vec<String> = between(&on, "<li><code>", "</code></li>")
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "{on}");
    let again = page(&b, app.url(SECURITY)).await;
    assert!(!again.contains(&codes[0]), "recovery codes are shown once");
    assert!(again.contains("10 recovery codes left"), "{again}");
    Enrolled {
        secret,
        recovery: codes,
        step,
    }
}

/// The portal's password step for `user` in a fresh browser: the code form's ticket.
async fn password_step(app: &TestApp, b: &reqwest::Client, user: &TestUser) -> String {
    let resp = crate::web::portal_login(app, b, &user.email, &user.password).await;
    assert_eq!(resp.status(), 200, "the code form, not a session");
    let html = resp.text().await.unwrap();
    assert!(html.contains("Enter your code"), "{html}");
    between(&html, "name=\"ticket\" value=\"", "\"")[0].to_owned()
}

async fn code_step(
    app: &TestApp,
    b: &reqwest::Client,
    ticket: &str,
    code: &str,
) -> reqwest::Response {
    let csrf = app.csrf_of(b, "/cloud/login").await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("ticket", ticket),
        ("code", code),
    ];
    submit(b, app.url("/cloud/login/two-factor"), &form).await
}

async fn json_login(app: &TestApp, user: &TestUser, code: Option<&str>) -> (u16, Value) {
    let mut body = json!({"email": user.email, "password": user.password});
    if let Some(code) = code {
        body["totpCode"] = json!(code);
    }
    app.post_public("/v1/web/login", body).await
}

#[tokio::test]
async fn enrolled_accounts_need_a_code_everywhere_and_recovery_codes_work_once() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let Enrolled {
        secret,
        recovery,
        step,
    } = enrol(&app, &user).await;

    // The JSON login: the password alone is not enough any more.
    let (status, body) = json_login(&app, &user, None).await;
    assert_error(status, &body, 401, "second_factor_required");
    let (status, body) = json_login(&app, &user, Some("000000")).await;
    assert_error(status, &body, 401, "unauthorized");
    // The step the enrolment used is spent; the next one is good once.
    let (status, body) = json_login(&app, &user, Some(&code(&secret, step))).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = json_login(&app, &user, Some(&code(&secret, step + 1))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = json_login(&app, &user, Some(&code(&secret, step + 1))).await;
    assert_eq!(status, 401, "a code is good once");

    // The desktop's authorization page, with a recovery code: the id_token says so.
    let b = browser();
    let (verifier, challenge) = pkce_pair();
    let authorize = desktop_authorize_url(&app, LOOPBACK, &challenge, "st-2fa");
    let login_page = page(&b, &authorize).await;
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    form.push(("csrf_token".into(), csrf_from(&login_page)));
    let mut password = form.clone();
    password.extend([
        ("email".into(), user.email.clone()),
        ("password".into(), user.password.clone()),
        ("action".into(), "login".into()),
    ]);
    let resp = submit(&b, app.url("/oidc/authorize"), &password).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Enter your code"), "{html}");
    let ticket = between(&html, "name=\"ticket\" value=\"", "\"")[0].to_owned();
    let mut second = form.clone();
    second.extend([
        ("ticket".into(), ticket),
        ("code".into(), recovery[0].to_uppercase()),
        ("action".into(), "two_factor".into()),
    ]);
    let resp = submit(&b, app.url("/oidc/authorize"), &second).await;
    assert_eq!(
        resp.status(),
        303,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let q = query_of(location(&resp));
    let (status, tokens) = exchange(&app, &q["code"], &verifier, LOOPBACK).await;
    assert_eq!(status, 200, "{tokens}");
    let payload = tokens["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");

    // The same recovery code a second time fails; another one signs in to the portal.
    let b = browser();
    let ticket = password_step(&app, &b, &user).await;
    let resp = code_step(&app, &b, &ticket, &recovery[0]).await;
    assert_eq!(resp.status(), 401);
    let resp = code_step(&app, &b, &ticket, &recovery[1]).await;
    assert_eq!(resp.status(), 303);
    let account = page(&b, app.url(SECURITY)).await;
    assert!(account.contains("8 recovery codes left"), "{account}");
}

#[tokio::test]
async fn wrong_codes_are_rate_limited_and_tickets_cannot_be_forged() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let Enrolled { secret, step, .. } = enrol(&app, &user).await;
    let b = browser();
    let ticket = password_step(&app, &b, &user).await;

    // A ticket is the server's: altered, it names nobody.
    let forged = ticket.replacen("user-", "user-0", 1);
    let resp = code_step(&app, &b, &forged, &code(&secret, step + 1)).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("start again"));

    // The account's bucket holds 10; the enrolment spent two (a wrong code, then the right
    // one): eight wrong codes, then 429, even for the right one.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            code_step(&app, &b, &ticket, "000000")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401; 8]);
    let resp = code_step(&app, &b, &ticket, &code(&secret, step + 1)).await;
    assert_eq!(resp.status(), 429);
    let account = b.get(app.url(SECURITY)).send().await.unwrap();
    assert_eq!(account.status(), 302, "still signed out: the login page");
}

#[tokio::test]
async fn turning_it_off_needs_a_fresh_code() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let Enrolled { secret, step, .. } = enrol(&app, &user).await;
    let b = browser();
    let ticket = password_step(&app, &b, &user).await;
    let signed_in = code_step(&app, &b, &ticket, &code(&secret, step + 1)).await;
    assert_eq!(signed_in.status(), 303);

    let disable = "/cloud/account/security/totp/disable";
    let spent = code(&secret, step + 1);
    let (status, _) = post(&app, &b, SECURITY, disable, &[("code", &spent)]).await;
    assert_eq!(status, 401, "the code of the sign-in is spent");
    let (status, _) = post(&app, &b, SECURITY, disable, &[]).await;
    assert_eq!(status, 401);
    let older = code(&secret, step);
    let (status, _) = post(&app, &b, SECURITY, disable, &[("code", &older)]).await;
    assert_eq!(status, 401, "not newer than the last accepted step");
    assert!(
        page(&b, app.url(SECURITY))
            .await
            .contains("Turn off two-step sign-in")
    );
    // A fresh step is within one step of the clock: wait for it rather than guess.
    while step_now() < step + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let fresh = code(&secret, step + 2);
    let (status, _) = post(&app, &b, SECURITY, disable, &[("code", &fresh)]).await;
    assert_eq!(status, 303);
    let (status, body) = json_login(&app, &user, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn account_changes_ask_for_a_code_when_it_is_on() {
    let app = spawn_app().await;
    let user = app.signup().await;
    let Enrolled {
        secret,
        recovery,
        step,
    } = enrol(&app, &user).await;
    let new_password = "a brand new password";
    let change = |code: Option<String>| {
        let mut body = json!({"currentPassword": user.password, "newPassword": new_password});
        if let Some(code) = code {
            body["totpCode"] = json!(code);
        }
        app.post("/v1/account/password", &user.access, body)
    };
    let (status, body) = change(None).await;
    assert_error(status, &body, 403, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("totpCode"),
        "{body}"
    );
    let (status, body) = change(Some(code(&secret, step))).await;
    assert_error(status, &body, 403, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("used already"),
        "{body}"
    );
    let (status, body) = change(Some(code(&secret, step + 1))).await;
    assert_eq!(status, 200, "{body}");

    // The pages ask for it too (signed in with the new password and a recovery code).
    let renamed = TestUser {
        password: new_password.into(),
        ..user.clone()
    };
    let b = browser();
    let ticket = password_step(&app, &b, &renamed).await;
    assert_eq!(
        code_step(&app, &b, &ticket, &recovery[0]).await.status(),
        303
    );
    for page_path in [
        "/cloud/account/password",
        "/cloud/account/email",
        "/cloud/account/delete",
    ] {
        let html = page(&b, app.url(page_path)).await;
        assert!(html.contains("name=\"totp_code\""), "{page_path}: {html}");
    }
}
