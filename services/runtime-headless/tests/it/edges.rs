//! The HTTP edge of the binary: JSON errors, auth order, RpcResponse shape, graceful drain,
//! and the in-memory mode.

use std::time::Duration;

use cloud_testkit::edge::{
    ConnectionLimits, JsonRoute, assert_drain_under_load, assert_graceful_drain, assert_json_edges,
    assert_slow_clients_are_cut,
};
use cloud_testkit::process::ServiceProcess;
use serde_json::json;

use crate::support::sink::count;
use crate::support::{BIN, Client, CloudApi, Cluster, EventSink, FakeProvider, eventually};

#[tokio::test]
async fn acquire_route_answers_json_errors() {
    let cluster = Cluster::new(&[]).await;
    let a = cluster.worker("worker-a").await;
    assert_json_edges(
        &a.url(),
        JsonRoute {
            path: "/v1/runtime/sessions",
            headers: &[("authorization", "Bearer some-token")],
        },
        1_048_576,
    )
    .await;
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let cluster = Cluster::new(&[]).await;
    let mut a = cluster.worker("worker-a").await;
    assert_graceful_drain(
        &mut a,
        JsonRoute {
            path: "/v1/runtime/sessions",
            headers: &[("authorization", "Bearer some-token")],
        },
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn sigterm_under_load_cuts_no_request_short() {
    let cluster = Cluster::new(&[]).await;
    let mut a = cluster.worker("worker-a").await;
    assert_drain_under_load(
        &mut a,
        JsonRoute {
            path: "/v1/runtime/sessions",
            headers: &[("authorization", "Bearer some-token")],
        },
        8,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn slow_clients_are_cut_and_connections_capped() {
    let limits = ConnectionLimits::default();
    let env: Vec<(&'static str, String)> = limits.env();
    let extra: Vec<(&'static str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cluster = Cluster::new(&extra).await;
    let a = cluster.worker("worker-a").await;
    assert_slow_clients_are_cut(
        a.addr,
        JsonRoute {
            path: "/v1/runtime/sessions",
            headers: &[("authorization", "Bearer some-token")],
        },
        limits,
    )
    .await;
}

#[tokio::test]
async fn auth_order_and_session_visibility() {
    let cluster = Cluster::new(&[]).await;
    let a = cluster.worker("worker-a").await;
    let alice = cluster.user().await;
    let bob = cluster.user().await;
    let http = reqwest::Client::new();

    // No bearer: 401 before anything else.
    let r = http
        .post(format!("{}/v1/runtime/sessions", a.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Missing fields: 400.
    let r = http
        .post(format!("{}/v1/runtime/sessions", a.url()))
        .bearer_auth(&alice.token)
        .json(&json!({"conversationId": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A foreign instance: the grant is denied.
    let r = http
        .post(format!("{}/v1/runtime/sessions", a.url()))
        .bearer_auth(&alice.token)
        .json(
            &json!({"conversationId": cluster.conv(&alice).await, "cloudInstanceId": bob.instance}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");

    let ca = Client::new(&a.url(), &alice.token);
    let conversation = cluster.conv(&alice).await;
    let id = ca.session_id(&alice, &conversation, None).await;
    // Unknown id with a valid token: 404; with an invalid token: 403 (ids cannot be probed).
    assert_eq!(ca.get("runtime-session-nope").await.0, 404);
    let stranger = Client::new(&a.url(), "not-a-token");
    assert_eq!(stranger.get("runtime-session-nope").await.0, 403);
    assert_eq!(stranger.get(&id).await.0, 403);
    // Another user's session looks like an unknown one.
    let cb = Client::new(&a.url(), &bob.token);
    assert_eq!(cb.get(&id).await.0, 404);
    assert_eq!(cb.command(&id, json!({"type": "abort"})).await.0, 404);
    assert_eq!(cb.delete(&id).await, 404);

    // RpcResponse echoes the request id; unknown commands are a 400 response object.
    let (s, body) = ca
        .command(&id, json!({"id": "req-42", "type": "reticulate_splines"}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        json!({"id": "req-42", "type": "response", "command": "reticulate_splines",
               "success": false, "error": "Unsupported command: reticulate_splines"})
    );
    let (s, body) = ca
        .command(
            &id,
            json!({"id": "req-43", "type": "set_thinking_level", "level": "high"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["id"], "req-43");
    let (s, body) = ca
        .command(&id, json!({"id": "s", "type": "get_state"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["data"]["thinkingLevel"], "high");
    assert_eq!(body["data"]["sessionId"], id.as_str());
    let (s, body) = ca
        .command(
            &id,
            json!({"type": "set_model", "provider": "nope", "modelId": "x"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "Model not found: nope/x");
    // A blank prompt queues nothing.
    let (s, body) = ca
        .command(&id, json!({"type": "prompt", "message": "  "}))
        .await;
    assert_eq!(s, 200);
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(ca.delete(&id).await, 204);
    assert_eq!(ca.delete(&id).await, 404);
}

#[tokio::test]
async fn runs_a_turn_in_memory_without_a_database() {
    let token = cloud_testkit::random_token();
    let provider = FakeProvider::start().await;
    let api = CloudApi::start(None, &token, &provider.base).await;
    let sink = EventSink::start(&token).await;
    let p = ServiceProcess::spawn(
        BIN,
        &[
            ("CHATONS_INTERNAL_SERVICE_TOKEN", token.clone()),
            ("CHATONS_CLOUD_API_URL", api.base.clone()),
            ("CHATONS_REALTIME_PUBLISH_URL", sink.url.clone()),
            (
                "CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS",
                "true".to_owned(),
            ),
        ],
    )
    .await;
    let user = api.user().await;
    let conversation = api.conversation(&user).await;
    let c = Client::new(&p.url(), &user.token);
    let id = c
        .session_id(&user, &conversation, Some("chunks=4,delay=5"))
        .await;
    c.prompt(&id, "hello").await;
    let events = sink
        .wait_for(
            &conversation,
            Duration::from_secs(10),
            "agent_end and ready",
            |e| {
                count(e, "agent_end") == 1
                    && e.last().is_some_and(|l| l["type"] == "runtime_status")
            },
        )
        .await;
    assert_eq!(crate::support::sink::text(&events), "tok0 tok1 tok2 tok3 ");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"runtime_status"));
    assert!(
        kinds.ends_with(&["agent_end", "runtime_status"]),
        "{kinds:?}"
    );
    let (_, snap) = c.get(&id).await;
    assert_eq!(snap["messages"].as_array().unwrap().len(), 2, "{snap}");
    let metrics = reqwest::get(format!("{}/metrics", p.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("chatons_runtime_turns_total"), "{metrics}");
    assert!(metrics.contains("chatons_runtime_lease_takeovers_total"));
}

/// `/readyz` is 204 only while Postgres answers and holds every migration the binary knows
/// (runtime-headless never migrates; cloud-api does).
#[tokio::test]
async fn readiness_follows_the_database_and_its_migrations() {
    let db = cloud_testkit::db::TestDb::empty().await;
    let proxy =
        cloud_testkit::proxy::TcpProxy::start(cloud_testkit::proxy::target_of(&db.url)).await;
    let p = ServiceProcess::spawn(
        BIN,
        &[
            ("DATABASE_URL", proxy.rewrite_url(&db.url)),
            (
                "CHATONS_INTERNAL_SERVICE_TOKEN",
                cloud_testkit::random_token(),
            ),
            ("CHATONS_CLOUD_API_URL", "http://127.0.0.1:9".to_owned()),
            ("CHATONS_RUNTIME_DB_POOL_SIZE", "2".to_owned()),
        ],
    )
    .await;
    let health = reqwest::get(format!("{}/healthz", p.url())).await.unwrap();
    assert_eq!(health.status(), 200, "alive on an empty database");
    let before = reqwest::get(format!("{}/readyz", p.url())).await.unwrap();
    assert_eq!(before.status(), 503, "not ready before migrations");

    cloud_common::db::MIGRATOR.run(&db.pool).await.unwrap();
    cloud_testkit::wait_for_readiness(&p.url(), 204, "after migrations").await;

    proxy.cut();
    cloud_testkit::wait_for_readiness(&p.url(), 503, "database unreachable").await;
    proxy.restore();
    cloud_testkit::wait_for_readiness(&p.url(), 204, "database back").await;
}

/// The shipped desktop reads snapshots without `Authorization` (and drops the session on a 404):
/// the session id is a read-only capability while the session is active and its user still
/// sees the conversation. Commands and stop still need the token; the operator can turn it off.
#[tokio::test]
async fn a_tokenless_snapshot_is_served_while_the_sessions_user_may_read_it() {
    let cluster = Cluster::new(&[]).await;
    let a = cluster.worker("worker-a").await;
    let alice = cluster.user().await;
    let ca = Client::new(&a.url(), &alice.token);
    let conversation = cluster.conv(&alice).await;
    let id = ca
        .session_id(&alice, &conversation, Some("chunks=2,delay=5"))
        .await;
    ca.prompt(&id, "hello").await;
    let with_token = eventually(Duration::from_secs(20), "the turn to end", || async {
        let (status, body) = ca.get(&id).await;
        (status == 200
            && body["state"]["isStreaming"] == false
            && body["messages"].as_array().is_some_and(|m| m.len() >= 2))
        .then_some(body)
    })
    .await;

    let http = reqwest::Client::new();
    let snapshot = |id: String| {
        let http = http.clone();
        let url = format!("{}/v1/runtime/sessions/{id}", a.url());
        async move { http.get(url).send().await.expect("snapshot request") }
    };
    let r = snapshot(id.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["messages"], with_token["messages"]);
    assert_eq!(snapshot("runtime-session-nope".into()).await.status(), 404);

    // Without the token nothing else is allowed.
    let r = http
        .post(format!("{}/v1/runtime/sessions/{id}/commands", a.url()))
        .json(&json!({"type": "abort"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .delete(format!("{}/v1/runtime/sessions/{id}", a.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Once the user no longer sees the conversation, the id opens nothing.
    let r = http
        .delete(format!(
            "{}/v1/conversations/{conversation}",
            cluster.api.base
        ))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "delete conversation: {}",
        r.status()
    );
    assert_eq!(snapshot(id.clone()).await.status(), 404);

    // A stopped session is not served either.
    let other = cluster.conv(&alice).await;
    let second = ca.session_id(&alice, &other, None).await;
    assert_eq!(snapshot(second.clone()).await.status(), 200);
    assert_eq!(ca.delete(&second).await, 204);
    assert_eq!(snapshot(second).await.status(), 404);
}

#[tokio::test]
async fn tokenless_snapshots_can_be_turned_off() {
    let cluster = Cluster::new(&[("CHATONS_RUNTIME_TOKENLESS_SNAPSHOTS", "false")]).await;
    let a = cluster.worker("worker-a").await;
    let alice = cluster.user().await;
    let ca = Client::new(&a.url(), &alice.token);
    let id = ca
        .session_id(&alice, &cluster.conv(&alice).await, None)
        .await;
    let r = reqwest::get(format!("{}/v1/runtime/sessions/{id}", a.url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(ca.get(&id).await.0, 200, "with the token it is served");
}
