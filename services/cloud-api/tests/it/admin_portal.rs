//! The admin area (portal pages under `/cloud/admin`) and the JSON admin routes: every admin
//! action leaves exactly one audit row naming who did what to which record; non-admins and
//! forms without their CSRF token change nothing; a disabled user signs in nowhere and their
//! tokens stop working.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_status, spawn_with_admin};
use crate::web::{browser, location, page, portal_login, submit};

/// The whole audit log (newest first), as the JSON route answers it.
async fn audit_log(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let (status, body) = app
        .get("/v1/admin/audit-log?limit=200", &admin.access)
        .await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

/// The log grew by exactly one row since `before` rows, and that row says `admin` did
/// `action` to `(kind, id)`; its details.
async fn one_new_row(
    app: &TestApp,
    admin: &TestUser,
    before: usize,
    action: &str,
    (kind, id): (&str, &str),
) -> Value {
    let log = audit_log(app, admin).await;
    assert_eq!(
        log.len(),
        before + 1,
        "{action}: exactly one new row: {log:#?}"
    );
    let row = &log[0];
    assert_eq!(row["action"], action, "{row}");
    assert_eq!(row["actorUserId"], admin.id.as_str(), "{row}");
    assert_eq!(row["actorEmail"], admin.email.as_str(), "{row}");
    assert_eq!(
        (row["targetKind"].as_str(), row["targetId"].as_str()),
        (Some(kind), Some(id))
    );
    assert!(row["createdAt"].as_str().unwrap().ends_with('Z'), "{row}");
    row["details"].clone()
}

async fn admin_and_user(app: &TestApp, admin_email: &str) -> (TestUser, TestUser) {
    let admin = app.signup_as(admin_email).await;
    let user = app
        .signup_unverified("someone-admin-test@example.com")
        .await;
    (admin, user)
}

#[tokio::test]
async fn every_json_admin_action_leaves_one_audit_row() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let (admin, u) = admin_and_user(&app, &admin_email).await;
    let target = ("user", u.id.as_str());
    let user_path = format!("/v1/admin/users/{}", u.id);
    let mut n = audit_log(&app, &admin).await.len();
    assert_eq!(n, 0);

    assert_status(
        app.patch(&user_path, &admin.access, json!({"isAdmin": true}))
            .await,
        200,
    );
    let d = one_new_row(&app, &admin, n, "user.update", target).await;
    assert_eq!(d["isAdmin"], json!({"from": false, "to": true}));
    n += 1;

    let grant = format!("{user_path}/grant-subscription");
    let body = json!({"planId": "max", "durationDays": 7});
    assert_status(app.post(&grant, &admin.access, body).await, 200);
    let d = one_new_row(&app, &admin, n, "user.grant", target).await;
    assert_eq!(d["planId"], "max");
    n += 1;

    assert_status(app.delete(&grant, &admin.access).await, 200);
    let d = one_new_row(&app, &admin, n, "user.revoke_grant", target).await;
    assert_eq!(d["planId"], "max");
    n += 1;

    let (status, body) = app
        .post(
            &format!("{user_path}/verify-email"),
            &admin.access,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["emailVerified"], true);
    one_new_row(&app, &admin, n, "user.verify", target).await;
    n += 1;

    let (status, body) = app
        .post(&format!("{user_path}/disable"), &admin.access, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["user"]["disabledAt"].is_string(), "{body}");
    one_new_row(&app, &admin, n, "user.disable", target).await;
    n += 1;

    let (status, body) = app
        .post(&format!("{user_path}/enable"), &admin.access, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["user"]["disabledAt"].is_null(), "{body}");
    one_new_row(&app, &admin, n, "user.enable", target).await;
    n += 1;

    let body = json!({"label": "Pro+", "parallelSessionsLimit": 12});
    assert_status(
        app.patch("/v1/admin/plans/pro", &admin.access, body).await,
        200,
    );
    let d = one_new_row(&app, &admin, n, "plan.update", ("plan", "pro")).await;
    assert_eq!(d["label"], json!({"from": "Pro", "to": "Pro+"}));
    assert_eq!(d["parallelSessionsLimit"], json!({"from": 10, "to": 12}));
    n += 1;

    // Refused actions leave no row.
    let refused = [
        app.patch(
            "/v1/admin/users/user-nobody",
            &admin.access,
            json!({"isAdmin": true}),
        )
        .await,
        app.post(&grant, &admin.access, json!({"planId": "gold"}))
            .await,
        app.patch("/v1/admin/plans/gold", &admin.access, json!({"label": "x"}))
            .await,
        app.post(
            "/v1/admin/users/user-nobody/disable",
            &admin.access,
            json!({}),
        )
        .await,
        app.post(
            &format!("/v1/admin/users/{}/disable", admin.id),
            &admin.access,
            json!({}),
        )
        .await,
    ];
    let statuses: Vec<u16> = refused.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [404, 400, 404, 404, 400], "{refused:?}");
    assert_eq!(
        audit_log(&app, &admin).await.len(),
        n,
        "refused actions leave no row"
    );

    // The log pages newest first and filters by target; the same rows are in the table.
    let (_, first) = app.get("/v1/admin/audit-log?limit=2", &admin.access).await;
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            &format!("/v1/admin/audit-log?limit=2&cursor={cursor}"),
            &admin.access,
        )
        .await;
    let ids = |b: &Value| -> Vec<i64> {
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert!(a[0] > a[1] && a[1] > b[0] && b[0] > b[1], "{a:?} {b:?}");
    let q = "/v1/admin/audit-log?targetKind=plan&targetId=pro";
    let (_, plans) = app.get(q, &admin.access).await;
    assert_eq!(plans["entries"].as_array().unwrap().len(), 1, "{plans}");
    assert_eq!(plans["entries"][0]["targetLabel"], "Pro+");
    assert_status(
        app.get("/v1/admin/audit-log?targetKind=plan", &admin.access)
            .await,
        400,
    );
    let pool = &app.db.as_ref().unwrap().pool;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cloud_audit_log WHERE actor_user_id = $1")
            .bind(&admin.id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(rows as usize, n);

    // Non-admins (`u` was made one above) read nothing and change nothing.
    let u = app.signup().await;
    assert_status(app.get("/v1/admin/audit-log", &u.access).await, 403);
    assert_status(app.get("/v1/admin/organizations", &u.access).await, 403);
    assert_status(
        app.post(
            &format!("/v1/admin/users/{}/disable", admin.id),
            &u.access,
            json!({}),
        )
        .await,
        403,
    );
    assert_eq!(audit_log(&app, &admin).await.len(), n);
}

#[tokio::test]
async fn admin_search_lists_users_and_organizations() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let admin = app.signup_as(&admin_email).await;
    let u = app.signup_as("findme-zebra@example.com").await;
    let (status, body) = app.get("/v1/admin/users?q=ZEBRA", &admin.access).await;
    assert_eq!(status, 200, "{body}");
    let emails: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [u.email.as_str()]);
    let (_, body) = app.get("/v1/admin/users?limit=1", &admin.access).await;
    assert!(body["nextCursor"].is_string(), "{body}");
    let (status, body) = app
        .get("/v1/admin/organizations?q=test%20user", &admin.access)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organizations"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["organizations"][0]["ownerEmail"].is_string(), "{body}");
    let long = "x".repeat(201);
    assert_status(
        app.get(&format!("/v1/admin/users?q={long}"), &admin.access)
            .await,
        400,
    );
    let (status, body) = app
        .get(&format!("/v1/admin/users/{}", u.id), &admin.access)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["subscriptionPlan"], "plus");

    // The portal pages show the same.
    let b = app.portal_browser(&admin).await;
    let html = page(&b, app.url("/cloud/admin/users?q=zebra")).await;
    assert!(html.contains(&u.email), "search result shown");
    assert!(
        !html.contains(&format!(">{admin_email}<")),
        "others filtered out"
    );
    let html = page(&b, app.url("/cloud/admin/organizations?q=Test")).await;
    assert!(html.contains("Test User&#39;s organization"), "{html}");
    let html = page(&b, app.url("/cloud/account")).await;
    assert!(
        html.contains("href=\"/cloud/admin\""),
        "the account page links the admin area"
    );
    let resp = b.get(app.url("/cloud/admin")).send().await.unwrap();
    assert_eq!(location(&resp), "/cloud/admin/users");
}

/// A form's fields.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// Posts the admin form `action` about `user` from the admin's browser (with its CSRF token).
async fn post_action(
    app: &TestApp,
    b: &reqwest::Client,
    user: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf_of(b, &format!("/cloud/admin/users/{user}")).await;
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    submit(
        b,
        app.url(&format!("/cloud/admin/users/{user}/{action}")),
        &form,
    )
    .await
}

#[tokio::test]
async fn every_portal_admin_action_leaves_one_audit_row() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let (admin, u) = admin_and_user(&app, &admin_email).await;
    let b = app.portal_browser(&admin).await;
    let target = ("user", u.id.as_str());
    let actions: &[(&str, Fields, &str)] = &[
        ("verify", &[], "user.verify"),
        (
            "grant",
            &[("plan_id", "pro"), ("duration_days", "30")],
            "user.grant",
        ),
        ("revoke-grant", &[], "user.revoke_grant"),
        ("make-admin", &[], "user.update"),
        ("remove-admin", &[], "user.update"),
        ("set-plan", &[("subscription_plan", "max")], "user.update"),
        ("disable", &[], "user.disable"),
        ("enable", &[], "user.enable"),
    ];
    for (i, (action, fields, recorded)) in actions.iter().enumerate() {
        let resp = post_action(&app, &b, &u.id, action, fields).await;
        assert_eq!(resp.status(), 303, "{action}");
        assert_eq!(
            location(&resp),
            format!("/cloud/admin/users/{}?notice={action}", u.id)
        );
        one_new_row(&app, &admin, i, recorded, target).await;
    }
    let (_, body) = app
        .get(&format!("/v1/admin/users/{}", u.id), &admin.access)
        .await;
    assert_eq!(body["user"]["subscriptionPlan"], "max");
    assert_eq!(body["user"]["emailVerified"], true);
    assert_eq!(body["user"]["isAdmin"], false);

    // The plans form.
    let csrf = app.csrf_of(&b, "/cloud/admin/plans").await;
    let form = [
        ("csrf_token", csrf.as_str()),
        ("label", "Maximum"),
        ("parallel_sessions_limit", "40"),
    ];
    let resp = submit(&b, app.url("/cloud/admin/plans/max"), &form).await;
    assert_eq!(resp.status(), 303);
    let d = one_new_row(&app, &admin, actions.len(), "plan.update", ("plan", "max")).await;
    assert_eq!(d["label"], json!({"from": "Max", "to": "Maximum"}));
    assert_eq!(
        d["isHidden"],
        Value::Null,
        "unchanged fields are not listed"
    );

    // A refused form shows the page again with why, and records nothing.
    let resp = post_action(&app, &b, &u.id, "grant", &[("plan_id", "gold")]).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Invalid subscription plan")
    );
    let resp = post_action(
        &app,
        &b,
        &u.id,
        "grant",
        &[("plan_id", "pro"), ("duration_days", "soon")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = post_action(&app, &b, &admin.id, "disable", &[]).await;
    assert_eq!(resp.status(), 400, "an admin cannot disable themselves");
    let resp = post_action(&app, &b, &u.id, "explode", &[]).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(audit_log(&app, &admin).await.len(), actions.len() + 1);

    // The pages show the rows.
    let html = page(&b, app.url("/cloud/admin/audit")).await;
    for (_, _, recorded) in actions {
        assert!(html.contains(recorded), "{recorded} on the audit page");
    }
    assert!(html.contains(&admin.email) && html.contains(&u.email));
    let html = page(&b, app.url(&format!("/cloud/admin/users/{}", u.id))).await;
    assert!(html.contains("user.enable"), "the user's own history");
    let html = page(&b, app.url("/cloud/admin/plans")).await;
    assert!(html.contains("value=\"Maximum\""));
}

#[tokio::test]
async fn non_admins_and_forms_without_csrf_change_nothing() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let admin = app.signup_as(&admin_email).await;
    let u = app.signup().await;
    // Signed out: the login page, coming back.
    let anon = browser();
    let resp = anon
        .get(app.url("/cloud/admin/users"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection());
    assert!(location(&resp).starts_with("/cloud/login?return_to=%2Fcloud%2Fadmin%2Fusers"));
    // Signed in, not an admin: 403 on every page and form.
    let b = app.portal_browser(&u).await;
    for path in [
        "/cloud/admin/users",
        "/cloud/admin/plans",
        "/cloud/admin/organizations",
        "/cloud/admin/audit",
        &format!("/cloud/admin/users/{}", admin.id),
    ] {
        let resp = b.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
    }
    let html = page(&b, app.url("/cloud/account")).await;
    assert!(!html.contains("/cloud/admin"), "no admin link for others");
    let csrf = app.csrf_of(&b, "/cloud/account").await;
    let form = [("csrf_token", csrf.as_str())];
    let resp = submit(
        &b,
        app.url(&format!("/cloud/admin/users/{}/make-admin", u.id)),
        &form,
    )
    .await;
    assert_eq!(resp.status(), 403);
    let resp = submit(
        &b,
        app.url(&format!("/cloud/admin/users/{}/disable", admin.id)),
        &form,
    )
    .await;
    assert_eq!(resp.status(), 403);
    let plan_form = [
        ("csrf_token", csrf.as_str()),
        ("label", "Hacked"),
        ("parallel_sessions_limit", "999"),
    ];
    let resp = submit(&b, app.url("/cloud/admin/plans/plus"), &plan_form).await;
    assert_eq!(resp.status(), 403);
    // The admin's forms without (or with a wrong) CSRF token: 400.
    let ab = app.portal_browser(&admin).await;
    let resp = submit(
        &ab,
        app.url(&format!("/cloud/admin/users/{}/disable", u.id)),
        &[("x", "y")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = submit(
        &ab,
        app.url(&format!("/cloud/admin/users/{}/make-admin", u.id)),
        &[("csrf_token", "forged")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = submit(
        &ab,
        app.url("/cloud/admin/plans/plus"),
        &[("label", "Hacked")],
    )
    .await;
    assert_eq!(resp.status(), 400);

    assert!(audit_log(&app, &admin).await.is_empty(), "no row");
    let (_, body) = app
        .get(&format!("/v1/admin/users/{}", u.id), &admin.access)
        .await;
    assert_eq!(body["user"]["isAdmin"], false);
    assert!(body["user"]["disabledAt"].is_null());
    let (_, plans) = app.get("/v1/admin/users?limit=1", &admin.access).await;
    let plus = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "plus")
        .unwrap()
        .clone();
    assert_eq!(plus["label"], "Plus");
    assert_eq!(
        (
            admin.email.as_str(),
            body["user"]["email"].as_str().is_some()
        ),
        (admin_email.as_str(), true)
    );
}

#[tokio::test]
async fn a_disabled_user_signs_in_nowhere_and_their_tokens_stop() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let admin = app.signup_as(&admin_email).await;
    let u = app.signup().await;
    let portal = app.portal_browser(&u).await;
    assert_status(app.get("/v1/account", &u.access).await, 200);

    let b = app.portal_browser(&admin).await;
    let resp = post_action(&app, &b, &u.id, "disable", &[]).await;
    assert_eq!(resp.status(), 303);

    // Existing tokens: the API, the refresh token and the portal cookie.
    assert_status(app.get("/v1/account", &u.access).await, 401);
    let refresh = json!({"grantType": "refresh_token", "clientId": "chatons-desktop", "refreshToken": u.refresh});
    let (status, body) = app.post_public("/oidc/token", refresh).await;
    assert!(
        (400..500).contains(&status),
        "refresh refused: {status} {body}"
    );
    let resp = portal.get(app.url("/cloud/account")).send().await.unwrap();
    assert!(resp.status().is_redirection(), "the portal session is gone");
    assert!(location(&resp).starts_with("/cloud/login"));
    // New sign-ins: JSON and the portal.
    let (status, _) = app.login(&u.email, &u.password).await;
    assert_eq!(status, 401);
    let resp = portal_login(&app, &browser(), &u.email, &u.password).await;
    assert_eq!(resp.status(), 401);

    // Enabled again: they sign in anew (the old tokens stay revoked).
    let resp = post_action(&app, &b, &u.id, "enable", &[]).await;
    assert_eq!(resp.status(), 303);
    let (status, body) = app.login(&u.email, &u.password).await;
    assert_eq!(status, 200, "{body}");
    assert_status(app.get("/v1/account", &u.access).await, 401);
    let fresh = body["session"]["accessToken"].as_str().unwrap();
    assert_status(app.get("/v1/account", fresh).await, 200);
}
