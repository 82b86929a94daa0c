//! Account self-service over HTTP (JSON routes and portal pages, on Postgres): change password,
//! change email, sessions, delete the account.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_error, assert_status, spawn_app, token_in};
use crate::web::{location, page, submit};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// The text of the newest mail to `to` whose subject starts with `subject`, if any.
async fn mail_to(app: &TestApp, to: &str, subject: &str) -> Option<String> {
    let pool = &app.db.as_ref().expect("Postgres").pool;
    sqlx::query_scalar(
        "SELECT text_body FROM cloud_mail_outbox WHERE recipient = $1 AND subject LIKE $2 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(to)
    .bind(format!("{subject}%"))
    .fetch_optional(pool)
    .await
    .expect("outbox")
}

/// Whether `token` authenticates a JSON call.
async fn works(app: &TestApp, token: &str) -> bool {
    let (status, body) = app.get("/v1/account", token).await;
    assert!(status == 200 || status == 401, "{status} {body}");
    status == 200
}

/// Whether the portal browser `b` is still signed in.
async fn signed_in(app: &TestApp, b: &reqwest::Client) -> bool {
    let resp = b.get(app.url("/cloud/account")).send().await.unwrap();
    resp.status() == 200
}

/// A second JSON-API (desktop client) session of `u`: its access token.
async fn another_login(app: &TestApp, u: &TestUser, password: &str) -> String {
    let (status, body) = app.login(&u.email, password).await;
    assert_eq!(status, 200, "{body}");
    body["session"]["accessToken"].as_str().unwrap().to_owned()
}

/// Posts a portal form (with the CSRF token of `form_page`) from `b`.
async fn post_form(
    app: &TestApp,
    b: &reqwest::Client,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf_of(b, form_page).await;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", csrf.as_str()));
    submit(b, app.url(action), &form).await
}

fn password_body(current: &str, new: &str) -> Value {
    json!({"currentPassword": current, "newPassword": new})
}

#[tokio::test]
async fn self_service_change_password_revokes_other_sessions_only() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let second = another_login(&app, &u, &u.password).await;
    let browser = app.portal_browser(&u).await;

    let body = password_body(&u.password, NEW_PASSWORD);
    assert_status(app.post("/v1/account/password", &u.access, body).await, 200);
    assert!(works(&app, &u.access).await, "the asking session stays");
    assert!(!works(&app, &second).await, "another desktop session ends");
    assert!(!signed_in(&app, &browser).await, "the browser session ends");
    let (status, _) = crate::oidc::token_form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "chatons-desktop"),
            ("refresh_token", u.refresh.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200, "the asking session still refreshes");
    assert_eq!(
        app.login(&u.email, &u.password).await.0,
        401,
        "old password"
    );
    assert!(
        mail_to(&app, &u.email, "Your Chatons Cloud password was changed")
            .await
            .is_some()
    );

    // The portal form: this browser stays signed in, the desktop sessions end.
    let b = crate::web::browser();
    let resp = crate::web::portal_login(&app, &b, &u.email, NEW_PASSWORD).await;
    assert_eq!(resp.status(), 303);
    let desktop = another_login(&app, &u, NEW_PASSWORD).await;
    let fields = [
        ("current_password", NEW_PASSWORD),
        ("new_password", "third passphrase here"),
    ];
    let form = "/cloud/account/password";
    let resp = post_form(&app, &b, form, form, &fields).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/cloud/account/password?notice=changed");
    assert!(signed_in(&app, &b).await);
    assert!(
        page(&b, app.url(location(&resp)))
            .await
            .contains("Your password was changed")
    );
    assert!(!works(&app, &desktop).await);
    assert!(!works(&app, &u.access).await);
    assert_eq!(app.login(&u.email, "third passphrase here").await.0, 200);
}

#[tokio::test]
async fn self_service_wrong_current_password_is_refused_and_rate_limited() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let other = another_login(&app, &u, &u.password).await;
    let before = password_hash(&app, &u).await;
    // Bad input: 400, nothing changes (and no attempt is spent).
    for bad in [
        json!({"currentPassword": u.password}),
        json!({"newPassword": NEW_PASSWORD}),
        password_body(&u.password, "short"),
        password_body(&u.password, &u.password),
        json!({"currentPassword": 5, "newPassword": NEW_PASSWORD}),
    ] {
        let (status, body) = app.post("/v1/account/password", &u.access, bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (status, body) = app
        .post(
            "/v1/account/password",
            &u.access,
            password_body("not it at all", NEW_PASSWORD),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert!(works(&app, &other).await, "a refused change ends nothing");

    // The portal form says so on the page.
    let b = app.portal_browser(&u).await;
    let form = "/cloud/account/password";
    let fields = [
        ("current_password", "still wrong"),
        ("new_password", NEW_PASSWORD),
    ];
    let resp = post_form(&app, &b, form, form, &fields).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("The current password is not correct.")
    );

    // Guessing is throttled like login (per account): 429 with Retry-After, and then even the
    // right password waits.
    let mut limited = None;
    for _ in 0..12 {
        let resp = reqwest::Client::new()
            .post(app.url("/v1/account/password"))
            .bearer_auth(&u.access)
            .json(&password_body("guess guess", NEW_PASSWORD))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 403);
    }
    let limited = limited.expect("throttled within the login burst");
    assert!(limited.headers().contains_key("retry-after"));
    let right = password_body(&u.password, NEW_PASSWORD);
    let (status, body) = app.post("/v1/account/password", &u.access, right).await;
    assert_error(status, &body, 429, "rate_limited");
    assert!(works(&app, &other).await);
    assert_eq!(
        password_hash(&app, &u).await,
        before,
        "the password never changed"
    );
}

async fn password_hash(app: &TestApp, u: &TestUser) -> String {
    let pool = &app.db.as_ref().unwrap().pool;
    sqlx::query_scalar("SELECT password_hash FROM cloud_users WHERE id = $1")
        .bind(&u.id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn self_service_change_email_through_the_link_sent_to_the_new_address() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let new_email = format!("moved{}@example.com", cloud_testkit::random_token());
    let ask = json!({"newEmail": new_email.to_uppercase(), "currentPassword": u.password});
    assert_status(app.post("/v1/account/email", &u.access, ask).await, 200);
    let (_, account) = app.get("/v1/account", &u.access).await;
    assert_eq!(
        account["user"]["email"],
        u.email.as_str(),
        "unchanged until confirmed"
    );
    let mail = mail_to(&app, &new_email, "Confirm your new email").await;
    let token = token_in(
        &mail.expect("a link to the new address"),
        "/cloud/account/confirm-email",
    );
    assert!(
        mail_to(&app, &u.email, "Confirm your new email")
            .await
            .is_none()
    );

    // The link opens a page with a button (opening it consumes nothing).
    let b = crate::web::browser();
    let link = app.url(&format!("/cloud/account/confirm-email?token={token}"));
    let html = page(&b, link.as_str()).await;
    assert!(html.contains("Use this address") && html.contains(&token));
    let resp = post_form(
        &app,
        &b,
        &link,
        "/cloud/account/confirm-email",
        &[("token", &token)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(&new_email));

    let (_, account) = app.get("/v1/account", &u.access).await;
    assert_eq!(account["user"]["email"], new_email.as_str());
    assert_eq!(account["user"]["emailVerified"], true);
    assert_eq!(
        app.login(&u.email, &u.password).await.0,
        401,
        "the old address no longer signs in"
    );
    assert_eq!(app.login(&new_email, &u.password).await.0, 200);
    let told = mail_to(&app, &u.email, "Your Chatons Cloud email was changed").await;
    assert!(told.expect("the old address is told").contains(&new_email));
    let again = app
        .post_public("/v1/web/confirm-email-change", json!({"token": token}))
        .await;
    assert_error(again.0, &again.1, 400, "invalid_token");

    // An address another account has: the same answer, no link, nothing changes.
    let v = app.signup().await;
    let ask = json!({"newEmail": v.email, "currentPassword": u.password});
    assert_status(app.post("/v1/account/email", &u.access, ask).await, 200);
    let mail = mail_to(&app, &v.email, "Confirm your new email")
        .await
        .expect("a notice");
    assert!(!mail.contains("/cloud/account/confirm-email"), "{mail}");
    let (_, account) = app.get("/v1/account", &u.access).await;
    assert_eq!(account["user"]["email"], new_email.as_str());

    // A wrong password or a bad address: refused, nothing mailed.
    let third = format!("third{}@example.com", cloud_testkit::random_token());
    let ask = json!({"newEmail": third, "currentPassword": "nope nope"});
    let (status, body) = app.post("/v1/account/email", &u.access, ask).await;
    assert_error(status, &body, 403, "forbidden");
    let ask = json!({"newEmail": "not an address", "currentPassword": u.password});
    let (status, body) = app.post("/v1/account/email", &u.access, ask).await;
    assert_error(status, &body, 400, "invalid_request");
    assert!(mail_to(&app, &third, "Confirm").await.is_none());
    let bad = app
        .post_public("/v1/web/confirm-email-change", json!({}))
        .await;
    assert_error(bad.0, &bad.1, 400, "invalid_request");
}

/// The live sessions `token` sees.
async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/v1/account/sessions", token).await;
    assert_eq!(status, 200, "{body}");
    body["sessions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn self_service_sessions_list_desktop_and_portal_and_revoke_families() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let browser = app.portal_browser(&u).await;
    let listed = sessions(&app, &u.access).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let kind = |k: &str| listed.iter().find(|s| s["kind"] == k).unwrap().clone();
    let (desktop, portal) = (kind("desktop"), kind("portal"));
    assert_eq!(desktop["current"], true);
    assert_eq!(portal["current"], false);
    assert_eq!(desktop["clientId"], "chatons-desktop");
    for field in [
        "createdAt",
        "authTime",
        "lastUsedAt",
        "expiresAt",
        "clientLabel",
    ] {
        assert!(desktop[field].is_string(), "{field}: {desktop}");
    }
    let html = page(&browser, app.url("/cloud/account/sessions")).await;
    assert!(
        html.contains("This browser") && html.contains("Chatons desktop"),
        "{html}"
    );

    // Another user cannot see or end them: 404, nothing changes.
    let v = app.signup().await;
    let theirs = format!("/v1/account/sessions/{}", desktop["id"].as_str().unwrap());
    let (status, body) = app.delete(&theirs, &v.access).await;
    assert_error(status, &body, 404, "not_found");
    assert!(works(&app, &u.access).await && signed_in(&app, &browser).await);
    assert_eq!(sessions(&app, &v.access).await.len(), 1);
    let (status, body) = app.delete("/v1/account/sessions/nope", &u.access).await;
    assert_error(status, &body, 404, "not_found");

    // Ending the portal session from the desktop signs that browser out.
    let path = format!("/v1/account/sessions/{}", portal["id"].as_str().unwrap());
    assert_status(app.delete(&path, &u.access).await, 200);
    assert!(!signed_in(&app, &browser).await);
    let (status, _) = app.delete(&path, &u.access).await;
    assert_eq!(status, 404, "already ended");

    // From the sessions page: end the desktop session (its refresh token dies with it).
    let b = app.portal_browser(&u).await;
    let id = desktop["id"].as_str().unwrap();
    let list = "/cloud/account/sessions";
    let resp = post_form(
        &app,
        &b,
        list,
        "/cloud/account/sessions/revoke",
        &[("session_id", id)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/cloud/account/sessions?notice=revoked");
    assert!(!works(&app, &u.access).await);
    let (status, _) = crate::oidc::token_form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "chatons-desktop"),
            ("refresh_token", u.refresh.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 400, "the family's refresh token is dead");
    assert!(signed_in(&app, &b).await);

    // Sign out everywhere else, from the JSON API and from the page.
    let one = another_login(&app, &u, &u.password).await;
    let two = another_login(&app, &u, &u.password).await;
    let (status, body) = app
        .post("/v1/account/sessions/revoke-others", &one, json!({}))
        .await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)), "{body}");
    assert!(works(&app, &one).await && !works(&app, &two).await);
    assert!(!signed_in(&app, &b).await);
    let b = app.portal_browser(&u).await;
    let resp = post_form(&app, &b, list, "/cloud/account/sessions/revoke-others", &[]).await;
    assert_eq!(location(&resp), "/cloud/account/sessions?notice=others");
    assert!(signed_in(&app, &b).await && !works(&app, &one).await);
    let shown = page(&b, app.url("/cloud/account/sessions?notice=others")).await;
    assert!(shown.contains("Every other session was signed out."));

    // Ending this browser's own session signs it out.
    let listed = sessions(&app, &another_login(&app, &u, &u.password).await).await;
    let own = listed.iter().find(|s| s["kind"] == "portal").unwrap();
    let own = own["id"].as_str().unwrap();
    let resp = post_form(
        &app,
        &b,
        list,
        "/cloud/account/sessions/revoke",
        &[("session_id", own)],
    )
    .await;
    assert_eq!(location(&resp), "/cloud/login");
    assert!(!signed_in(&app, &b).await);
}

/// The personal organization id of `token`'s user.
async fn personal_org(app: &TestApp, token: &str) -> String {
    let (_, body) = app.get("/v1/organizations", token).await;
    let orgs = body["organizations"].as_array().unwrap();
    let personal = orgs.iter().find(|o| o["isPersonal"] == true).unwrap();
    personal["id"].as_str().unwrap().to_owned()
}

async fn org_exists(app: &TestApp, id: &str) -> bool {
    let pool = &app.db.as_ref().unwrap().pool;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cloud_organizations WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    n == 1
}

#[tokio::test]
async fn self_service_delete_account_with_its_personal_org_unless_last_owner() {
    let app = spawn_app().await;
    let [u, v] = app.signups::<2>().await;
    let personal = personal_org(&app, &u.access).await;
    let shared = app
        .create(
            "/v1/organizations",
            &u.access,
            "organization",
            json!({"name": "Acme Shared"}),
        )
        .await;
    app.add_member(&u, &shared, &v, None).await;
    let confirm = json!({"email": u.email.to_uppercase(), "password": u.password});

    // The last owner of an organization with another member: 409 naming it, nothing changes.
    let (status, body) = app
        .post("/v1/account/delete", &u.access, confirm.clone())
        .await;
    assert_error(status, &body, 409, "last_owner");
    assert!(
        body["message"].as_str().unwrap().contains("Acme Shared"),
        "{body}"
    );
    assert!(works(&app, &u.access).await && org_exists(&app, &personal).await);

    // Bad confirmation: 400 / 403, nothing changes.
    let wrong_email = json!({"email": v.email, "password": u.password});
    let (status, body) = app.post("/v1/account/delete", &u.access, wrong_email).await;
    assert_error(status, &body, 400, "invalid_request");
    let wrong_password = json!({"email": u.email, "password": "not the password"});
    let (status, body) = app
        .post("/v1/account/delete", &u.access, wrong_password)
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.post("/v1/account/delete", &u.access, json!({})).await;
    assert_error(status, &body, 400, "invalid_request");
    assert!(works(&app, &u.access).await);

    // With a second owner, the account goes with its personal organization; the shared one
    // stays with the other member.
    let promote = json!({"organizationId": shared, "role": "owner"});
    let member = format!("/v1/organization/members/{}", v.id);
    assert_status(app.patch(&member, &u.access, promote).await, 200);
    let (status, body) = app.post("/v1/account/delete", &u.access, confirm).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deletedOrganizations"], json!([personal]));
    assert!(!works(&app, &u.access).await, "every session ended");
    assert_eq!(app.login(&u.email, &u.password).await.0, 401);
    assert!(!org_exists(&app, &personal).await && org_exists(&app, &shared).await);
    let (_, members) = app
        .get(
            &format!("/v1/organization/members?organizationId={shared}"),
            &v.access,
        )
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    assert!(
        mail_to(&app, &u.email, "Your Chatons Cloud account was deleted")
            .await
            .is_some()
    );
    // The address is free again.
    app.signup_as(&u.email).await;

    // From the portal: the confirmation page, then signed out and gone.
    let w = app.signup().await;
    let w_personal = personal_org(&app, &w.access).await;
    let b = app.portal_browser(&w).await;
    let html = page(&b, app.url("/cloud/account/delete")).await;
    assert!(
        html.contains("Delete my account") && html.contains(&w.email),
        "{html}"
    );
    let form = "/cloud/account/delete";
    let fields = [("email", w.email.as_str()), ("password", "wrong wrong")];
    assert_eq!(post_form(&app, &b, form, form, &fields).await.status(), 403);
    let fields = [
        ("email", w.email.as_str()),
        ("password", w.password.as_str()),
    ];
    let resp = post_form(&app, &b, form, form, &fields).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/cloud/account/deleted");
    assert!(!signed_in(&app, &b).await && !works(&app, &w.access).await);
    assert!(!org_exists(&app, &w_personal).await);
    let (status, _) = app.call(Method::GET, "/v1/account", &w.access, None).await;
    assert_eq!(status, 401);
}
