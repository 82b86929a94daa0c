//! Abuse of cloud-api's JSON API (issue 16): hostile bodies on every JSON route, SQL-looking
//! and exotic strings, traversal in path ids, and password / code guessing. The route lists are
//! taken from the app's own `/openapi.json` wherever the route is documented, so a new route is
//! covered as soon as it is.

use cloud_testkit::edge::{JsonRoute, assert_hostile_json_refused_with};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_with_admin};
use crate::tenant::{Tenant, Unchanged, documented_operations};

/// JSON routes `/openapi.json` does not list (internal, issuer, account e-mail flows): method,
/// path, and whether the service token (rather than the user's) authorizes them.
fn undocumented_json_routes(t: &Tenant) -> Vec<(Method, String, bool)> {
    let conversation = &t.conversation;
    vec![
        (Method::POST, "/v1/web/forgot-password".into(), false),
        (Method::POST, "/v1/web/reset-password".into(), false),
        (Method::POST, "/v1/web/verify-email".into(), false),
        (Method::POST, "/oidc/token".into(), false),
        (Method::POST, "/v1/auth/desktop/exchange".into(), false),
        (Method::POST, "/v1/internal/realtime/access".into(), true),
        (Method::POST, "/v1/internal/realtime/audience".into(), true),
        (Method::POST, "/v1/internal/runtime/access".into(), true),
        (Method::POST, "/v1/internal/memory/upsert".into(), true),
        (
            Method::POST,
            format!("/v1/internal/conversations/{conversation}/messages"),
            true,
        ),
    ]
}

/// An admin (so the admin routes parse their bodies too) owning one of each resource.
async fn admin_tenant(app: &TestApp, email: &str) -> Tenant {
    let user = app.signup_as(email).await;
    Tenant::create(app, user).await
}

#[tokio::test]
async fn hostile_json_on_every_json_route_is_refused_and_stores_nothing() {
    // 13 bodies on each of two token routes: no answer may be a 429 instead of a parse.
    let (app, email) = spawn_with_admin(&[("CHATONS_TOKEN_RATE_PER_SECOND", "1000")]).await;
    let t = admin_tenant(&app, &email).await;
    let (status, _) = app.get("/v1/admin/users", &t.user.access).await;
    assert_eq!(status, 200, "the tenant is an admin");
    let mut routes: Vec<(Method, String, bool)> = documented_operations(&app)
        .await
        .into_iter()
        .filter(|op| op.json_body)
        .map(|op| (op.method, t.fill(&op.path), false))
        .collect();
    assert!(routes.len() >= 20, "{routes:?}");
    routes.extend(undocumented_json_routes(&t));
    let unchanged = Unchanged::from_now(&app).await;
    for (method, path, internal) in routes {
        let auth = format!(
            "Bearer {}",
            if internal { &app.token } else { &t.user.access }
        );
        assert_hostile_json_refused_with(
            &app.base,
            method,
            JsonRoute {
                path: &path,
                headers: &[("authorization", auth.as_str())],
            },
        )
        .await;
    }
    unchanged.check("a refused body changed the database").await;
}

#[tokio::test]
async fn internal_routes_refuse_a_missing_or_wrong_service_token() {
    let app = spawn_app().await;
    let (t, unchanged) = Tenant::with_snapshot(&app).await;
    let client = reqwest::Client::new();
    let body = json!({"accessToken": t.user.access, "userId": t.user.id,
                      "cloudInstanceId": t.instance, "content": "planted",
                      "messages": [{"id": "x", "role": "user", "timestamp": 1, "content": "planted"}]});
    let almost = format!("{}x", &app.token[..app.token.len() - 1]);
    for (method, path, _) in undocumented_json_routes(&t).into_iter().filter(|r| r.2) {
        for token in [None, Some(t.user.access.as_str()), Some(almost.as_str())] {
            let mut req = client.request(method.clone(), app.url(&path)).json(&body);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{path} with {token:?}");
            let answer: Value = resp.json().await.unwrap();
            assert!(answer["error"].is_string(), "{path}: {answer}");
        }
    }
    unchanged.check("a refused call changed something").await;
}

/// SQL fragments and exotic (NUL-free) Unicode: each kept byte for byte.
const STRANGE: &[&str] = &[
    "'; DROP TABLE cloud_users; --",
    "Robert'); DELETE FROM cloud_projects WHERE ('1'='1",
    "\" OR 1=1 -- \\ %_ $1 $$ E'\\x00' /* */ ;",
    "Ünïcødé 🐈‍⬛ 中文 עברית العربية 𝔘𝔫𝔦 ǅ ﬁ Å Å",
];

/// Whether `v` holds the string `s` exactly, anywhere.
fn holds(v: &Value, s: &str) -> bool {
    match v {
        Value::String(x) => x == s,
        Value::Array(a) => a.iter().any(|x| holds(x, s)),
        Value::Object(o) => o.values().any(|x| holds(x, s)),
        _ => false,
    }
}

#[tokio::test]
async fn sql_and_unicode_strings_are_stored_verbatim() {
    let app = spawn_app().await;
    for (n, s) in STRANGE.iter().enumerate() {
        let email = format!("strange{n}{}@example.com", cloud_testkit::random_token());
        let signup = json!({"email": email, "displayName": s, "password": "correct horse battery"});
        let (status, body) = app.post_public("/v1/web/signup", signup).await;
        assert_eq!(status, 201, "signup named {s:?}: {body}");
        let token = body["session"]["accessToken"].as_str().unwrap().to_owned();
        let (_, account) = app.get("/v1/account", &token).await;
        assert!(holds(&account, s), "display name {s:?}: {account}");

        // Creates with `body` at `path`; the id of `answer[key]` ("" where there is none).
        let create = |path: String, body: Value, key: &'static str| {
            let (app, token) = (&app, token.clone());
            async move {
                let (status, answer) = app.post(&path, &token, body).await;
                assert!(
                    status == 200 || status == 201,
                    "{path} {s:?}: {status} {answer}"
                );
                answer[key]["id"].as_str().unwrap_or_default().to_owned()
            }
        };
        let org = create(
            "/v1/organizations".into(),
            json!({ "name": s }),
            "organization",
        )
        .await;
        let body = json!({"name": s, "organizationId": org});
        let project = create("/v1/projects".into(), body, "project").await;
        let body = json!({"projectId": project, "title": s});
        let conversation = create("/v1/conversations".into(), body, "conversation").await;
        let messages = format!("/v1/conversations/{conversation}/messages");
        let body =
            json!({"messages": [{"id": "m1", "role": "user", "timestamp": 1, "content": s}]});
        create(messages, body, "message").await;
        let body = json!({"organizationId": org, "content": s, "title": s});
        let memory = create("/v1/memory".into(), body, "item").await;
        let body = json!({"organizationId": org, "kind": "openai", "label": s, "secret": s});
        create("/v1/organization/providers".into(), body, "provider").await;
        for path in [
            "/v1/organizations".to_owned(),
            format!("/v1/projects/{project}"),
            format!("/v1/conversations/{conversation}"),
            format!("/v1/conversations/{conversation}/messages"),
            format!("/v1/memory/{memory}"),
            format!("/v1/organization/providers?organizationId={org}"),
        ] {
            let (status, body) = app.get(&path, &token).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert!(holds(&body, s), "{path} does not give back {s:?}: {body}");
        }
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM cloud_users")
        .fetch_one(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(users, STRANGE.len() as i64, "cloud_users is intact");
}

/// Ids that try to leave their path segment: encoded slashes and dots, backslashes, NUL,
/// double encoding, SQL, a very long id.
fn hostile_ids() -> Vec<String> {
    vec![
        "..%2F..%2Fv1%2Faccount".into(),
        "..%2f..%2f..%2fetc%2fpasswd".into(),
        "%2e%2e%2f%2e%2e%2fadmin".into(),
        "..%5C..%5Cwindows".into(),
        "a%2Fb".into(),
        "%00".into(),
        "x%00y".into(),
        "%252e%252e%252f".into(),
        "'%20OR%20'1'%3D'1".into(),
        "%E2%80%AE%F0%9F%90%88".into(),
        "%C0%AF".into(),
        "a".repeat(5000),
    ]
}

#[tokio::test]
async fn traversal_in_path_ids_is_a_4xx_json_and_changes_nothing() {
    let app = spawn_app().await;
    let (t, unchanged) = Tenant::with_snapshot(&app).await;
    let client = reqwest::Client::new();
    let ops = documented_operations(&app).await;
    let with_ids: Vec<_> = ops.iter().filter(|op| op.path.contains('{')).collect();
    assert!(with_ids.len() >= 15, "{with_ids:?}");
    for op in with_ids {
        for id in hostile_ids() {
            let template = op.path.as_str();
            let start = template.find('{').unwrap();
            let end = template[start..].find('}').unwrap() + start;
            let path = format!("{}{id}{}", &template[..start], &template[end + 1..]);
            let mut req = client
                .request(op.method.clone(), format!("{}{path}", app.base))
                .bearer_auth(&t.user.access);
            if op.json_body {
                req = req.json(&json!({}));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(
                (400..500).contains(&status),
                "{} {path}: {status} {text}",
                op.method
            );
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{} {path}: not JSON: {text}", op.method));
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{} {path}: {body}",
                op.method
            );
        }
    }
    unchanged.check("a hostile id changed something").await;
}

// Brute force -----------------------------------------------------------------------------------
// Covered elsewhere: the JSON login per account (`bugs::bug16_login_is_rate_limited`), one
// budget across the JSON API and the portal (`findings::one_login_budget_per_account_across_endpoints`),
// the token endpoint (`oidc::the_token_endpoint_is_rate_limited_with_retry_after`).

/// `n` sign-in attempts on the portal's form with a wrong password; the statuses.
async fn portal_attempts(app: &TestApp, email: &str, n: usize) -> Vec<u16> {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = app.csrf_of(&browser, "/cloud/login").await;
    let mut statuses = Vec::new();
    for _ in 0..n {
        let resp = browser
            .post(app.url("/cloud/login"))
            .form(&[
                ("email", email),
                ("password", "not the password"),
                ("csrf_token", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn password_guessing_on_the_portal_alone_is_stopped_with_429() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let statuses = portal_attempts(&app, &u.email, 11).await;
    assert!(
        statuses[..10].iter().all(|s| *s != 429 && *s < 500),
        "{statuses:?}"
    );
    assert_eq!(statuses[10], 429, "{statuses:?}");
    // The right password is refused too while the budget is spent (the guesser cannot tell).
    let (status, body) = app.login(&u.email, &u.password).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn guessing_across_many_accounts_from_one_address_is_stopped_with_429() {
    let app = spawn_app().await;
    // A different (unknown) address each time, all at once (the limiter answers before any
    // password is hashed): only the per-address budget (30) can stop it.
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let req = client
            .post(app.url("/v1/web/login"))
            .json(&json!({"email": format!("spray{n}@example.com"), "password": "Winter2026!"}));
        tasks.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let (mut refused, mut limited) = (0, 0);
    for t in tasks {
        let resp = t.await.unwrap();
        match resp.status().as_u16() {
            401 => refused += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        refused > 10,
        "per address, not per account: {refused} judged"
    );
    assert!(refused <= 32, "{refused} guesses got through");
    assert!(limited >= 8, "{limited} refused with 429");
}

#[tokio::test]
async fn code_guessing_on_the_legacy_exchange_is_rate_limited() {
    let app = spawn_app_with(&[("CHATONS_TOKEN_RATE_PER_SECOND", "1")]).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..6 {
        let resp = client
            .post(app.url("/v1/auth/desktop/exchange"))
            .json(&json!({"code": format!("guess{n}"), "clientId": "chatons-desktop",
                          "redirectUri": "chatons://cloud/auth/callback", "codeVerifier": "v".repeat(43)}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses[..5], [400; 5], "judged on their merits first");
    assert_eq!(statuses[5], 429, "{statuses:?}");
}
