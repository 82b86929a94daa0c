//! Tenant isolation: for every route that takes an id, another user's request for it gets 404
//! (403 on admin routes, 409 for a desktop instance id another user registered, as the contract
//! says) and changes nothing in the database. The table must cover every documented route with
//! an id (checked against `/openapi.json`), and the portal's pages with ids answer the same.

use serde_json::{Value, json};

use crate::helpers::{assert_error, assert_status, spawn_app};
use crate::tenant::{Tenant, Unchanged, documented_operations};

#[tokio::test]
async fn another_tenant_can_neither_read_nor_write_by_id() {
    let app = spawn_app().await;
    let [a, b] = app.signups().await;

    // A's resources.
    let owner = Tenant::create(&app, a).await;
    let a = &owner.user;
    let Tenant {
        org,
        project: pid,
        conversation: cid,
        provider: prov,
        memory: gmem,
        project_memory: pmem,
        invite,
        instance,
        ..
    } = &owner;

    // A's session (a family id, as A's sessions list names it).
    let (_, listed) = app.get("/v1/account/sessions", &a.access).await;
    let a_session = listed["sessions"][0]["id"].as_str().unwrap().to_owned();

    // B's portal session, opened before the snapshot.
    let web = app.portal_browser(&b).await;
    let unchanged = Unchanged::from_now(&app).await;

    let t = &b.access;
    let m = |p: &str| p.to_owned();
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        (
            "DELETE",
            m(&format!("/v1/account/sessions/{a_session}")),
            None,
            404,
        ),
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
        (
            "PATCH",
            m(&format!("/v1/memory/{pmem}")),
            Some(json!({"content": "pwned"})),
            404,
        ),
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
            Some(json!({ "id": instance })),
            409,
        ),
        (
            "POST",
            m("/v1/cloud-instances"),
            Some(json!({"id": format!("instance-{}", a.id)})),
            409,
        ),
        (
            "DELETE",
            m(&format!("/v1/cloud-instances/{instance}")),
            None,
            404,
        ),
        ("GET", m("/v1/admin/users"), None, 403),
        (
            "PATCH",
            m(&format!("/v1/admin/users/{}", a.id)),
            Some(json!({"isAdmin": false})),
            403,
        ),
        (
            "DELETE",
            m(&format!("/v1/admin/users/{}/grant-subscription", a.id)),
            None,
            403,
        ),
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
        // The admin area's routes: B is no admin, so nothing about A (nor B) is read or changed.
        ("GET", m(&format!("/v1/admin/users/{}", a.id)), None, 403),
        (
            "POST",
            m(&format!("/v1/admin/users/{}/verify-email", a.id)),
            None,
            403,
        ),
        (
            "POST",
            m(&format!("/v1/admin/users/{}/disable", a.id)),
            None,
            403,
        ),
        (
            "POST",
            m(&format!("/v1/admin/users/{}/enable", b.id)),
            None,
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
    // The table covers every documented route with an id in its path: a new one fails here
    // until its cross-tenant case is added.
    for op in documented_operations(&app).await {
        assert!(
            !op.path.contains('{') || cases.iter().any(|(m, p, _, _)| op.matches(m, p)),
            "{} {} has no cross-tenant case",
            op.method,
            op.path
        );
    }
    // The portal's pages with an id: B's signed-in browser gets 404 for A's provider.
    let csrf = app.csrf_of(&web, "/cloud/providers").await;
    for (method, path, form) in [
        ("GET", format!("/cloud/providers/{prov}"), vec![]),
        (
            "POST",
            format!("/cloud/providers/{prov}"),
            vec![("label", "pwned"), ("secret", "mine now")],
        ),
        ("POST", format!("/cloud/providers/{prov}/delete"), vec![]),
    ] {
        let mut form = form;
        form.push(("csrf_token", csrf.as_str()));
        let req = match method {
            "GET" => web.get(app.url(&path)),
            _ => web.post(app.url(&path)).form(&form),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert!(!resp.text().await.unwrap().contains("sk-a"), "{path}");
    }
    for path in [
        format!("/cloud/providers?org={org}"),
        format!("/cloud/organizations?org={org}"),
    ] {
        let html = web.get(app.url(&path)).send().await.unwrap();
        let html = html.text().await.unwrap();
        assert!(
            !html.contains(prov.as_str()) && !html.contains("friend@example.com"),
            "{path} shows A's organization"
        );
    }
    for (path, form) in [
        (
            "/cloud/organizations/rename",
            vec![("organization_id", org.as_str()), ("name", "pwned")],
        ),
        (
            "/cloud/organizations/invite",
            vec![
                ("organization_id", org.as_str()),
                ("email", "intruder@example.com"),
            ],
        ),
        (
            "/cloud/providers",
            vec![
                ("organization_id", org.as_str()),
                ("kind", "openai"),
                ("label", "planted"),
                ("secret", "s"),
            ],
        ),
    ] {
        let mut form = form;
        form.push(("csrf_token", csrf.as_str()));
        let resp = web.post(app.url(path)).form(&form).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
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
            !text.contains(pid.as_str())
                && !text.contains(cid.as_str())
                && !text.contains(org.as_str())
                && !text.contains(instance.as_str())
                && !text.contains(gmem.as_str()),
            "{path} shows A's data: {text}"
        );
    }
    // The internal grants refuse B's token for A's things.
    assert_status(app.grant("runtime", &b.access, instance).await, 404);
    assert_status(app.internal("/v1/internal/runtime/access", json!({"accessToken": b.access, "cloudInstanceId": format!("instance-{}", b.id), "projectId": pid})).await, 404);
    let (status, _) = app
        .grant("realtime", &b.access, &format!("instance-{}", a.id))
        .await;
    assert_eq!(status, 404);
    assert_status(app.internal(&format!("/v1/internal/conversations/{cid}/messages"), json!({"userId": b.id, "messages": [{"id": "y", "role": "user", "timestamp": 1, "content": "x"}]})).await, 404);

    unchanged
        .check("refused requests changed the database")
        .await;
}

/// runtime-headless serves the desktop's tokenless snapshot only after this check: the
/// session's user must still hold the instance and see the conversation, and the project must
/// be the conversation's. Anyone else, or the same user after the conversation is deleted, is
/// denied with the one 404.
#[tokio::test]
async fn runtime_session_access_follows_the_users_current_access() {
    let app = spawn_app().await;
    let [owner, stranger] = app.signups().await;
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
    assert_error(status, &body, 400, "invalid_request");
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
