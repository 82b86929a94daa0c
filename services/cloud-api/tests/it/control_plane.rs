//! Control-plane routes end to end on Postgres: providers (secrets sealed), projects,
//! conversations and transcripts, the runtime grant, memories, organizations and admin.

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestUser, assert_status, spawn_app, spawn_app_with, spawn_with_admin, strings,
};

async fn provider(app: &TestApp, u: &TestUser, secret: &str) -> Value {
    let (status, body) = app
        .post(
            "/v1/organization/providers",
            &u.access,
            json!({"kind": "openai", "label": "OpenAI", "secret": secret,
                   "models": [{"id": "gpt-4o"}, {"id": " ", "label": "skipped"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

#[tokio::test]
async fn provider_secrets_are_sealed_and_never_returned() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let secret = "sk-live-THIS-IS-THE-PLAINTEXT-123456";
    let body = provider(&app, &u, secret).await;
    let p = &body["provider"];
    assert_eq!(p["secretHint"], "set");
    assert_eq!(p["baseUrl"], "https://api.openai.com/v1");
    assert_eq!(p["models"], json!([{"id": "gpt-4o", "label": "gpt-4o"}]));
    assert_eq!(p["defaultModel"], "gpt-4o");
    assert!(!body.to_string().contains("sk-live"), "{body}");
    let id = p["id"].as_str().unwrap();

    // The database row holds ciphertext only.
    let pool = &app.db.as_ref().unwrap().pool;
    let row: String = sqlx::query_scalar(
        "select row_to_json(p)::text from cloud_organization_providers p where id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(!row.contains(secret) && !row.contains("sk-live"), "{row}");
    let (ct, key_id): (Vec<u8>, String) = sqlx::query_as(
        "select secret_ciphertext, secret_key_id from cloud_organization_providers where id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(!ct.windows(secret.len()).any(|w| w == secret.as_bytes()));
    assert_eq!(key_id.len(), 8);
    let dump: String = sqlx::query_scalar("select coalesce(string_agg(row_to_json(t)::text, ''), '') from (select * from cloud_organization_providers) t")
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(!dump.contains("sk-live"));

    // No public route returns it.
    for path in [
        "/v1/organization/providers",
        "/v1/account",
        "/v1/bootstrap",
        "/v1/organizations",
    ] {
        let (status, body) = app.get(path, &u.access).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            !body.to_string().contains("sk-live"),
            "{path} leaks the secret"
        );
    }
    let (status, body) = app
        .patch(
            &format!("/v1/organization/providers/{id}"),
            &u.access,
            json!({"secret": "sk-live-rotated", "label": "Renamed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("sk-live"));
    assert_eq!(body["provider"]["label"], "Renamed");

    // Bad input is a 400 that changes nothing.
    let (status, _) = app
        .post("/v1/organization/providers", &u.access, json!({"kind": "openai", "label": "x", "secret": "s", "baseUrl": "http://169.254.169.254/latest"}))
        .await;
    assert_eq!(status, 400, "plain-HTTP non-loopback base URLs are refused");
    let (status, _) = app
        .post(
            "/v1/organization/providers",
            &u.access,
            json!({"kind": "openai"}),
        )
        .await;
    assert_eq!(status, 400);
    let n: i64 = sqlx::query_scalar("select count(*) from cloud_organization_providers")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 1);

    let (status, _) = app
        .delete(&format!("/v1/organization/providers/{id}"), &u.access)
        .await;
    assert_eq!(status, 200);
    let (_, body) = app.get("/v1/organization/providers", &u.access).await;
    assert_eq!(body["providers"], json!([]));
}

#[tokio::test]
async fn projects_conversations_and_append_only_transcripts() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let (status, body) = app
        .post("/v1/projects", &u.access, json!({"name": "Repo", "kind": "repository",
            "repository": {"cloneUrl": "https://github.com/acme/widgets.git", "authMode": "token", "accessToken": "ghp_secret_token"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let project = body["project"].clone();
    assert_eq!(project["repoName"], "widgets");
    assert_eq!(project["workspaceCapability"], "full_tools");
    assert_eq!(project["repository"]["hasAccessToken"], true);
    assert!(!body.to_string().contains("ghp_secret"));
    let pid = project["id"].as_str().unwrap();

    // conversation_only never keeps a repository (nor its token).
    let (status, body) = app
        .post("/v1/projects", &u.access, json!({"name": "Chat", "repository": {"cloneUrl": "https://x.org/y.git", "accessToken": "tok"}}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["project"]["repository"], Value::Null);
    let (status, _) = app
        .post("/v1/projects", &u.access, json!({"name": "  "}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post(
            "/v1/projects",
            &u.access,
            json!({"name": "x", "kind": "repository", "repository": {"cloneUrl": "ftp://x/y"}}),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = app
        .post("/v1/conversations", &u.access, json!({"projectId": pid}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["conversation"]["title"], "New - Repo");
    let cid = body["conversation"]["id"].as_str().unwrap().to_owned();
    let msgs = |ids: &[&str]| json!({"messages": ids.iter().map(|i| json!({"id": i, "role": "user", "timestamp": 1700000000000i64, "content": format!("text {i}")})).collect::<Vec<_>>()});
    let path = format!("/v1/conversations/{cid}/messages");
    let (status, body) = app.post(&path, &u.access, msgs(&["a", "b"])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["appended"].as_u64(), body["total"].as_u64()),
        (Some(2), Some(2))
    );
    // A later POST with a partial list appends, never wipes.
    let (status, body) = app.post(&path, &u.access, msgs(&["b", "c"])).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["appended"].as_u64(), body["total"].as_u64()),
        (Some(1), Some(3))
    );
    let (status, body) = app.get(&format!("{path}?limit=2"), &u.access).await;
    assert_eq!(status, 200);
    let ids = strings(&body["messages"], "id");
    assert_eq!(ids, vec!["a", "b"]);
    let cursor = body["nextCursor"].as_str().unwrap();
    let (_, body) = app
        .get(&format!("{path}?limit=2&cursor={cursor}"), &u.access)
        .await;
    assert_eq!(body["messages"][0]["id"], "c");
    assert_eq!(body["nextCursor"], Value::Null);
    let (status, _) = app
        .post(&path, &u.access, json!({"messages": [{"role": "user"}]}))
        .await;
    assert_eq!(status, 400, "a message without id is refused");

    // Internal transcript append: idempotent per id, scoped to the user's organizations.
    let (status, body) = app
        .internal(
            &format!("/v1/internal/conversations/{cid}/messages"),
            json!({"userId": u.id, "messages": [
            {"id": "c", "role": "assistant", "timestamp": 1, "content": "dup"},
            {"id": "d", "role": "assistant", "timestamp": 2, "content": "new"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"conversationId": cid, "appended": 1, "total": 4})
    );
    let other = app.signup().await;
    let (status, _) = app
        .internal(
            &format!("/v1/internal/conversations/{cid}/messages"),
            json!({"userId": other.id, "messages": []}),
        )
        .await;
    assert_eq!(status, 404);

    // Update, list, delete.
    let (status, body) = app
        .patch(
            &format!("/v1/conversations/{cid}"),
            &u.access,
            json!({"title": "Renamed", "status": "done"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation"]["status"], "done");
    let (status, _) = app
        .patch(
            &format!("/v1/conversations/{cid}"),
            &u.access,
            json!({"status": "weird"}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, body) = app
        .get(&format!("/v1/conversations?projectId={pid}"), &u.access)
        .await;
    assert_eq!(body["conversations"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .delete(&format!("/v1/conversations/{cid}"), &u.access)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get(&format!("/v1/conversations/{cid}"), &u.access)
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .patch(
            &format!("/v1/projects/{pid}"),
            &u.access,
            json!({"name": "Repo 2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_status(
        app.delete(&format!("/v1/projects/{pid}"), &u.access).await,
        200,
    );
}

#[tokio::test]
async fn pagination_walks_every_item_once() {
    let app = spawn_app().await;
    let u = app.signup().await;
    for i in 0..5 {
        let (status, _) = app
            .post("/v1/projects", &u.access, json!({"name": format!("P{i}")}))
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/projects?limit=2&cursor={c}"),
            None => "/v1/projects?limit=2".to_owned(),
        };
        let (status, body) = app.get(&path, &u.access).await;
        assert_eq!(status, 200, "{body}");
        for p in body["projects"].as_array().unwrap() {
            seen.push(p["name"].as_str().unwrap().to_owned());
        }
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["Cloud Workspace", "P0", "P1", "P2", "P3", "P4"]);
    for bad in ["limit=0", "limit=201", "limit=abc", "cursor=%%%"] {
        let (status, body) = app.get(&format!("/v1/projects?{bad}"), &u.access).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn runtime_grant_carries_subscription_providers_and_repository() {
    let app = spawn_app_with(&[("CHATONS_ADMIN_EMAILS", "")]).await;
    let u = app.signup().await;
    provider(&app, &u, "sk-grant-secret").await;
    let (_, body) = app
        .post("/v1/projects", &u.access, json!({"name": "R", "kind": "repository",
            "repository": {"cloneUrl": "https://github.com/a/b", "authMode": "token", "accessToken": "ghp_abc"}}))
        .await;
    let pid = body["project"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post(
            "/v1/conversations",
            &u.access,
            json!({"projectId": pid, "modelId": "gpt-4o"}),
        )
        .await;
    let cid = body["conversation"]["id"].as_str().unwrap().to_owned();
    app.post("/v1/cloud-instances", &u.access, json!({"id": "desk-9"}))
        .await;

    let req = json!({"accessToken": u.access, "cloudInstanceId": "desk-9", "conversationId": cid});
    let (status, g) = app
        .internal("/v1/internal/runtime/access", req.clone())
        .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(g["user"]["id"], u.id.as_str());
    assert_eq!(
        g["user"]["subscription"]["id"], "plus",
        "the grant's user carries its plan"
    );
    assert_eq!(g["user"]["subscription"]["parallelSessionsLimit"], 3);
    assert_eq!(g["subscription"]["id"], "plus");
    assert_eq!(
        g["usage"],
        json!({"activeParallelSessions": 0, "parallelSessionsLimit": 3, "remainingParallelSessions": 3})
    );
    assert_eq!(g["project"]["id"], pid.as_str());
    assert_eq!(g["conversation"]["modelId"], "gpt-4o");
    assert_eq!(g["providers"][0]["secret"], "sk-grant-secret");
    assert_eq!(g["repository"]["accessToken"], "ghp_abc");
    assert_eq!(g["cloudInstance"]["id"], "desk-9");
    // Typed view of the same answer.
    let typed: cloud_common::internal::RuntimeGrant = serde_json::from_value(g.clone()).unwrap();
    assert_eq!(typed.user.subscription.id, "plus");

    // Usage counts live runtime sessions only.
    let pool = &app.db.as_ref().unwrap().pool;
    for (i, (status, lease)) in [
        ("ready", "1 hour"),
        ("stopped", "1 hour"),
        ("streaming", "-1 hour"),
    ]
    .iter()
    .enumerate()
    {
        sqlx::query(&format!(
            "insert into runtime_sessions (id, user_id, conversation_id, cloud_instance_id, lease_expires_at, status, subscription_plan, subscription_label, parallel_sessions_limit) \
             values ($1, $2, $3, 'desk-9', now() + interval '{lease}', $4, 'plus', 'Plus', 3)"
        ))
        .bind(format!("rs-{i}"))
        .bind(&u.id)
        .bind(format!("conv-{i}"))
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
    }
    let (_, g) = app
        .internal("/v1/internal/runtime/access", req.clone())
        .await;
    assert_eq!(g["usage"]["activeParallelSessions"], 1);
    assert_eq!(g["usage"]["remainingParallelSessions"], 2);

    // Denials: another user's instance, foreign conversation, mismatched project. (An unknown
    // instance id is claimed by the caller on first use.)
    assert_status(app.grant("runtime", &u.access, "desk-unknown").await, 200);
    let someone = app.signup().await;
    assert_status(
        app.grant("runtime", &someone.access, "desk-unknown").await,
        404,
    );
    assert_status(app.internal("/v1/internal/runtime/access", json!({"accessToken": u.access, "cloudInstanceId": "desk-9", "conversationId": cid, "projectId": "project-other"})).await, 404);
    let other = app.signup().await;
    assert_status(app.internal("/v1/internal/runtime/access", json!({"accessToken": other.access, "cloudInstanceId": format!("instance-{}", other.id), "conversationId": cid})).await, 404);

    // The typed client.
    let client = app.internal_client();
    let grant = client
        .runtime_access(&cloud_common::internal::RuntimeAccessRequest {
            access_token: u.access.clone(),
            cloud_instance_id: "desk-9".into(),
            project_id: Some(pid.clone()),
            conversation_id: None,
        })
        .await
        .unwrap()
        .expect("granted");
    assert_eq!(grant.project.unwrap().id, pid);
    let appended = client
        .append_transcript(
            &cid,
            &cloud_common::internal::TranscriptAppendRequest {
                user_id: u.id.clone(),
                messages: vec![cloud_common::internal::TranscriptMessage {
                    id: "m1".into(),
                    role: "assistant".into(),
                    timestamp: 5,
                    content: "hi".into(),
                }],
            },
        )
        .await
        .unwrap()
        .expect("appended");
    assert_eq!((appended.appended, appended.total), (1, 1));
}

#[tokio::test]
async fn memories_crud_search_stats_and_internal_upsert() {
    let app = spawn_app().await;
    let u = app.signup().await;
    let (status, body) = app
        .post("/v1/memory", &u.access, json!({"scope": "global", "kind": "preference", "title": "Indentation", "content": "Use tabs for indentation", "tags": ["style", " "]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let item = &body["item"];
    assert_eq!(item["tags"], json!(["style"]));
    assert_eq!(
        item["topicKey"],
        "preference-indentation-use-tabs-for-indentation-style"
    );
    assert_eq!(
        item["source"], "manual",
        "source is returned (the first system stripped it)"
    );
    let first_id = item["id"].as_str().unwrap().to_owned();

    // Same topic again: the row is updated in place (same id), not duplicated.
    let (_, body) = app
        .post("/v1/memory", &u.access, json!({"scope": "global", "kind": "preference", "title": "Indentation", "content": "Use tabs for indentation", "tags": ["style"], "confidence": 0.9}))
        .await;
    assert_eq!(body["item"]["id"], first_id.as_str());
    assert_eq!(body["item"]["confidence"], 0.9);

    let (status, _) = app
        .post("/v1/memory", &u.access, json!({"content": "  "}))
        .await;
    assert_eq!(status, 400);
    let (_, body) = app.get("/v1/memory?scope=all&limit=10", &u.access).await;
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        1,
        "query strings work on the list: {body}"
    );
    let (status, body) = app
        .get("/v1/memory/search?query=tabs&tag=style", &u.access)
        .await;
    assert_eq!(status, 200, "{body}");
    let hit = &body["items"][0];
    assert_eq!(hit["id"], first_id.as_str());
    assert!(hit["score"].as_f64().unwrap() > 0.0);
    assert!(
        hit["matchReasons"]
            .as_array()
            .unwrap()
            .contains(&json!("content"))
    );
    let (_, body) = app
        .get("/v1/memory/search?query=tabs&tag=other", &u.access)
        .await;
    assert_eq!(body["items"], json!([]));
    assert_status(app.get("/v1/memory/search", &u.access).await, 400);
    let (status, _) = app
        .get("/v1/memory/search?query=x&limit=abc", &u.access)
        .await;
    assert_eq!(status, 400, "a non-numeric limit is a 400, not a 500");
    let (_, body) = app.get("/v1/memory/stats", &u.access).await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["byKind"], json!({"preference": 1}));

    let (_, body) = app.get(&format!("/v1/memory/{first_id}"), &u.access).await;
    assert_eq!(body["item"]["timesUsed"], 1);
    let (status, body) = app
        .patch(
            &format!("/v1/memory/{first_id}"),
            &u.access,
            json!({"archived": true, "content": "Use spaces"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["item"]["archived"], true);
    let (_, body) = app.get("/v1/memory", &u.access).await;
    assert_eq!(
        body["items"],
        json!([]),
        "archived memories are hidden by default"
    );
    let (_, body) = app.get("/v1/memory?includeArchived=true", &u.access).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    // Internal upsert as the user, only into one of the user's organizations.
    let (_, acct) = app.get("/v1/account", &u.access).await;
    let org = acct["activeOrganizationId"].as_str().unwrap().to_owned();
    let (status, body) = app
        .internal("/v1/internal/memory/upsert", json!({"organizationId": org, "userId": u.id, "input": {"kind": "fact", "content": "Deploys happen on Fridays"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["item"]["ownership"]["userId"], u.id.as_str());
    let other = app.signup().await;
    let (_, oacct) = app.get("/v1/account", &other.access).await;
    let other_org = oacct["activeOrganizationId"].as_str().unwrap();
    let (status, _) = app
        .internal(
            "/v1/internal/memory/upsert",
            json!({"organizationId": other_org, "userId": u.id, "input": {"content": "x"}}),
        )
        .await;
    assert_eq!(
        status, 404,
        "no upsert into an organization the user is not in"
    );
    let (status, _) = app
        .internal("/v1/internal/memory/upsert", json!({"userId": u.id}))
        .await;
    assert_eq!(status, 400);

    let (status, _) = app
        .delete(&format!("/v1/memory/{first_id}"), &u.access)
        .await;
    assert_eq!(status, 200);
    assert_status(
        app.get(&format!("/v1/memory/{first_id}"), &u.access).await,
        404,
    );
}

#[tokio::test]
async fn organizations_invites_roles_and_members() {
    let app = spawn_app().await;
    let [owner, bob] = app.signups().await;
    let (status, body) = app
        .post(
            "/v1/organizations",
            &owner.access,
            json!({"name": "Acme", "slug": "acme-team"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let org = body["organization"]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/v1/organizations",
            &bob.access,
            json!({"name": "Other", "slug": "acme-team"}),
        )
        .await;
    assert_eq!(status, 409);

    let (status, body) = app
        .post(
            "/v1/organization/invites",
            &owner.access,
            json!({"organizationId": org, "email": bob.email}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(
        body["acceptUrl"]
            .as_str()
            .unwrap()
            .contains("/cloud/accept-invite?token=")
    );
    let pool = &app.db.as_ref().unwrap().pool;
    let raw: i64 =
        sqlx::query_scalar("select count(*) from cloud_organization_invites where token_hash = $1")
            .bind(&token)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(raw, 0, "invite tokens are stored hashed");

    // Someone else cannot accept Bob's invite.
    let eve = app.signup().await;
    let (status, body) = app
        .post(
            "/v1/organization/invites/accept",
            &eve.access,
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_token");
    let (status, body) = app
        .post(
            "/v1/organization/invites/accept",
            &bob.access,
            json!({"token": token}),
        )
        .await;
    assert_eq!(
        status, 200,
        "accepting succeeds (the first system answered 400): {body}"
    );
    assert_eq!(body["organization"]["id"], org.as_str());
    assert_eq!(body["organization"]["role"], "member");

    // A member cannot invite, rename or manage providers.
    let (status, _) = app
        .post(
            "/v1/organization/invites",
            &bob.access,
            json!({"organizationId": org, "email": "z@example.com"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .patch(
            "/v1/organization",
            &bob.access,
            json!({"organizationId": org, "name": "Mine"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post(
            "/v1/organization/providers",
            &bob.access,
            json!({"organizationId": org, "kind": "openai", "label": "x", "secret": "s"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .patch(
            "/v1/organization",
            &owner.access,
            json!({"organizationId": org, "name": "Acme Inc"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organization"]["name"], "Acme Inc");

    // Roles: promote Bob to admin; the last owner cannot be demoted or removed.
    let (status, body) = app
        .patch(
            &format!("/v1/organization/members/{}", bob.id),
            &owner.access,
            json!({"organizationId": org, "role": "admin"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .patch(
            &format!("/v1/organization/members/{}", owner.id),
            &bob.access,
            json!({"organizationId": org, "role": "member"}),
        )
        .await;
    assert_eq!(status, 403, "admins cannot demote owners");
    let (status, _) = app
        .patch(
            &format!("/v1/organization/members/{}", owner.id),
            &owner.access,
            json!({"organizationId": org, "role": "member"}),
        )
        .await;
    assert_eq!(status, 409, "last owner");
    let (_, body) = app
        .get(
            &format!("/v1/organization/members?organizationId={org}"),
            &owner.access,
        )
        .await;
    assert_eq!(body["members"].as_array().unwrap().len(), 2);

    // Invites can be listed and revoked.
    let (_, body) = app
        .post(
            "/v1/organization/invites",
            &bob.access,
            json!({"organizationId": org, "email": "later@example.com"}),
        )
        .await;
    let invite_id = body["invite"]["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .get(
            &format!("/v1/organization/invites?organizationId={org}"),
            &owner.access,
        )
        .await;
    assert_eq!(body["invites"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .delete(
            &format!("/v1/organization/invites/{invite_id}?organizationId={org}"),
            &owner.access,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .delete(
            &format!("/v1/organization/invites/{invite_id}?organizationId={org}"),
            &owner.access,
        )
        .await;
    assert_eq!(status, 404);

    // Active organization and removal.
    let (status, body) = app
        .post(
            "/v1/organization/active",
            &bob.access,
            json!({"organizationId": org}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .post(
            "/v1/organization/active",
            &eve.access,
            json!({"organizationId": org}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .delete(
            &format!("/v1/organization/members/{}?organizationId={org}", bob.id),
            &owner.access,
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = app.get("/v1/organizations", &bob.access).await;
    assert_eq!(body["organizations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn admin_manages_plans_users_and_grants() {
    let (app, admin_email) = spawn_with_admin(&[]).await;
    let admin = app.signup_as(&admin_email).await.access;
    let (_, body) = app.get("/v1/account", &admin).await;
    assert_eq!(
        body["user"]["isAdmin"], true,
        "named by CHATONS_ADMIN_EMAILS, address verified"
    );
    let u = app.signup().await;

    assert_status(app.get("/v1/admin/users", &u.access).await, 403);
    let (status, body) = app.get("/v1/admin/users?limit=1", &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    assert!(body["nextCursor"].is_string());

    let (status, body) = app
        .patch(
            "/v1/admin/plans/pro",
            &admin,
            json!({"isDefault": true, "isHidden": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = app
        .patch(
            "/v1/admin/plans/pro",
            &admin,
            json!({"isDefault": false, "isHidden": false}),
        )
        .await;
    let pro = body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "pro")
        .unwrap()
        .clone();
    assert_eq!(
        (pro["isDefault"].clone(), pro["isHidden"].clone()),
        (json!(false), json!(false)),
        "flags can be switched off"
    );
    assert_status(
        app.patch("/v1/admin/plans/gold", &admin, json!({})).await,
        404,
    );
    let (status, _) = app
        .patch(
            "/v1/admin/plans/pro",
            &admin,
            json!({"parallelSessionsLimit": -3}),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = app
        .post(
            &format!("/v1/admin/users/{}/grant-subscription", u.id),
            &admin,
            json!({"planId": "max", "durationDays": 7}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["subscription"]["id"], "max");
    assert_eq!(body["user"]["complimentaryGrant"]["plan"]["id"], "max");
    let (status, _) = app
        .post(
            &format!("/v1/admin/users/{}/grant-subscription", u.id),
            &admin,
            json!({"planId": "max", "durationDays": 0}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/admin/users/{}/grant-subscription", u.id),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["complimentaryGrant"], Value::Null);
    assert_eq!(body["user"]["subscription"]["id"], "plus");
    let (status, body) = app
        .patch(
            &format!("/v1/admin/users/{}", u.id),
            &admin,
            json!({"subscriptionPlan": "pro"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["subscription"]["id"], "pro");
    let (status, _) = app
        .patch(
            &format!("/v1/admin/users/{}", u.id),
            &admin,
            json!({"subscriptionPlan": "gold"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .patch("/v1/admin/users/user-nobody", &admin, json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .patch(
            &format!("/v1/admin/users/{}", u.id),
            &admin,
            json!({"subscriptionPlan": null}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["user"]["subscription"]["id"], "plus",
        "reported as the default plan"
    );
    let (status, body) = app.get("/v1/bootstrap", &u.access).await;
    assert_eq!(status, 403, "no plan: subscription required");
    assert_eq!(body["error"], "subscription_required");
    assert!(body["usage"].is_object());
}

/// A secrets-key rotation as an operator runs it: new key + old key as previous, then
/// `cloud-api reseal-secrets`, then the old key can go and the grant still carries the secret.
#[tokio::test]
async fn secrets_key_rotation_with_the_reseal_command() {
    use crate::helpers::{TEST_SECRETS_KEY, spawn_with_env};
    const NEW_KEY: &str = "ZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGQ=";
    let db = cloud_testkit::db::TestDb::new().await;
    let on_db = |key: &str| {
        vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("CHATONS_SECRETS_ENCRYPTION_KEY".to_owned(), key.to_owned()),
        ]
    };
    async fn grant_secret(app: &TestApp, u: &TestUser) -> Option<String> {
        let req = json!({"accessToken": u.access, "cloudInstanceId": format!("instance-{}", u.id)});
        let (status, g) = app.internal("/v1/internal/runtime/access", req).await;
        assert_eq!(status, 200, "{g}");
        g["providers"][0]["secret"].as_str().map(str::to_owned)
    }

    let old = spawn_with_env(on_db(TEST_SECRETS_KEY)).await;
    let u = old.signup().await;
    provider(&old, &u, "sk-rotate-me").await;
    assert_eq!(
        grant_secret(&old, &u).await.as_deref(),
        Some("sk-rotate-me")
    );
    drop(old);

    // Without the previous key the new one cannot open the old row: the grant leaves it out.
    let new_only = spawn_with_env(on_db(NEW_KEY)).await;
    assert_eq!(grant_secret(&new_only, &u).await, None);
    drop(new_only);

    let reseal = |previous: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-api"));
        cmd.arg("reseal-secrets")
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("CHATONS_SECRETS_ENCRYPTION_KEY", NEW_KEY);
        if let Some(p) = previous {
            cmd.env("CHATONS_SECRETS_PREVIOUS_KEYS", p);
        }
        cmd.output().unwrap()
    };
    let refused = reseal(None);
    assert!(
        !refused.status.success(),
        "an unreadable row fails the command"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("1 provider secret(s)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let done = reseal(Some(TEST_SECRETS_KEY));
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(out.contains("done: 1 re-sealed"), "{out}");
    assert!(
        !out.contains("sk-rotate-me") && !out.contains(TEST_SECRETS_KEY),
        "no secret in the output"
    );

    let rotated = spawn_with_env(on_db(NEW_KEY)).await;
    assert_eq!(
        grant_secret(&rotated, &u).await.as_deref(),
        Some("sk-rotate-me")
    );
    let again = reseal(None);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("done: 0 re-sealed"));
}

#[tokio::test]
async fn only_owners_and_admins_give_a_conversation_project_full_tools() {
    let app = spawn_app().await;
    let [owner, bob] = app.signups().await;
    let (_, body) = app
        .post(
            "/v1/organizations",
            &owner.access,
            json!({"name": "Tools", "slug": format!("tools-{}", &owner.id[..8])}),
        )
        .await;
    let org = body["organization"]["id"].as_str().unwrap().to_owned();
    app.add_member(&owner, &org, &bob, None).await;

    // The owner creates a scratch-workspace project directly.
    let (status, body) = app
        .post(
            "/v1/projects",
            &owner.access,
            json!({"name": "Scratch", "organizationId": org, "workspaceCapability": "full_tools"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["project"]["workspaceCapability"], "full_tools");
    let scratch = body["project"]["id"].as_str().unwrap().to_owned();

    // A member can create a chat-only project but cannot switch it (nor ask for tools upfront).
    let (status, body) = app
        .post(
            "/v1/projects",
            &bob.access,
            json!({"name": "Bob's", "organizationId": org, "workspaceCapability": "full_tools"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .post(
            "/v1/projects",
            &bob.access,
            json!({"name": "Bob's", "organizationId": org}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["project"]["workspaceCapability"], "chat_only");
    let bobs = body["project"]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .patch(
            &format!("/v1/projects/{bobs}"),
            &bob.access,
            json!({"workspaceCapability": "full_tools"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, body) = app.get(&format!("/v1/projects/{bobs}"), &bob.access).await;
    assert_eq!(body["project"]["workspaceCapability"], "chat_only");
    // Restating the current value or renaming is fine for a member.
    let (status, body) = app
        .patch(
            &format!("/v1/projects/{scratch}"),
            &bob.access,
            json!({"name": "Renamed", "workspaceCapability": "full_tools"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["project"]["workspaceCapability"], "full_tools");

    // The owner switches Bob's project; bad values and chat-only repositories are refused.
    let (status, body) = app
        .patch(
            &format!("/v1/projects/{bobs}"),
            &owner.access,
            json!({"workspaceCapability": "full_tools"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["project"]["workspaceCapability"], "full_tools");
    let (status, _) = app
        .patch(
            &format!("/v1/projects/{bobs}"),
            &owner.access,
            json!({"workspaceCapability": "root"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post(
            "/v1/projects",
            &owner.access,
            json!({"name": "Repo", "organizationId": org, "kind": "repository",
                   "repository": {"cloneUrl": "https://github.com/acme/w.git"},
                   "workspaceCapability": "chat_only"}),
        )
        .await;
    assert_eq!(status, 400);

    // The runtime grant carries the capability.
    let (_, grant) = app
        .internal(
            "/v1/internal/runtime/access",
            json!({"accessToken": owner.access, "cloudInstanceId": format!("instance-{}", owner.id),
                   "projectId": bobs, "conversationId": null}),
        )
        .await;
    assert_eq!(
        grant["project"]["workspaceCapability"], "full_tools",
        "{grant}"
    );
}
