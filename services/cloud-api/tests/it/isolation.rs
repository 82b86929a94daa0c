//! Tenant isolation: for every route that takes an id, another user's request for it gets 404
//! (403 on admin routes, 409 for a desktop instance id another user registered, as the contract
//! says) and changes nothing in the database.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

async fn snapshot(pool: &sqlx::PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "cloud_users",
        "cloud_sessions",
        "cloud_organizations",
        "cloud_organization_memberships",
        "cloud_organization_invites",
        "cloud_organization_providers",
        "cloud_projects",
        "cloud_conversations",
        "cloud_conversation_messages",
        "cloud_memories",
        "cloud_instances",
        "cloud_subscription_plans",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "select row_to_json(t)::text from {table} t order by 1"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        out.push(format!("{table}: {}", rows.join("\n")));
    }
    out
}

#[tokio::test]
async fn another_tenant_can_neither_read_nor_write_by_id() {
    let app = spawn_app().await;
    let a = app.signup().await;
    let b = app.signup().await;

    // A's resources.
    let (_, acct) = app.get("/v1/account", &a.access).await;
    let org = acct["activeOrganizationId"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post("/v1/projects", &a.access, json!({"name": "Secret project"}))
        .await;
    let pid = body["project"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post("/v1/conversations", &a.access, json!({"projectId": pid}))
        .await;
    let cid = body["conversation"]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/conversations/{cid}/messages"),
        &a.access,
        json!({"messages": [{"id": "m1", "role": "user", "timestamp": 1, "content": "private"}]}),
    )
    .await;
    let (_, body) = app
        .post(
            "/v1/organization/providers",
            &a.access,
            json!({"kind": "openai", "label": "K", "secret": "sk-a"}),
        )
        .await;
    let prov = body["provider"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post(
            "/v1/memory",
            &a.access,
            json!({"content": "A's private note"}),
        )
        .await;
    let gmem = body["item"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post(
            "/v1/memory",
            &a.access,
            json!({"scope": "project", "projectId": pid, "content": "A's project note"}),
        )
        .await;
    let pmem = body["item"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post(
            "/v1/organization/invites",
            &a.access,
            json!({"organizationId": org, "email": "friend@example.com"}),
        )
        .await;
    let invite = body["invite"]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post("/v1/cloud-instances", &a.access, json!({"id": "desk-of-a"}))
        .await;
    assert_eq!(status, 201);

    let pool = app.db.as_ref().unwrap().pool.clone();
    let before = snapshot(&pool).await;

    let t = &b.access;
    let m = |p: &str| p.to_owned();
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", m(&format!("/v1/projects/{pid}")), None, 404),
        (
            "PATCH",
            m(&format!("/v1/projects/{pid}")),
            Some(json!({"name": "pwned"})),
            404,
        ),
        ("DELETE", m(&format!("/v1/projects/{pid}")), None, 404),
        (
            "GET",
            m(&format!("/v1/projects?organizationId={org}")),
            None,
            404,
        ),
        (
            "POST",
            m("/v1/projects"),
            Some(json!({"name": "x", "organizationId": org})),
            404,
        ),
        (
            "POST",
            m("/v1/conversations"),
            Some(json!({"projectId": pid})),
            404,
        ),
        (
            "GET",
            m(&format!("/v1/conversations?projectId={pid}")),
            None,
            404,
        ),
        ("GET", m(&format!("/v1/conversations/{cid}")), None, 404),
        (
            "PATCH",
            m(&format!("/v1/conversations/{cid}")),
            Some(json!({"title": "pwned"})),
            404,
        ),
        ("DELETE", m(&format!("/v1/conversations/{cid}")), None, 404),
        (
            "GET",
            m(&format!("/v1/conversations/{cid}/messages")),
            None,
            404,
        ),
        (
            "POST",
            m(&format!("/v1/conversations/{cid}/messages")),
            Some(json!({"messages": [{"id": "x", "role": "user", "content": "injected"}]})),
            404,
        ),
        (
            "GET",
            m(&format!("/v1/organization/providers?organizationId={org}")),
            None,
            404,
        ),
        (
            "POST",
            m("/v1/organization/providers"),
            Some(json!({"organizationId": org, "kind": "openai", "label": "x", "secret": "s"})),
            404,
        ),
        (
            "PATCH",
            m(&format!("/v1/organization/providers/{prov}")),
            Some(json!({"secret": "mine now"})),
            404,
        ),
        (
            "DELETE",
            m(&format!("/v1/organization/providers/{prov}")),
            None,
            404,
        ),
        (
            "PATCH",
            m("/v1/organization"),
            Some(json!({"organizationId": org, "name": "pwned"})),
            404,
        ),
        (
            "POST",
            m("/v1/organization/active"),
            Some(json!({"organizationId": org})),
            404,
        ),
        (
            "GET",
            m(&format!("/v1/organization/members?organizationId={org}")),
            None,
            404,
        ),
        (
            "PATCH",
            m(&format!("/v1/organization/members/{}", b.id)),
            Some(json!({"organizationId": org, "role": "owner"})),
            404,
        ),
        (
            "DELETE",
            m(&format!(
                "/v1/organization/members/{}?organizationId={org}",
                a.id
            )),
            None,
            404,
        ),
        (
            "POST",
            m("/v1/organization/invites"),
            Some(json!({"organizationId": org, "email": b.email})),
            404,
        ),
        (
            "GET",
            m(&format!("/v1/organization/invites?organizationId={org}")),
            None,
            404,
        ),
        (
            "DELETE",
            m(&format!(
                "/v1/organization/invites/{invite}?organizationId={org}"
            )),
            None,
            404,
        ),
        ("GET", m(&format!("/v1/memory/{gmem}")), None, 404),
        (
            "PATCH",
            m(&format!("/v1/memory/{gmem}")),
            Some(json!({"content": "pwned"})),
            404,
        ),
        ("DELETE", m(&format!("/v1/memory/{gmem}")), None, 404),
        ("GET", m(&format!("/v1/memory/{pmem}")), None, 404),
        ("DELETE", m(&format!("/v1/memory/{pmem}")), None, 404),
        (
            "POST",
            m("/v1/memory"),
            Some(json!({"id": gmem, "content": "overwrite by id"})),
            404,
        ),
        (
            "POST",
            m("/v1/memory"),
            Some(json!({"scope": "project", "projectId": pid, "content": "x"})),
            404,
        ),
        (
            "POST",
            m("/v1/memory"),
            Some(json!({"organizationId": org, "content": "x"})),
            404,
        ),
        (
            "GET",
            m(&format!("/v1/memory?organizationId={org}")),
            None,
            404,
        ),
        (
            "GET",
            m(&format!(
                "/v1/memory/search?query=note&organizationId={org}"
            )),
            None,
            404,
        ),
        (
            "GET",
            m(&format!("/v1/memory/stats?organizationId={org}")),
            None,
            404,
        ),
        (
            "POST",
            m("/v1/cloud-instances"),
            Some(json!({"id": "desk-of-a"})),
            409,
        ),
        (
            "POST",
            m("/v1/cloud-instances"),
            Some(json!({"id": format!("instance-{}", a.id)})),
            409,
        ),
        ("GET", m("/v1/admin/users"), None, 403),
        (
            "PATCH",
            m(&format!("/v1/admin/users/{}", b.id)),
            Some(json!({"isAdmin": true})),
            403,
        ),
        (
            "POST",
            m(&format!("/v1/admin/users/{}/grant-subscription", b.id)),
            Some(json!({"planId": "max"})),
            403,
        ),
        (
            "PATCH",
            m("/v1/admin/plans/plus"),
            Some(json!({"parallelSessionsLimit": 1000})),
            403,
        ),
    ];
    for (method, path, body, expected) in &cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (status, answer) = app.call(method.clone(), path, t, body.clone()).await;
        assert_eq!(status, *expected, "{method} {path}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains("Secret project")
                && !text.contains("private note")
                && !text.contains("sk-a"),
            "{method} {path} leaked: {text}"
        );
    }
    // B's lists never show A's things.
    for path in [
        "/v1/projects",
        "/v1/conversations",
        "/v1/memory",
        "/v1/organizations",
        "/v1/bootstrap",
        "/v1/cloud-instances",
        "/v1/memory/search?query=note",
    ] {
        let (status, answer) = app.get(path, t).await;
        assert_eq!(status, 200, "{path}");
        let text = answer.to_string();
        assert!(
            !text.contains(&pid)
                && !text.contains(&cid)
                && !text.contains(&org)
                && !text.contains("desk-of-a")
                && !text.contains(&gmem),
            "{path} shows A's data: {text}"
        );
    }
    // The internal grants refuse B's token for A's things.
    let (status, _) = app
        .internal(
            "/v1/internal/runtime/access",
            json!({"accessToken": b.access, "cloudInstanceId": "desk-of-a"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.internal("/v1/internal/runtime/access", json!({"accessToken": b.access, "cloudInstanceId": format!("instance-{}", b.id), "projectId": pid})).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .internal(
            "/v1/internal/realtime/access",
            json!({"accessToken": b.access, "cloudInstanceId": format!("instance-{}", a.id)}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.internal(&format!("/v1/internal/conversations/{cid}/messages"), json!({"userId": b.id, "messages": [{"id": "y", "role": "user", "timestamp": 1, "content": "x"}]})).await;
    assert_eq!(status, 404);

    assert_eq!(
        snapshot(&pool).await,
        before,
        "refused requests changed the database"
    );
}

/// runtime-headless serves the desktop's tokenless snapshot only after this check: the
/// session's user must still hold the instance and see the conversation, and the project must
/// be the conversation's. Anyone else, or the same user after the conversation is deleted, is
/// denied with the one 404.
#[tokio::test]
async fn runtime_session_access_follows_the_users_current_access() {
    let app = spawn_app().await;
    let owner = app.signup().await;
    let stranger = app.signup().await;
    let project = app
        .create(
            "/v1/projects",
            &owner.access,
            "project",
            json!({"name": "Snapshots"}),
        )
        .await;
    let conversation = app
        .create(
            "/v1/conversations",
            &owner.access,
            "conversation",
            json!({"projectId": project}),
        )
        .await;
    let instance = format!("instance-{}", owner.id);
    let ask = |user: &str, instance: &str, project: Option<&str>| {
        json!({"userId": user, "cloudInstanceId": instance,
               "conversationId": conversation, "projectId": project})
    };
    let path = "/v1/internal/runtime/session-access";

    let (status, body) = app
        .internal(path, ask(&owner.id, &instance, Some(&project)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"userId": owner.id, "conversationId": conversation})
    );
    let (status, _) = app.internal(path, ask(&owner.id, &instance, None)).await;
    assert_eq!(status, 200, "the project is optional");

    for (why, req) in [
        (
            "another user",
            ask(&stranger.id, &format!("instance-{}", stranger.id), None),
        ),
        (
            "an instance the user does not hold",
            ask(&owner.id, "desktop-not-held", None),
        ),
        (
            "another project",
            ask(&owner.id, &instance, Some("project-elsewhere")),
        ),
        (
            "an unknown user",
            ask("user-unknown", "instance-user-unknown", None),
        ),
    ] {
        let (status, body) = app.internal(path, req).await;
        assert_eq!(status, 404, "{why}: {body}");
    }
    let (status, body) = app.internal(path, json!({"userId": owner.id})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = app
        .post(path, &owner.access, ask(&owner.id, &instance, None))
        .await;
    assert_eq!(status, 401, "a user's token is not the service token");

    let (status, _) = app
        .delete(&format!("/v1/conversations/{conversation}"), &owner.access)
        .await;
    assert!(status < 300, "delete: {status}");
    let (status, _) = app.internal(path, ask(&owner.id, &instance, None)).await;
    assert_eq!(status, 404, "a deleted conversation");
}
