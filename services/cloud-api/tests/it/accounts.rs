//! Accounts, bearer auth, cloud instances and the realtime grant.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn signup_login_and_bearer_auth() {
    let app = spawn_app().await;
    let u = app.signup().await;
    assert!(u.id.starts_with("user-"), "{}", u.id);
    assert!(
        !u.id.contains("example"),
        "ids are not derived from the email"
    );
    assert!(u.access.starts_with("access-") && u.refresh.starts_with("refresh-"));
    assert_eq!(
        u.body["user"]["isAdmin"], false,
        "nobody is admin by default"
    );
    assert_eq!(u.body["user"]["subscription"]["id"], "plus");

    // Tokens are stored only as hashes.
    let db = app.db.as_ref().unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from cloud_sessions where access_token_hash = $1 or refresh_token_hash = $2")
        .bind(&u.access)
        .bind(&u.refresh)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "raw tokens must not be stored");

    let (status, body) = app.get("/v1/account", &u.access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], u.id.as_str());
    let orgs = body["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["role"], "owner", "the personal org is owned");

    let (status, body) = app.get("/v1/account", "access-nope").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");

    let client = reqwest::Client::new();
    let resp = client
        .post(app.url("/v1/web/login"))
        .json(&json!({"email": u.email.to_uppercase(), "password": u.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(app.url("/v1/web/login"))
        .json(&json!({"email": u.email, "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_credentials");
    let resp = client
        .post(app.url("/v1/web/login"))
        .json(&json!({"email": "nobody@example.com", "password": "whatever1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "unknown email answers like a wrong password"
    );

    // Logout revokes the token.
    let (status, _) = app.post("/v1/web/logout", &u.access, json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/v1/account", &u.access).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn duplicate_signup_is_409_and_bad_input_400() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let client = reqwest::Client::new();
    let resp = client
        .post(app.url("/v1/web/signup"))
        .json(&json!({"email": u.email.to_uppercase(), "displayName": "X", "password": "another password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    for body in [
        json!({"email": "x@example.com", "displayName": "X"}),
        json!({"email": "not-an-email", "displayName": "X", "password": "long enough"}),
        json!({"email": "y@example.com", "displayName": "X", "password": "short"}),
    ] {
        let resp = client
            .post(app.url("/v1/web/signup"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    let users: i64 = sqlx::query_scalar("select count(*) from cloud_users")
        .fetch_one(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(users, 1, "refused signups create nothing");
}

#[tokio::test]
async fn cloud_instances_register_once_per_user() {
    let app = spawn_app().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let (status, body) = app
        .post(
            "/v1/cloud-instances",
            &a.access,
            json!({"id": "desktop-1234", "name": "Laptop"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["cloudInstance"]["id"], "desktop-1234");
    assert!(body["cloudInstance"]["endpoints"]["realtimeBaseUrl"].is_string());
    let (status, _) = app
        .post(
            "/v1/cloud-instances",
            &a.access,
            json!({"id": "desktop-1234"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post(
            "/v1/cloud-instances",
            &b.access,
            json!({"id": "desktop-1234"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app.post("/v1/cloud-instances", &b.access, json!({})).await;
    assert_eq!(status, 400);

    let (status, body) = app.get("/v1/bootstrap", &a.access).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["cloudInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![format!("instance-{}", a.id).as_str(), "desktop-1234"]
    );
}

#[tokio::test]
async fn realtime_access_binds_user_and_instance() {
    let app = spawn_app().await;
    let a = app.signup().await;
    let b = app.signup().await;
    app.post("/v1/cloud-instances", &a.access, json!({"id": "desk-a"}))
        .await;

    let (status, body) = app
        .internal(
            "/v1/internal/realtime/access",
            json!({"accessToken": a.access, "cloudInstanceId": "desk-a"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userId"], a.id.as_str());
    assert_eq!(body["cloudInstanceId"], "desk-a");
    let org = body["organizationId"].as_str().unwrap();
    assert!(org.starts_with("org-"));
    assert_eq!(body["organizationIds"], json!([org]));

    let canonical = format!("instance-{}", a.id);
    let (status, _) = app
        .internal(
            "/v1/internal/realtime/access",
            json!({"accessToken": a.access, "cloudInstanceId": canonical}),
        )
        .await;
    assert_eq!(status, 200, "the canonical instance stays valid");

    let (status, body) = app
        .internal(
            "/v1/internal/realtime/access",
            json!({"accessToken": b.access, "cloudInstanceId": "desk-a"}),
        )
        .await;
    assert_eq!(status, 404, "another user's instance: {body}");
    assert_eq!(body["message"], "Cloud access grant not found");
    let (status, _) = app
        .internal(
            "/v1/internal/realtime/access",
            json!({"accessToken": "access-x", "cloudInstanceId": "desk-a"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .internal(
            "/v1/internal/realtime/access",
            json!({"accessToken": a.access}),
        )
        .await;
    assert_eq!(status, 400);
    // A user token is not the service token.
    let (status, _) = app
        .post(
            "/v1/internal/realtime/access",
            &a.access,
            json!({"accessToken": a.access, "cloudInstanceId": "desk-a"}),
        )
        .await;
    assert_eq!(status, 401);

    // The typed client agrees with the wire.
    let client = cloud_common::internal::CloudApiClient::new(
        url::Url::parse(&app.base).unwrap(),
        cloud_common::Secret::new(app.token.clone()),
    );
    let got = client
        .realtime_access(&cloud_common::internal::RealtimeAccessRequest {
            access_token: a.access.clone(),
            cloud_instance_id: "desk-a".into(),
        })
        .await
        .unwrap()
        .expect("granted");
    assert_eq!(got.user_id, a.id);
    let denied = client
        .realtime_access(&cloud_common::internal::RealtimeAccessRequest {
            access_token: b.access.clone(),
            cloud_instance_id: "desk-a".into(),
        })
        .await
        .unwrap();
    assert!(denied.is_none());
}
