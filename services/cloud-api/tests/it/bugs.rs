//! One test per bug of the first system (reference §11) on these routes, showing it fixed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    TEST_SECRETS_KEY, assert_status, spawn_app, spawn_app_with, spawn_with_admin, strings,
};

/// §11.34/35/36: an invited user sees every organization they belong to, accepting answers 200,
/// and the invited organization works as the active one.
#[tokio::test]
async fn bug34_org_listing_of_a_multi_org_user() {
    let app = spawn_app().await;
    let [a, b] = app.signups().await;
    let (_, body) = app
        .post("/v1/organizations", &a.access, json!({"name": "Shared"}))
        .await;
    let org = body["organization"]["id"].as_str().unwrap().to_owned();
    app.add_member(&a, &org, &b, None).await;
    for path in ["/v1/organizations", "/v1/account", "/v1/bootstrap"] {
        let (status, body) = app.get(path, &b.access).await;
        assert_eq!(status, 200, "{path}");
        let ids = strings(&body["organizations"], "id");
        assert_eq!(ids.len(), 2, "{path}: {body}");
        assert!(ids.contains(&org.as_str()));
        assert_eq!(
            body["activeOrganizationId"],
            org.as_str(),
            "accepting switched the active org"
        );
    }
    // Without organizationId, project creation goes to the (invited) active organization.
    let (status, body) = app
        .post("/v1/projects", &b.access, json!({"name": "In shared"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["project"]["organizationId"], org.as_str());
    let (_, body) = app.get("/v1/projects", &a.access).await;
    assert!(
        body.to_string().contains("In shared"),
        "the owner sees the member's project"
    );
}

/// §11.37/38: the runtime grant's user has `subscription`, and it honours complimentary grants.
#[tokio::test]
async fn bug37_runtime_grant_with_subscription() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let admin = app.signup_as(&admin_email).await.access;
    let u = app.signup().await;
    let req = json!({"accessToken": u.access, "cloudInstanceId": format!("instance-{}", u.id)});
    let (status, g) = app
        .internal("/v1/internal/runtime/access", req.clone())
        .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["user"]["subscription"]["id"], "plus");
    assert!(g["user"]["subscription"]["parallelSessionsLimit"].is_number());
    assert_eq!(
        g["user"]["subscriptionPlan"], "plus",
        "raw fields stay (superset)"
    );
    let (status, _) = app
        .post(
            &format!("/v1/admin/users/{}/grant-subscription", u.id),
            &admin,
            json!({"planId": "max"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, g) = app.internal("/v1/internal/runtime/access", req).await;
    assert_eq!(
        g["subscription"]["id"], "max",
        "complimentary grants count in the grant"
    );
    assert_eq!(g["user"]["subscription"]["id"], "max");
    assert_eq!(g["usage"]["parallelSessionsLimit"], 30);
    assert_eq!(g["user"]["complimentaryGrant"]["planId"], "max");
}

/// §11.1/2: no self-upgrade through `PATCH /v1/organization`.
#[tokio::test]
async fn bug1_no_self_upgrade() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let (status, body) = app
        .patch(
            "/v1/organization",
            &u.access,
            json!({"name": "Mine", "slug": "mine-x", "plan": "max"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, body) = app.get("/v1/account", &u.access).await;
    assert_eq!(body["user"]["subscription"]["id"], "plus");
    assert_ne!(
        body["organizations"][0]["name"], "Mine",
        "the refused request changed nothing"
    );
    let (status, _) = app
        .patch(
            "/v1/admin/users/{}",
            &u.access,
            json!({"subscriptionPlan": "max"}),
        )
        .await;
    assert_eq!(status, 403);
}

/// §11.41/42: query strings never break routing.
#[tokio::test]
async fn bug42_query_strings_do_not_break_routing() {
    let app = spawn_app().await;
    let u = app.signup().await;
    for path in [
        "/v1/bootstrap?x=1",
        "/v1/account?utm=a&b",
        "/v1/memory?scope=all&limit=5",
        "/v1/memory/stats?x=y",
        "/v1/projects?foo=bar",
        "/v1/organizations?z",
    ] {
        let (status, body) = app.get(path, &u.access).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _) = app
        .post(
            "/v1/projects?source=desktop",
            &u.access,
            json!({"name": "Q"}),
        )
        .await;
    assert_eq!(status, 201);
    let login = json!({"email": u.email, "password": u.password});
    let (status, body) = app.post_public("/v1/web/login?return_to=/x", login).await;
    assert_eq!(status, 200, "{body}");
}

/// §11.15/51: CORS is an allow-list (never reflected) and preflight allows PATCH.
#[tokio::test]
async fn bug51_patch_in_cors_and_no_reflection() {
    let app = spawn_app_with(&[("CHATONS_CLOUD_WEB_URL", "https://cloud.chatons.ai/portal")]).await;
    let client = reqwest::Client::new();
    let resp = client
        .request(reqwest::Method::OPTIONS, app.url("/v1/organization"))
        .header("origin", "https://cloud.chatons.ai")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://cloud.chatons.ai");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_uppercase();
    assert!(methods.contains("PATCH"), "{methods}");
    let resp = client
        .request(reqwest::Method::OPTIONS, app.url("/v1/organization"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "PATCH")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "a foreign origin is not reflected"
    );
}

/// §11.44/46/63: malformed or `null` JSON is a 400, duplicate signup a 409, a bad limit a 400.
#[tokio::test]
async fn bug44_malformed_json_is_400() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let client = reqwest::Client::new();
    for (path, auth) in [
        ("/v1/web/signup", false),
        ("/v1/web/login", false),
        ("/v1/projects", true),
        ("/v1/memory", true),
        ("/v1/organization/providers", true),
    ] {
        for raw in ["{\"name\":", "null", "[1]", "{\"name\": 5}"] {
            let mut req = client
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(raw);
            if auth {
                req = req.bearer_auth(&u.access);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            if path == "/v1/memory" && raw == "{\"name\": 5}" {
                // Unknown fields are ignored; the missing content is the 400.
                assert_eq!(status, 400);
                continue;
            }
            assert_eq!(status, 400, "{path} {raw}: {body}");
            assert_eq!(body["error"], "invalid_request");
        }
    }
    let resp = client
        .post(app.url("/v1/web/signup"))
        .json(&json!({"email": u.email, "displayName": "Again", "password": "some password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "duplicate signup (§11.46)");
    let (status, _) = app
        .get("/v1/memory/search?query=a&limit=ten", &u.access)
        .await;
    assert_eq!(status, 400, "§11.63");
}

/// §11.22: a client-chosen memory id never overwrites someone else's memory.
#[tokio::test]
async fn bug22_memory_ids_cannot_be_hijacked() {
    let app = spawn_app().await;
    let [a, b] = app.signups().await;
    let (_, body) = app
        .post(
            "/v1/memory",
            &a.access,
            json!({"id": "memory-fixed", "content": "A's"}),
        )
        .await;
    assert_eq!(body["item"]["id"], "memory-fixed");
    let (status, _) = app
        .post(
            "/v1/memory",
            &b.access,
            json!({"id": "memory-fixed", "content": "B's"}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, body) = app.get("/v1/memory/memory-fixed", &a.access).await;
    assert_eq!(body["item"]["content"], "A's");
}

/// §11.26/27/6/49: nobody is admin by default, ids are random, hints reveal nothing, renaming an
/// organization leaves project names alone.
#[tokio::test]
async fn bug26_first_user_is_not_admin_and_more() {
    let app = spawn_app().await;
    let first = app.signup().await;
    assert_eq!(first.body["user"]["isAdmin"], false);
    assert_status(app.get("/v1/admin/users", &first.access).await, 403);
    let (_, body) = app
        .post(
            "/v1/organization/providers",
            &first.access,
            json!({"kind": "anthropic", "label": "A", "secret": "sk-ant-abcdef"}),
        )
        .await;
    assert_eq!(body["provider"]["secretHint"], "set");
    assert_eq!(body["provider"]["baseUrl"], "https://api.anthropic.com/v1");
    let (_, body) = app
        .post("/v1/projects", &first.access, json!({"name": "Keep me"}))
        .await;
    let pid = body["project"]["id"].as_str().unwrap().to_owned();
    app.patch(
        "/v1/organization",
        &first.access,
        json!({"name": "Renamed org"}),
    )
    .await;
    let (_, body) = app.get(&format!("/v1/projects/{pid}"), &first.access).await;
    assert_eq!(body["project"]["name"], "Keep me");
    assert_eq!(body["project"]["organizationName"], "Renamed org");
}

/// §11.16/17: login and signup are rate limited per account with 429 + Retry-After.
#[tokio::test]
async fn bug16_login_is_rate_limited() {
    let app = spawn_app().await;
    let u = app.signup().await;
    // Fired at once: the limiter answers before any password is hashed.
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..15 {
        let req = client
            .post(app.url("/v1/web/login"))
            .json(&json!({"email": u.email, "password": "wrong password"}));
        tasks.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut limited = None;
    let mut refused = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        match resp.status().as_u16() {
            429 => limited = Some(resp),
            401 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused <= 10, "{refused} attempts got through");
    let resp = limited.expect("the per-account limit kicks in");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
}

/// The store is chosen by DATABASE_URL: without it everything works in memory too.
#[tokio::test]
async fn in_memory_mode_serves_the_same_api() {
    let app = crate::helpers::spawn_with_env(vec![(
        "CHATONS_SECRETS_ENCRYPTION_KEY".into(),
        TEST_SECRETS_KEY.into(),
    )])
    .await;
    let u = app.signup().await;
    let (status, body) = app
        .post("/v1/projects", &u.access, json!({"name": "M"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.get("/v1/bootstrap", &u.access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["projects"].as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Text Postgres cannot store (NUL characters) is the client's fault: 400, never 500.
#[tokio::test]
async fn nul_characters_are_a_400() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let client = reqwest::Client::new();
    let resp = client
        .post(app.url("/v1/web/signup"))
        .header("content-type", "application/json")
        .body(r#"{"email":"nul@example.com","displayName":"A\u0000B","password":"password123"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    for (path, body) in [
        ("/v1/projects", r#"{"name":"x\u0000y"}"#),
        ("/v1/memory", r#"{"content":"x","tags":["a\u0000"]}"#),
    ] {
        let resp = client
            .post(app.url(path))
            .bearer_auth(&u.access)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
    }
    for path in [
        "/v1/projects/a%00b",
        "/v1/memory/search?query=a%00b",
        "/v1/conversations/x%00/messages",
    ] {
        let (status, body) = app.get(path, &u.access).await;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
    }
}

/// Cursors are opaque but client-supplied: any decodable value is harmless (no 5xx).
#[tokio::test]
async fn crafted_cursors_are_harmless() {
    use base64::Engine;
    let app = spawn_app().await;
    let u = app.signup().await;
    for raw in [
        r#"["-5","x"]"#,
        r#"["99999999999999999999","x"]"#,
        r#"["","x"]"#,
        r#"["-9223372036854775808",""]"#,
    ] {
        let c = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        for path in [
            "/v1/memory",
            "/v1/projects",
            "/v1/organization/providers",
            "/v1/cloud-instances",
            "/v1/organizations",
            "/v1/organization/members",
        ] {
            let (status, body) = app.get(&format!("{path}?cursor={c}"), &u.access).await;
            assert!(
                status == 200 || status == 400,
                "{path} {raw}: {status} {body}"
            );
        }
    }
}
