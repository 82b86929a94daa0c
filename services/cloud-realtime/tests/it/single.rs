//! One replica: the in-process mode (no REDIS_URL), authentication and validation answers.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn without_redis_one_replica_keeps_the_same_semantics() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access)
        .without_redis()
        .with("CHATONS_REALTIME_REPLAY_BUFFER_SIZE", "3");
    let a = setup.replica().await;
    let user = access.user().await;
    let mut c = a.connect(&user).await;
    assert_eq!(c.hello["sequence"], 0);
    for n in 1..=2 {
        assert_eq!(
            a.publish(&user.instance_id, &user.org_id, &format!("e{n}"))
                .await,
            n
        );
    }
    assert_eq!(seqs(&c.events(2).await), vec![1, 2]);
    let epoch = c.epoch();
    c.close().await;
    a.publish(&user.instance_id, &user.org_id, "e3").await;
    let mut c = a.resume(&user, &epoch, 2).await;
    assert_eq!(labels(&c.events(1).await), vec!["e3"]);
    for n in 4..=8 {
        a.publish(&user.instance_id, &user.org_id, &format!("e{n}"))
            .await;
    }
    assert_eq!(seqs(&c.events(5).await), vec![4, 5, 6, 7, 8]);
    let mut old = a.resume(&user, &epoch, 1).await;
    let resync = old.next_json().await;
    assert_eq!(resync["type"], "resync");
    assert_eq!(resync["sequence"], 8);
    let metrics = a.metrics().await;
    for series in [
        "chatons_realtime_open_websockets",
        "chatons_realtime_events_published_total",
        "chatons_realtime_events_delivered_total",
        "chatons_realtime_resyncs_total",
        "chatons_realtime_replays_total",
    ] {
        assert!(metrics.contains(series), "{series} missing from {metrics}");
    }
}

#[tokio::test]
async fn publishing_needs_the_service_token_and_a_valid_envelope() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let client = reqwest::Client::new();
    let body = json!({"cloudInstanceId": "inst-1", "event": event("org-x", "x")});
    for auth in [None, Some("wrong-token"), Some("")] {
        let mut req = client
            .post(format!("{}/v1/realtime/events", a.base))
            .json(&body);
        if let Some(t) = auth {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized");
        assert_eq!(v["message"], "Internal service token required");
    }
    let cases = [
        (
            json!({"event": event("org-x", "x")}),
            "Missing cloudInstanceId",
        ),
        (
            json!({"cloudInstanceId": "a:b", "event": event("org-x", "x")}),
            "cloudInstanceId",
        ),
        (json!({"cloudInstanceId": "i"}), "Missing event"),
        (
            json!({"cloudInstanceId": "i", "event": []}),
            "event must be",
        ),
        (
            json!({"cloudInstanceId": "i", "event": {"type":"t","organizationId":"o","payload":{}}}),
            "id",
        ),
        (
            json!({"cloudInstanceId": "i", "event": {"id":"1","organizationId":"o","payload":{}}}),
            "type",
        ),
        (
            json!({"cloudInstanceId": "i", "event": {"id":"1","type":"t","organizationId":"o","payload":[1]}}),
            "payload",
        ),
        (
            json!({"cloudInstanceId": "i", "event": {"id":"1","type":"t","organizationId":"o"}}),
            "payload",
        ),
        (
            json!({"cloudInstanceId": "i", "event": {"id":"1","type":"t","payload":{}}}),
            "organizationId",
        ),
        (
            json!({"cloudInstanceId": "i", "event": {"id":"","type":"t","organizationId":"o","payload":{}}}),
            "id",
        ),
    ];
    for (body, needle) in cases {
        let (status, v) = raw_publish(&a, &body).await;
        assert_eq!(status, 400, "{body} -> {v}");
        assert_eq!(v["error"], "invalid_request");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body} -> {v}"
        );
    }
    // Nothing was stored by the refused requests.
    let (status, v) = raw_publish(
        &a,
        &json!({"cloudInstanceId": "i", "event": {"id":"1","type":"t","organizationId":"o","payload":{}}}),
    )
    .await;
    assert_eq!((status, v["seq"].as_u64()), (202, Some(1)));
}

async fn raw_publish(a: &Replica, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/realtime/events", a.base))
        .bearer_auth(&a.service_token)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn token_and_replay_answer_401_400_403_and_503() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let user = access.user().await;
    // An instance held by another user (an unknown id would be claimed by the caller).
    let other = access.user().await;
    let client = reqwest::Client::new();
    for path in ["/v1/realtime/token", "/v1/realtime/replay"] {
        let r = client
            .get(format!(
                "{}{path}?cloudInstanceId={}",
                a.base, user.instance_id
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} without bearer");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message"], "Missing bearer token");
        let r = client
            .get(format!("{}{path}", a.base))
            .bearer_auth(&user.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path} without instance");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message"], "Missing cloudInstanceId");
        let r = client
            .get(format!(
                "{}{path}?cloudInstanceId={}",
                a.base, other.instance_id
            ))
            .bearer_auth(&user.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} of another instance");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v,
            json!({"error":"forbidden","message":"Realtime access denied"})
        );
    }
    // The access service is down: retryable 503.
    access.stop();
    let mut status = 0;
    for _ in 0..50 {
        status = a.token_raw(&user).await.0;
        if status == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 503);
}

/// `/readyz` is 204 only while Redis answers.
#[tokio::test]
async fn readiness_follows_redis() {
    use cloud_testkit::wait_for_readiness as wait_for;

    let access = AccessService::start().await;
    let mut setup = Setup::new(&access);
    let proxy = setup.redis_through_proxy().await;
    let a = setup.replica().await;
    wait_for(&a.base, 204, "Redis reachable").await;
    proxy.cut();
    wait_for(&a.base, 503, "Redis unreachable").await;
    proxy.restore();
    wait_for(&a.base, 204, "Redis back").await;
}

/// A member removed from an organization kept receiving its events on an open socket: the
/// socket's audience was the token's snapshot. Sockets re-check it with cloud-api.
#[tokio::test]
async fn a_member_removed_from_an_organization_stops_receiving_its_events() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access)
        .without_redis()
        .with("CHATONS_REALTIME_ACCESS_RECHECK_SECONDS", "1");
    let a = setup.replica().await;
    let owner = access.user().await;
    let member = access.user().await;
    let (status, body) = access
        .call(
            reqwest::Method::POST,
            &owner,
            "/v1/organizations",
            Some(json!({"name": "Team"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let team = body["organization"]["id"].as_str().unwrap().to_owned();
    let (_, account) = access
        .call(reqwest::Method::GET, &member, "/v1/account", None)
        .await;
    let (member_id, email) = (
        account["user"]["id"].clone(),
        account["user"]["email"].clone(),
    );
    let (status, body) = access
        .call(
            reqwest::Method::POST,
            &owner,
            "/v1/organization/invites",
            Some(json!({"organizationId": team, "email": email})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let accept = json!({"token": body["token"]});
    let (status, _) = access
        .call(
            reqwest::Method::POST,
            &member,
            "/v1/organization/invites/accept",
            Some(accept),
        )
        .await;
    assert_eq!(status, 200);
    let mut c = a.connect(&member).await;
    a.publish(&member.instance_id, &team, "team-1").await;
    assert_eq!(labels(&c.events(1).await), vec!["team-1"]);

    let path = format!(
        "/v1/organization/members/{}?organizationId={team}",
        member_id.as_str().unwrap()
    );
    let (status, body) = access
        .call(reqwest::Method::DELETE, &owner, &path, None)
        .await;
    assert_eq!(status, 200, "{body}");
    // Within two re-check periods the socket no longer sees the team's events.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    a.publish(&member.instance_id, &team, "team-after-removal")
        .await;
    a.publish(&member.instance_id, &member.org_id, "personal")
        .await;
    assert_eq!(labels(&c.events(1).await), vec!["personal"]);
}
