//! Faults survived by the cloud-api binary: its Postgres crashes and comes back while writes
//! flow, one of two replicas is killed (`kill -9`) under load, SIGTERM under load.

use std::collections::BTreeSet;
use std::time::Duration;

use cloud_testkit::edge::assert_drain_under_load;
use cloud_testkit::process::ServiceProcess;
use cloud_testkit::servers::PrivatePostgres;
use serde_json::{Value, json};

use crate::helpers::{LOGIN_ROUTE, TEST_SECRETS_KEY};

fn env(database_url: &str, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        (
            "CHATONS_SECRETS_ENCRYPTION_KEY",
            TEST_SECRETS_KEY.to_owned(),
        ),
        ("CHATONS_INTERNAL_SERVICE_TOKEN", token.to_owned()),
        ("CHATONS_CLOUD_DB_POOL_SIZE", "4".to_owned()),
        ("CHATONS_SHUTDOWN_DRAIN_SECONDS", "5".to_owned()),
    ]
}

struct Account {
    token: String,
    user_id: String,
}

async fn signup(base: &str) -> Account {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/web/signup"))
        .json(&json!({
            "email": format!("f{}@example.com", cloud_testkit::random_token()),
            "displayName": "Fault Tester",
            "password": "correct horse battery staple"
        }))
        .send()
        .await
        .expect("signup");
    assert_eq!(r.status(), 201, "signup");
    let body: Value = r.json().await.unwrap();
    Account {
        token: body["session"]["accessToken"].as_str().unwrap().to_owned(),
        user_id: body["user"]["id"].as_str().unwrap().to_owned(),
    }
}

/// The JSON answer of `req` sent with `token`.
async fn json_of(req: reqwest::RequestBuilder, token: &str) -> Value {
    req.bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn project_names(base: &str, token: &str) -> BTreeSet<String> {
    let client = reqwest::Client::new();
    let mut names = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{base}/v1/projects"))
            .bearer_auth(token)
            .query(&[("limit", "200")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c.as_str())]);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        for p in body["projects"].as_array().expect("projects") {
            names.insert(p["name"].as_str().unwrap().to_owned());
        }
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return names,
        }
    }
}

/// Postgres dies (`-m immediate`, like a crash) while a client keeps creating projects: the
/// service answers 503 JSON while it is down (never 500, never a hang), recovers by itself when
/// it is back, and every project it acknowledged (201) is there afterwards.
#[tokio::test]
async fn postgres_crash_while_writes_flow_loses_no_acknowledged_write() {
    let pg = PrivatePostgres::start();
    let token = cloud_testkit::random_token();
    let api = ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-api"), &env(&pg.url(), &token)).await;
    let base = api.url();
    cloud_testkit::wait_for_readiness(&base, 204, "cloud-api on its private Postgres").await;
    let account = signup(&base).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let writer = {
        let (client, base, token) = (client.clone(), base.clone(), account.token.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut statuses = Vec::new();
            for n in 0..400 {
                let name = format!("p-{n}");
                let answer = client
                    .post(format!("{base}/v1/projects"))
                    .bearer_auth(&token)
                    .json(&json!({"name": name}))
                    .send()
                    .await;
                match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if status == 201 {
                            acknowledged.push(name);
                        } else {
                            assert!(
                                body["error"].is_string(),
                                "status {status} without the JSON envelope: {body}"
                            );
                        }
                        statuses.push(status);
                    }
                    Err(e) => panic!("request {n} failed at the transport level: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            (acknowledged, statuses)
        })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    pg.kill();
    cloud_testkit::wait_for_readiness(&base, 503, "Postgres down").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.start_again();
    cloud_testkit::wait_for_readiness(&base, 204, "Postgres back").await;
    let (acknowledged, statuses) = writer.await.expect("writer");

    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!(refused > 0, "no request saw the outage: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "statuses other than 201/503: {statuses:?}"
    );
    assert!(
        statuses.last() == Some(&201),
        "writes did not recover: {statuses:?}"
    );
    let stored = project_names(&base, &account.token).await;
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

/// Two replicas on one database; a client appends transcript messages (idempotent by message
/// id) through replica A, which is killed with SIGKILL half-way; the client retries what got no
/// answer on replica B. Every message is stored exactly once.
#[tokio::test]
async fn a_killed_replica_loses_no_idempotent_write_and_retries_do_not_duplicate() {
    let db = cloud_testkit::db::TestDb::new().await;
    let token = cloud_testkit::random_token();
    let a = ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-api"), &env(&db.url, &token)).await;
    let b = ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-api"), &env(&db.url, &token)).await;
    let account = signup(&a.url()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let boot = json_of(
        client.get(format!("{}/v1/bootstrap", b.url())),
        &account.token,
    )
    .await;
    let project = boot["projects"][0]["id"].as_str().unwrap().to_owned();
    let new_conversation = client
        .post(format!("{}/v1/conversations", b.url()))
        .json(&json!({"projectId": project, "title": "kill -9"}));
    let conv = json_of(new_conversation, &account.token).await;
    let conversation = conv["conversation"]["id"].as_str().unwrap().to_owned();
    let path = cloud_common::internal::transcript_path(&conversation);
    let append = |base: String, n: usize| {
        let (client, token, user, path) = (
            client.clone(),
            token.clone(),
            account.user_id.clone(),
            path.clone(),
        );
        async move {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(&token)
                .json(&json!({"userId": user, "messages": [
                    {"id": format!("m-{n}"), "role": "user", "timestamp": 1_700_000_000_000i64 + n as i64, "content": format!("message {n}")}
                ]}))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    };
    let total = 120;
    let mut unanswered = Vec::new();
    let killer = {
        let pid = a.pid();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        })
    };
    for n in 0..total {
        if append(a.url(), n).await.is_none() {
            unanswered.push(n);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    killer.await.unwrap();
    assert!(!unanswered.is_empty(), "replica A was never killed");
    assert!(unanswered.len() < total, "replica A never answered");
    // The client does not know which of the unanswered appends were stored: it retries them
    // all on B, and retries one acknowledged message as well.
    for n in unanswered.iter().copied().chain([0]) {
        assert!(append(b.url(), n).await.is_some(), "retry of m-{n} on B");
    }
    let messages = format!("{}/v1/conversations/{conversation}/messages", b.url());
    let body = json_of(client.get(messages), &account.token).await;
    let ids: Vec<String> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "duplicated messages: {ids:?}");
    assert_eq!(ids.len(), total, "lost messages: {ids:?}");
}

/// SIGTERM while eight clients keep requests in flight: none is cut short.
#[tokio::test]
async fn sigterm_under_load_cuts_no_request_short() {
    let db = cloud_testkit::db::TestDb::new().await;
    let mut process = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_cloud-api"),
        &env(&db.url, &cloud_testkit::random_token()),
    )
    .await;
    assert_drain_under_load(&mut process, LOGIN_ROUTE, 8, Duration::from_secs(5)).await;
}
