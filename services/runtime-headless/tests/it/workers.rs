//! Two runtime-headless processes on one Postgres schema, a fake streaming provider, the
//! stand-in cloud-api and a recording realtime sink.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::sink::{count, text};
use crate::support::{Client, Cluster, eventually, healthy};

const WAIT: Duration = Duration::from_secs(20);

fn turn_id(prompt_response: &Value) -> i64 {
    prompt_response["data"]["turnId"]
        .as_i64()
        .expect("turnId in the prompt response")
}

fn agent_end_of(events: &[Value], turn: i64) -> Option<Value> {
    events
        .iter()
        .find(|e| e["type"] == "agent_end" && e["turnId"] == turn)
        .cloned()
}

/// Waits until `turn` has ended; returns the conversation's events and the turn's
/// `runtime_error` event (which must be there).
async fn failed_turn(
    cluster: &Cluster,
    conversation: &str,
    turn: i64,
    what: &str,
) -> (Vec<Value>, Value) {
    let events = cluster
        .sink
        .wait_for(conversation, WAIT, what, |e| {
            agent_end_of(e, turn).is_some()
        })
        .await;
    let err = events
        .iter()
        .find(|e| e["type"] == "runtime_error" && e["turnId"] == turn)
        .cloned()
        .expect("runtime_error event");
    (events, err)
}

/// A new conversation whose first turn streams a long answer on `client`'s worker, once its
/// first deltas are out: (conversation, session, turn).
async fn long_turn(
    cluster: &Cluster,
    client: &Client,
    user: &crate::support::TestUser,
    prompt: &str,
) -> (String, String, i64) {
    let conversation = cluster.conv(user).await;
    let id = client
        .session_id(user, &conversation, Some("chunks=400,delay=50"))
        .await;
    let turn = turn_id(&client.prompt(&id, prompt).await);
    cluster
        .sink
        .wait_for(&conversation, WAIT, "the first deltas", |e| {
            count(e, "message_update") >= 3
        })
        .await;
    (conversation, id, turn)
}

#[tokio::test]
async fn concurrent_acquires_for_one_conversation_yield_one_session() {
    let cluster = Cluster::new(&[]).await;
    let (_a, _b, user, ca, cb) = cluster.replicas().await;
    let conversation = cluster.conv(&user).await;
    let clients = [ca, cb];
    let calls = (0..12).map(|i| {
        let c = clients[i % 2].clone();
        let (user, conversation) = (user.clone(), conversation.clone());
        async move { c.acquire(&user, &conversation, None).await }
    });
    let results = futures_util::future::join_all(calls).await;
    let ids: HashSet<String> = results
        .iter()
        .map(|(s, b)| {
            assert!(*s == 200 || *s == 201, "{s} {b}");
            b["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "one session for one conversation: {results:?}"
    );
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "exactly one creation: {results:?}"
    );
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runtime_sessions WHERE status NOT IN ('stopped','error')",
    )
    .fetch_one(&cluster.db.pool)
    .await
    .unwrap();
    assert_eq!(active, 1);
}

#[tokio::test]
async fn concurrent_creates_never_exceed_the_quota() {
    let cluster = Cluster::new(&[]).await;
    let (_a, _b, user, ca, cb) = cluster.replicas().await;
    let clients = [ca, cb];
    let mut conversations = Vec::new();
    for _ in 0..12 {
        conversations.push(cluster.conv(&user).await);
    }
    let calls = conversations.iter().enumerate().map(|(i, c)| {
        let client = clients[i % 2].clone();
        let (user, c) = (user.clone(), c.clone());
        async move { (c.clone(), client.acquire(&user, &c, None).await) }
    });
    let results = futures_util::future::join_all(calls).await;
    let created: Vec<&String> = results
        .iter()
        .filter(|(_, (s, _))| *s == 201)
        .map(|(c, _)| c)
        .collect();
    assert_eq!(created.len(), 3, "{results:?}");
    for (_, (status, body)) in results.iter().filter(|(_, (s, _))| *s != 201) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"], "parallel_session_limit_reached");
        assert_eq!(body["usage"]["activeParallelSessions"], 3);
        assert_eq!(body["usage"]["parallelSessionsLimit"], 3);
        assert_eq!(body["usage"]["remainingParallelSessions"], 0);
    }
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runtime_sessions WHERE status NOT IN ('stopped','error')",
    )
    .fetch_one(&cluster.db.pool)
    .await
    .unwrap();
    assert_eq!(active, 3);
    // At the limit, an existing session is still reachable (reuse is checked before quota).
    let (status, body) = clients[1].acquire(&user, created[0], None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn killed_owner_mid_turn_is_taken_over_and_the_client_sees_turn_failed() {
    let cluster = Cluster::new(&[]).await;
    let (a, _b, user, ca, cb) = cluster.replicas().await;
    let (conversation, id, turn) = long_turn(&cluster, &ca, &user, "a long answer please").await;
    a.signal("KILL");
    let events = cluster
        .sink
        .wait_for(&conversation, WAIT, "turn_failed from the new owner", |e| {
            e.iter()
                .any(|x| x["type"] == "turn_failed" && x["turnId"] == turn)
        })
        .await;
    assert_eq!(
        count(&events, "turn_retried"),
        0,
        "output had started: no retry"
    );
    let owner: String = sqlx::query_scalar("SELECT owner_id FROM runtime_sessions WHERE id = $1")
        .bind(&id)
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert_eq!(owner, "worker-b");
    let status: String = sqlx::query_scalar("SELECT status FROM runtime_turns WHERE id = $1")
        .bind(turn)
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "failed");

    // The session stays usable on the surviving worker.
    let (s, body) = cb
        .command(
            &id,
            json!({"id": "m1", "type": "set_model", "provider": "openai", "modelId": "chunks=3,delay=5"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let next = turn_id(&cb.prompt(&id, "again").await);
    let events = cluster
        .sink
        .wait_for(&conversation, WAIT, "the next turn's end", |e| {
            agent_end_of(e, next).is_some()
        })
        .await;
    assert_eq!(agent_end_of(&events, next).unwrap()["outcome"], "succeeded");
}

#[tokio::test]
async fn killed_owner_before_any_output_has_its_turn_retried() {
    let cluster = Cluster::new(&[]).await;
    let a = cluster.worker("worker-a").await;
    let _b = cluster.worker("worker-b").await;
    let user = cluster.user().await;
    let ca = Client::new(&a.url(), &user.token);
    let conversation = cluster.conv(&user).await;
    let id = ca
        .session_id(&user, &conversation, Some("first=6000,chunks=3,delay=5"))
        .await;
    let turn = turn_id(&ca.prompt(&id, "slow to start").await);
    cluster
        .sink
        .wait_for(&conversation, WAIT, "the turn to start streaming", |e| {
            e.iter()
                .any(|x| x["type"] == "runtime_status" && x["status"] == "streaming")
        })
        .await;
    a.signal("KILL");
    let events = cluster
        .sink
        .wait_for(&conversation, WAIT, "turn_retried", |e| {
            e.iter()
                .any(|x| x["type"] == "turn_retried" && x["turnId"] == turn)
        })
        .await;
    assert_eq!(count(&events, "turn_failed"), 0);
    let events = cluster
        .sink
        .wait_for(&conversation, WAIT, "the retried turn to finish", |e| {
            agent_end_of(e, turn).is_some()
        })
        .await;
    assert_eq!(agent_end_of(&events, turn).unwrap()["outcome"], "succeeded");
    assert_eq!(text(&events), "tok0 tok1 tok2 ");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM runtime_turns WHERE id = $1")
        .bind(turn)
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn abort_from_another_replica_stops_the_stream() {
    let cluster = Cluster::new(&[]).await;
    let (_a, _b, user, ca, cb) = cluster.replicas().await;
    let (conversation, id, turn) = long_turn(&cluster, &ca, &user, "go on forever").await;
    let (status, body) = cb.command(&id, json!({"id": 7, "type": "abort"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7, "the request id is echoed");
    assert_eq!(body["command"], "abort");
    let events = cluster
        .sink
        .wait_for(
            &conversation,
            Duration::from_secs(5),
            "agent_end after abort",
            |e| agent_end_of(e, turn).is_some(),
        )
        .await;
    assert_eq!(agent_end_of(&events, turn).unwrap()["outcome"], "aborted");
    let deltas_at_end = count(&events, "message_update");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = cluster.sink.conversation(&conversation);
    assert_eq!(
        count(&later, "message_update"),
        deltas_at_end,
        "no delta after the abort"
    );
    assert!(deltas_at_end < 400, "the stream was cut short");
    // The aborted turn keeps its partial answer and the session is ready again.
    let (_, snap) = cb.get(&id).await;
    assert_eq!(snap["status"], "ready", "{snap}");
    let status: String = sqlx::query_scalar("SELECT status FROM runtime_turns WHERE id = $1")
        .bind(turn)
        .fetch_one(&cluster.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "aborted");
}

#[tokio::test]
async fn provider_errors_become_error_events_and_the_session_stays_usable() {
    let cluster = Cluster::new(&[]).await;
    let a = cluster.worker("worker-a").await;
    let b = cluster.worker("worker-b").await;
    let user = cluster.user().await;
    let ca = Client::new(&a.url(), &user.token);
    let conversation = cluster.conv(&user).await;
    let id = ca.session_id(&user, &conversation, Some("fail=500")).await;

    let t1 = turn_id(&ca.prompt(&id, "this fails").await);
    let (events, err) = failed_turn(&cluster, &conversation, t1, "the HTTP 500 error event").await;
    assert_eq!(err["error"], "provider_http_error", "{err}");
    assert!(!err.to_string().contains("sk-test-secret"));
    assert_eq!(agent_end_of(&events, t1).unwrap()["outcome"], "failed");

    ca.command(
        &id,
        json!({"type": "set_model", "provider": "openai", "modelId": "chunks=10,delay=5,drop=3"}),
    )
    .await;
    let t2 = turn_id(&ca.prompt(&id, "this drops").await);
    let (_, err) = failed_turn(
        &cluster,
        &conversation,
        t2,
        "the dropped-stream error event",
    )
    .await;
    assert!(
        err["error"] == "provider_stream_dropped" || err["error"] == "provider_unreachable",
        "{err}"
    );

    assert!(healthy(&a.url()).await && healthy(&b.url()).await);
    ca.command(
        &id,
        json!({"type": "set_model", "provider": "openai", "modelId": "chunks=2,delay=5"}),
    )
    .await;
    let t3 = turn_id(&ca.prompt(&id, "this works").await);
    let events = cluster
        .sink
        .wait_for(&conversation, WAIT, "a successful turn", |e| {
            agent_end_of(e, t3).is_some()
        })
        .await;
    assert_eq!(agent_end_of(&events, t3).unwrap()["outcome"], "succeeded");
}

#[tokio::test]
async fn provider_urls_on_private_networks_are_refused_by_default() {
    let cluster =
        Cluster::new(&[("CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS", "false")]).await;
    let a = cluster.worker("worker-a").await;
    let user = cluster.user().await;
    let ca = Client::new(&a.url(), &user.token);
    let conversation = cluster.conv(&user).await;
    let id = ca
        .session_id(&user, &conversation, Some("chunks=2,delay=5"))
        .await;
    let turn = turn_id(&ca.prompt(&id, "reach into the cluster").await);
    let (events, err) = failed_turn(&cluster, &conversation, turn, "the refused turn's end").await;
    assert_eq!(err["error"], "provider_address_forbidden", "{err}");
    assert!(
        err.to_string().contains("private or reserved"),
        "the event says why: {err}"
    );
    assert_eq!(agent_end_of(&events, turn).unwrap()["outcome"], "failed");
    assert!(
        cluster.provider.requests().is_empty(),
        "nothing was sent to the loopback provider"
    );
    assert!(healthy(&a.url()).await);
}

#[tokio::test]
async fn transcripts_keep_earlier_messages_across_sessions() {
    let cluster = Cluster::new(&[]).await;
    let (_a, _b, user, ca, cb) = cluster.replicas().await;
    let conversation = cluster.conv(&user).await;
    let first = ca
        .session_id(&user, &conversation, Some("chunks=2,delay=5"))
        .await;
    ca.prompt(&first, "first question").await;
    eventually(WAIT, "the first turn in the transcript", || async {
        (cluster.api.transcript(&user, &conversation).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(ca.delete(&first).await, 204);
    assert_eq!(ca.get(&first).await.0, 404);

    let (status, body) = cb
        .acquire(&user, &conversation, Some("chunks=3,delay=5"))
        .await;
    assert_eq!(status, 201, "{body}");
    let second = body["id"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    cb.prompt(&second, "second question").await;
    let transcript = eventually(WAIT, "both turns in the transcript", || async {
        let t = cluster.api.transcript(&user, &conversation).await;
        (t.len() == 4).then_some(t)
    })
    .await;
    let contents: Vec<&str> = transcript
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        vec![
            "first question",
            "tok0 tok1 ",
            "second question",
            "tok0 tok1 tok2 "
        ]
    );
    // The second session's provider call carried the earlier messages as context.
    let last = cluster.provider.requests().last().cloned().unwrap();
    let sent: Vec<&str> = last["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(last["body"]["messages"][0]["role"], "system");
    assert_eq!(
        sent[1..],
        ["first question", "tok0 tok1 ", "second question"]
    );
    assert_eq!(last["authorization"], "Bearer sk-test-secret");
    // The secret never reaches the database in plaintext.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runtime_turns WHERE position('sk-test-secret' in encode(spec_sealed, 'escape')) > 0",
    )
    .fetch_one(&cluster.db.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn shutdown_hands_leases_over_at_once() {
    // A long TTL: the other worker can only take over this fast if the lease was released.
    let cluster = Cluster::new(&[("CHATONS_RUNTIME_LEASE_TTL_SECONDS", "60")]).await;
    let mut a = cluster.worker("worker-a").await;
    let _b = cluster.worker("worker-b").await;
    let user = cluster.user().await;
    let ca = Client::new(&a.url(), &user.token);
    let conversation = cluster.conv(&user).await;
    let id = ca.session_id(&user, &conversation, None).await;
    a.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(15)).await.success());
    eventually(
        Duration::from_secs(10),
        "worker-b to own the session",
        || async {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT owner_id FROM runtime_sessions WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&cluster.db.pool)
                    .await
                    .unwrap();
            (owner.as_deref() == Some("worker-b")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn idle_sessions_expire_and_free_their_quota_slot() {
    let cluster = Cluster::new(&[("CHATONS_RUNTIME_IDLE_TIMEOUT_SECONDS", "4")]).await;
    let a = cluster.worker("worker-a").await;
    let user = cluster.user().await;
    let ca = Client::new(&a.url(), &user.token);
    let mut conversations = Vec::new();
    for _ in 0..4 {
        conversations.push(cluster.conv(&user).await);
    }
    // The default plan allows 3 parallel sessions.
    let id = ca.session_id(&user, &conversations[0], None).await;
    ca.session_id(&user, &conversations[1], None).await;
    ca.session_id(&user, &conversations[2], None).await;
    assert_eq!(ca.acquire(&user, &conversations[3], None).await.0, 429);
    eventually(WAIT, "the idle session to stop", || async {
        (ca.get(&id).await.0 == 404).then_some(())
    })
    .await;
    cluster
        .sink
        .wait_for(&conversations[0], WAIT, "the stopped status event", |e| {
            e.iter()
                .any(|x| x["type"] == "runtime_status" && x["status"] == "stopped")
        })
        .await;
    assert_eq!(ca.acquire(&user, &conversations[3], None).await.0, 201);
}
