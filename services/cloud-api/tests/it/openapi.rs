//! `/openapi.json` documents every public control-plane route and no internal one.

use crate::helpers::spawn_app;

#[tokio::test]
async fn openapi_covers_every_public_route() {
    let app = spawn_app().await;
    let doc: serde_json::Value = reqwest::get(app.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("/v1/web/signup", &["post"]),
        ("/v1/web/login", &["post"]),
        ("/v1/web/logout", &["post"]),
        ("/v1/account", &["get"]),
        ("/v1/bootstrap", &["get"]),
        ("/v1/cloud-instances", &["get", "post"]),
        ("/v1/organizations", &["get", "post"]),
        ("/v1/organization", &["patch"]),
        ("/v1/organization/active", &["post"]),
        ("/v1/organization/members", &["get"]),
        ("/v1/organization/members/{userId}", &["patch", "delete"]),
        ("/v1/organization/invites", &["get", "post"]),
        ("/v1/organization/invites/accept", &["post"]),
        ("/v1/organization/invites/{inviteId}", &["delete"]),
        ("/v1/organization/providers", &["get", "post"]),
        ("/v1/organization/providers/{id}", &["patch", "delete"]),
        ("/v1/projects", &["get", "post"]),
        ("/v1/projects/{id}", &["get", "patch", "delete"]),
        ("/v1/conversations", &["get", "post"]),
        ("/v1/conversations/{id}", &["get", "patch", "delete"]),
        ("/v1/conversations/{id}/messages", &["get", "post"]),
        ("/v1/memory", &["get", "post"]),
        ("/v1/memory/search", &["get"]),
        ("/v1/memory/stats", &["get"]),
        ("/v1/memory/{id}", &["get", "patch", "delete"]),
        ("/v1/admin/users", &["get"]),
        ("/v1/admin/plans/{planId}", &["patch"]),
        ("/v1/admin/users/{userId}", &["patch"]),
        (
            "/v1/admin/users/{userId}/grant-subscription",
            &["post", "delete"],
        ),
    ];
    for (path, methods) in expected {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{m} {path} is not documented");
        }
    }
    assert!(
        paths.keys().all(|p| !p.contains("/internal/")),
        "internal endpoints are not public"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every documented route answers (no documented path is unrouted).
    for (path, methods) in expected {
        if methods.contains(&"get") && !path.contains('{') {
            let resp = reqwest::get(app.url(path)).await.unwrap();
            assert_ne!(resp.status(), 404, "GET {path} is not routed");
        }
    }
}
