//! `/openapi.json` documents every public control-plane route and no internal one.

use crate::helpers::{TestApp, spawn_app};

/// The document (a public route: the empty bearer is ignored).
async fn document(app: &TestApp) -> serde_json::Value {
    let (status, doc) = app.get("/openapi.json", "").await;
    assert_eq!(status, 200);
    doc
}

#[tokio::test]
async fn openapi_covers_every_public_route() {
    let app = spawn_app().await;
    let doc = document(&app).await;
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
        ("/v1/admin/users/{userId}", &["get", "patch"]),
        (
            "/v1/admin/users/{userId}/grant-subscription",
            &["post", "delete"],
        ),
        ("/v1/admin/users/{userId}/verify-email", &["post"]),
        ("/v1/admin/users/{userId}/disable", &["post"]),
        ("/v1/admin/users/{userId}/enable", &["post"]),
        ("/v1/admin/organizations", &["get"]),
        ("/v1/admin/audit-log", &["get"]),
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

/// Operation ids are unique, and every link names an existing operation (OpenAPI 3.1 `links`
/// from creating responses to the operations that take the new id).
#[tokio::test]
async fn openapi_links_lead_from_created_resources_to_their_operations() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut ids = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
    }
    let mut links = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            for r in responses.values() {
                for (name, l) in r["links"].as_object().into_iter().flatten() {
                    let target = l["operationId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}"));
                    assert!(ids.contains(target), "link {name} → unknown {target}");
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 20, "{links} links");
    let created = &doc["paths"]["/v1/projects"]["post"]["responses"]["201"]["links"];
    assert_eq!(created["GetProject"]["operationId"], "projects_get");
    assert_eq!(
        created["GetProject"]["parameters"]["path.id"],
        "$response.body#/project/id"
    );
    assert_eq!(
        created["CreateConversation"]["requestBody"]["projectId"],
        "$response.body#/project/id"
    );
    let conv = &doc["paths"]["/v1/conversations"]["post"]["responses"]["201"]["links"];
    for name in ["GetConversation", "AppendMessages", "GetMessages"] {
        assert_eq!(
            conv[name]["parameters"]["path.id"],
            "$response.body#/conversation/id"
        );
    }
    // Constraints as the handlers enforce them.
    let s = &doc["components"]["schemas"];
    assert_eq!(
        s["UpdateMemberBody"]["properties"]["role"]["enum"],
        serde_json::json!(["owner", "admin", "member", "billing_viewer"])
    );
    assert_eq!(s["GrantBody"]["required"], serde_json::json!(["planId"]));
    assert_eq!(
        s["LoginBody"]["properties"]["email"]["type"], "string",
        "not nullable"
    );
    // The root description is documented too.
    assert!(doc["paths"]["/"]["get"].is_object());
}
