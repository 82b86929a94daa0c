//! The cloud-api findings of the hostile review (issue 16), one test each: every one of them
//! failed against the code before its fix.

use cloud_api::Config;
use cloud_common::config::Env;
use serde_json::{Value, json};

use crate::helpers::{
    TEST_SECRETS_KEY, TestApp, TestUser, assert_status, spawn_app_with, spawn_with_admin,
};

fn production_env(extra: &[(&str, &str)]) -> Env {
    let mut vars: Vec<(String, String)> = [
        ("CHATONS_PROFILE", "production"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
        ("CHATONS_INTERNAL_SERVICE_TOKEN", "internal-token-for-tests"),
        ("CHATONS_CLOUD_PUBLIC_URL", "https://cloud.example.test"),
        ("JWT_SIGNING_KEY", "placeholder"),
        ("CHATONS_SECRETS_ENCRYPTION_KEY", TEST_SECRETS_KEY),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.dedup_by(|a, b| a.0 == b.0);
    Env::from_pairs(vars)
}

// High: admin needs a proven address --------------------------------------------------------------

/// Without SMTP, the first signup with an address of `CHATONS_ADMIN_EMAILS` used to be marked
/// verified, hence an admin at once. Now it is an admin only after opening the link.
#[tokio::test]
async fn an_admin_address_is_admin_only_once_its_link_was_opened() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let squatter = app.signup_unverified(&admin_email).await;
    assert_eq!(squatter.body["user"]["isAdmin"], false, "{}", squatter.body);
    assert_eq!(squatter.body["user"]["emailVerified"], false);
    assert_eq!(squatter.body["requiresEmailVerification"], true);
    let (status, _) = app.get("/v1/admin/users", &squatter.access).await;
    assert_eq!(status, 403, "an unproven admin address grants nothing");
    app.verify_email(&admin_email).await;
    let (status, body) = app.get("/v1/admin/users", &squatter.access).await;
    assert_eq!(status, 200, "the proven address is an admin: {body}");
}

/// A production server that can send no mail could never prove an admin address: it refuses
/// the list at start, and refuses the development shortcut outright.
#[test]
fn production_refuses_an_admin_list_that_can_never_be_verified() {
    assert!(Config::from_env(&production_env(&[])).is_ok());
    let err = Config::from_env(&production_env(&[(
        "CHATONS_ADMIN_EMAILS",
        "a@example.com",
    )]))
    .expect_err("admin list without SMTP");
    assert!(err.to_string().contains("CHATONS_ADMIN_EMAILS"), "{err}");
    assert!(
        Config::from_env(&production_env(&[
            ("CHATONS_ADMIN_EMAILS", "a@example.com"),
            ("SMTP_HOST", "smtp.example.test"),
        ]))
        .is_ok()
    );
    let err = Config::from_env(&production_env(&[(
        "CHATONS_DEV_AUTO_VERIFY_EMAILS",
        "true",
    )]))
    .expect_err("development shortcut in production");
    assert!(
        err.to_string().contains("CHATONS_DEV_AUTO_VERIFY_EMAILS"),
        "{err}"
    );
}

/// The explicit development setting counts addresses as verified (what scripts/dev may use).
#[tokio::test]
async fn the_development_setting_verifies_at_signup() {
    let (app, admin_email) = spawn_with_admin(&[("CHATONS_DEV_AUTO_VERIFY_EMAILS", "true")]).await;
    let dev = app.signup_unverified(&admin_email).await;
    assert_eq!(dev.body["user"]["isAdmin"], true, "{}", dev.body);
    assert_eq!(dev.body["requiresEmailVerification"], false);
}

// Low: signup and login --------------------------------------------------------------------------

/// The JSON signup answered 409 for a registered address. A server that mails answers both the
/// same (202, no session); the owner of the address is told by mail.
#[tokio::test]
async fn json_signup_does_not_reveal_a_registered_address() {
    // Port 9 (discard) is closed here: mails stay queued, which is all this test reads.
    let app = spawn_app_with(&[("SMTP_HOST", "127.0.0.1"), ("SMTP_PORT", "9")]).await;
    let signup = |email: &str| json!({"email": email, "displayName": "Someone", "password": "correct horse battery"});
    let taken = format!("taken{}@example.com", cloud_testkit::random_token());
    let fresh = format!("fresh{}@example.com", cloud_testkit::random_token());
    let first = app.post_public("/v1/web/signup", signup(&taken)).await;
    assert_eq!(first.0, 202, "{}", first.1);
    let again = app.post_public("/v1/web/signup", signup(&taken)).await;
    let new = app.post_public("/v1/web/signup", signup(&fresh)).await;
    assert_eq!(again, new, "a taken address answers like a new one");
    assert_eq!(again.0, 202);
    let pool = &app.db.as_ref().unwrap().pool;
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cloud_mail_outbox WHERE recipient = $1 AND subject LIKE '%already have%'",
    )
    .bind(&taken)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(told, 1, "the owner learns about the attempt");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM cloud_users WHERE email = $1")
        .bind(&taken)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

/// The per-account login budget was split: the JSON API and the portal counted separately.
#[tokio::test]
async fn one_login_budget_per_account_across_endpoints() {
    let app = spawn_app_with(&[]).await;
    let u = app.signup().await;
    let wrong = json!({"email": u.email, "password": "not the password"});
    for _ in 0..10 {
        assert_eq!(app.post_public("/v1/web/login", wrong.clone()).await.0, 401);
    }
    assert_eq!(app.post_public("/v1/web/login", wrong.clone()).await.0, 429);
    // The portal's form draws from the same bucket, as does the authorization page's.
    let browser = crate::web::browser();
    let email = u.email.to_uppercase();
    let resp = crate::web::portal_login(&app, &browser, &email, &u.password).await;
    assert_eq!(
        resp.status(),
        429,
        "the portal shares the JSON API's budget"
    );
}

// Medium: invitations -----------------------------------------------------------------------------

async fn invite(app: &TestApp, token: &str, org: Option<&str>, n: usize) -> (u16, Value) {
    let mut body = json!({"email": format!("guest{n}@example.com")});
    if let Some(org) = org {
        body["organizationId"] = json!(org);
    }
    app.post("/v1/organization/invites", token, body).await
}

async fn team(app: &TestApp, owner: &TestUser) -> String {
    let (status, body) = app
        .post(
            "/v1/organizations",
            &owner.access,
            json!({"name": format!("Team {}", cloud_testkit::random_token())}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["organization"]["id"].as_str().unwrap().to_owned()
}

/// Unverified accounts could send any number of invitation mails (their text in the subject).
#[tokio::test]
async fn invitations_need_a_verified_sender() {
    let app = spawn_app_with(&[]).await;
    let email = format!("spam{}@example.com", cloud_testkit::random_token());
    let spammer = app.signup_unverified(&email).await;
    let org = team(&app, &spammer).await;
    let (status, body) = invite(&app, &spammer.access, Some(&org), 0).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    let pool = &app.db.as_ref().unwrap().pool;
    let invites: i64 = sqlx::query_scalar("SELECT count(*) FROM cloud_organization_invites")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(invites, 0, "the refused request changed nothing");
    app.verify_email(&email).await;
    assert_eq!(invite(&app, &spammer.access, Some(&org), 0).await.0, 201);
}

/// Per account (all organizations) and per organization (all managers), per rolling hour.
#[tokio::test]
async fn invitations_are_rate_limited_per_account_and_per_organization() {
    let app = spawn_app_with(&[
        ("CHATONS_INVITES_PER_HOUR_PER_ACCOUNT", "3"),
        ("CHATONS_INVITES_PER_HOUR_PER_ORG", "4"),
    ])
    .await;
    let [owner, admin] = app.signups().await;
    let (first, second) = (team(&app, &owner).await, team(&app, &owner).await);
    app.add_member(&owner, &first, &admin, Some("admin")).await;
    assert_eq!(invite(&app, &owner.access, Some(&first), 1).await.0, 201);
    assert_eq!(invite(&app, &owner.access, Some(&second), 2).await.0, 201);
    let (status, body) = invite(&app, &owner.access, Some(&second), 3).await;
    assert_eq!(
        status, 429,
        "the account's budget spans organizations: {body}"
    );
    assert_eq!(body["error"], "rate_limited");
    // The admin has a full budget, the first organization two invitations left.
    for n in 4..6 {
        assert_eq!(invite(&app, &admin.access, Some(&first), n).await.0, 201);
    }
    let (status, body) = invite(&app, &admin.access, Some(&first), 6).await;
    assert_eq!(
        status, 429,
        "the organization's budget spans managers: {body}"
    );
}

// Low: projects and addresses ---------------------------------------------------------------------

/// A member could point the owner's repository project at another server and keep the owner's
/// token, which the runtime would then present to that server.
#[tokio::test]
async fn repointing_a_repository_does_not_keep_its_token() {
    let app = spawn_app_with(&[]).await;
    let [owner, member] = app.signups().await;
    let org = team(&app, &owner).await;
    app.add_member(&owner, &org, &member, None).await;
    let (status, body) = app
        .post("/v1/projects", &owner.access, json!({"name": "Repo", "kind": "repository",
            "organizationId": org,
            "repository": {"cloneUrl": "https://github.com/acme/widgets.git", "authMode": "token", "accessToken": "ghp_owner_token"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["project"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/projects/{id}");
    // Same URL (a branch change): the token stays.
    let (status, body) = app
        .patch(
            &path,
            &member.access,
            json!({"repository": {"cloneUrl": "https://github.com/acme/widgets.git",
            "defaultBranch": "dev", "authMode": "token"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["project"]["repository"]["hasAccessToken"], true);
    // Another URL with token auth and no new token: refused, nothing changed.
    let (status, body) = app
        .patch(
            &path,
            &member.access,
            json!({"repository": {"cloneUrl": "https://evil.example/acme/widgets.git",
            "authMode": "token"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = app.get(&path, &owner.access).await;
    assert_eq!(
        body["project"]["repository"]["cloneUrl"],
        "https://github.com/acme/widgets.git"
    );
    // Another URL without token auth: the stored token is dropped.
    let (status, body) = app
        .patch(
            &path,
            &member.access,
            json!({"repository": {"cloneUrl": "https://evil.example/acme/widgets.git"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["project"]["repository"]["hasAccessToken"], false);
}

/// Look-alike addresses (Cyrillic, full-width, zero-width, combining marks) were distinct
/// accounts. Full-width forms now fold to the ASCII address; the rest is refused.
#[tokio::test]
async fn look_alike_addresses_are_not_distinct_accounts() {
    let app = spawn_app_with(&[]).await;
    let signup = |email: String| {
        let url = app.url("/v1/web/signup");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&json!({"email": email, "displayName": "Ada", "password": "correct horse battery"}))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let local = format!("ada{}", cloud_testkit::random_token().to_lowercase());
    assert_eq!(signup(format!("{local}@example.com")).await.0, 201);
    let full_width: String = local
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
        .collect();
    let (status, body) = signup(format!("{full_width}@example.com")).await;
    assert_eq!(status, 409, "full-width folds to the same account: {body}");
    for look_alike in [
        format!("\u{0430}{}@example.com", &local[1..]),
        format!("a\u{200b}{}@example.com", &local[1..]),
        format!("a\u{0301}{}@example.com", &local[1..]),
        format!("{local}@ex\u{0430}mple.com"),
    ] {
        let (status, body) = signup(look_alike.clone()).await;
        assert_eq!(status, 400, "{look_alike:?}: {body}");
        assert_eq!(body["error"], "invalid_request");
    }
}

// Low: owners -------------------------------------------------------------------------------------

/// Two owners demoting each other at the same moment both passed the "another owner is left"
/// check and left the organization without an owner.
#[tokio::test]
async fn two_owners_demoting_each_other_at_once_keep_one_owner() {
    let app = spawn_app_with(&[]).await;
    for round in 0..8 {
        let a = app.signup().await;
        let b = app.signup().await;
        let org = team(&app, &a).await;
        app.add_member(&a, &org, &b, Some("admin")).await;
        let promote = json!({"role": "owner", "organizationId": org});
        let (status, body) = app
            .patch(
                &format!("/v1/organization/members/{}", b.id),
                &a.access,
                promote,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let demote = json!({"role": "admin", "organizationId": org});
        let path_a = format!("/v1/organization/members/{}", a.id);
        let path_b = format!("/v1/organization/members/{}", b.id);
        let (ra, rb) = tokio::join!(
            app.patch(&path_b, &a.access, demote.clone()),
            app.patch(&path_a, &b.access, demote.clone()),
        );
        let pool = &app.db.as_ref().unwrap().pool;
        let owners: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cloud_organization_memberships WHERE organization_id = $1 AND role = 'owner'",
        )
        .bind(&org)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(owners, 1, "round {round}: {ra:?} {rb:?}");
        let statuses = [ra.0, rb.0];
        assert!(
            statuses.contains(&200) && statuses.iter().all(|s| [200, 403, 409].contains(s)),
            "round {round}: {ra:?} {rb:?}"
        );
    }
}

// Low: realtime audience --------------------------------------------------------------------------

/// The re-check cloud-realtime makes for open sockets (see cloud-realtime's
/// `a_member_removed_from_an_organization_stops_receiving_its_events`): the current
/// organizations of a user on an instance they hold, 404 otherwise.
#[tokio::test]
async fn the_realtime_audience_lists_current_memberships_only() {
    let app = spawn_app_with(&[]).await;
    let [owner, other] = app.signups().await;
    let org = team(&app, &owner).await;
    let instance = format!("instance-{}", owner.id);
    let ask = |user: &str, instance: &str| json!({"userId": user, "cloudInstanceId": instance});
    // The canonical instance is claimed on first use by the access check.
    assert_status(app.grant("realtime", &owner.access, &instance).await, 200);
    let (status, body) = app
        .internal("/v1/internal/realtime/audience", ask(&owner.id, &instance))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["organizationIds"]
            .as_array()
            .unwrap()
            .contains(&json!(org))
    );
    let (status, _) = app
        .internal("/v1/internal/realtime/audience", ask(&other.id, &instance))
        .await;
    assert_eq!(status, 404, "another user's instance");
    let (status, _) = app
        .internal(
            "/v1/internal/realtime/audience",
            json!({"userId": owner.id}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post(
            "/v1/internal/realtime/audience",
            &owner.access,
            ask(&owner.id, &instance),
        )
        .await;
    assert_eq!(status, 401, "a user's token is not the service token");
}
