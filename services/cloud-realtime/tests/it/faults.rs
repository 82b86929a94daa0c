//! Faults survived by cloud-realtime as real processes: its Redis restarted (every key lost),
//! one of two replicas killed with SIGKILL while events flow, SIGTERM under load.

use std::time::Duration;

use cloud_testkit::edge::{JsonRoute, assert_drain_under_load};
use cloud_testkit::servers::PrivateRedis;
use serde_json::Value;

use crate::helpers::*;

/// Publishes `label`, retrying 503s (same event id, as a real publisher does) until accepted.
async fn publish_retrying(replica: &Replica, user: &User, label: &str) -> u64 {
    let e = event(&user.org_id, label);
    for _ in 0..150 {
        let Ok((status, body)) = tokio::time::timeout(
            Duration::from_secs(10),
            replica.publish_raw(&user.instance_id, e.clone()),
        )
        .await
        else {
            panic!("publish of {label} got no answer within 10 s");
        };
        match status {
            202 => return body["seq"].as_u64().expect("seq"),
            503 => {
                assert_eq!(body["retryable"], true, "{body}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("publish of {label}: {other} {body}"),
        }
    }
    panic!("{label} was never accepted");
}

/// What a client saw after the restart: a resync naming the new epoch and the position the
/// stream continues from, then every event after that position, in order. Events published
/// before this replica's subscription came back are covered by the resync (the client reloads
/// what it shows), so the resync's sequence may be past 0; nothing after it may be missing.
async fn after_restart(c: &mut WsClient, old_epoch: &str, want: &[String]) {
    let mut got = Vec::new();
    let mut resumed_at = None;
    while resumed_at.is_none_or(|from: usize| from + got.len() < want.len()) {
        match c.frame().await {
            Frame::Json(v) if v["type"] == "resync" => {
                assert_ne!(
                    v["epoch"], old_epoch,
                    "a resync must name the new epoch: {v}"
                );
                assert!(got.is_empty(), "a second resync after events: {v}");
                let from = v["sequence"].as_u64().expect("resync sequence") as usize;
                assert!(from <= want.len(), "resync ahead of the stream: {v}");
                resumed_at = Some(from);
            }
            Frame::Json(v) if v["seq"].is_u64() => {
                assert!(
                    resumed_at.is_some(),
                    "an event of the new stream arrived before any resync: {v}"
                );
                assert_ne!(v["epoch"], old_epoch, "{v}");
                got.push(v);
            }
            Frame::Json(_) => {}
            Frame::Closed(c) => panic!("socket closed ({c:?}) during the restart"),
        }
    }
    let from = resumed_at.unwrap_or_default();
    assert_eq!(labels(&got), want[from..]);
    assert_eq!(
        seqs(&got),
        (from as u64 + 1..=want.len() as u64).collect::<Vec<_>>()
    );
}

/// Redis is killed and restarted empty (no persistence): publishes are refused as retryable
/// while it is down, sockets stay open, and once it is back every socket is told to resync (the
/// stream's history is gone) and then receives every new event in order — nothing is missed
/// silently.
#[tokio::test]
async fn a_redis_restart_makes_every_socket_resync_and_loses_nothing_after() {
    let mut redis = PrivateRedis::start();
    let access = AccessService::start().await;
    let mut setup = Setup::new(&access);
    setup.redis_url = Some(redis.url());
    let (a, b) = (setup.replica().await, setup.replica().await);
    let user = access.user().await;
    let mut ca = a.connect(&user).await;
    let mut cb = b.connect(&user).await;
    let before: Vec<String> = (0..5).map(|n| format!("before{n}")).collect();
    for label in &before {
        a.publish(&user.instance_id, &user.org_id, label).await;
    }
    let epoch = ca.epoch();
    for c in [&mut ca, &mut cb] {
        assert_eq!(labels(&c.events(5).await), before);
    }

    redis.kill();
    let (status, body) = b
        .publish_raw(&user.instance_id, event(&user.org_id, "during"))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["retryable"], true);
    cloud_testkit::wait_for_readiness(&a.base, 503, "Redis down").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.start_again();
    cloud_testkit::wait_for_readiness(&a.base, 204, "Redis back (A)").await;
    cloud_testkit::wait_for_readiness(&b.base, 204, "Redis back (B)").await;

    let after: Vec<String> = (0..8).map(|n| format!("after{n}")).collect();
    for (n, label) in after.iter().enumerate() {
        let replica = if n % 2 == 0 { &a } else { &b };
        publish_retrying(replica, &user, label).await;
    }
    after_restart(&mut ca, &epoch, &after).await;
    after_restart(&mut cb, &epoch, &after).await;
}

/// A publisher keeps publishing through replica B while a client watches on replica A; A is
/// killed with SIGKILL. The client reconnects to B from its last position and receives exactly
/// the events it missed, then the live ones: every event once, in order.
#[tokio::test]
async fn a_replica_killed_under_load_loses_no_event_for_its_clients() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access);
    let (mut a, b) = (setup.replica().await, setup.replica().await);
    let user = access.user().await;
    let mut client = a.connect(&user).await;
    let epoch = client.epoch();
    let total = 150u64;
    let publisher = {
        let (user, base, token) = (user.clone(), b.base.clone(), b.service_token.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..total {
                let r = http
                    .post(format!("{base}/v1/realtime/events"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"cloudInstanceId": user.instance_id, "event": event(&user.org_id, &format!("e{n}"))}))
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(r.status(), 202);
                tokio::time::sleep(Duration::from_millis(8)).await;
            }
        })
    };
    let mut seen: Vec<Value> = client.events(20).await;
    a.process.signal("KILL");
    let _ = a.process.wait_exit(Duration::from_secs(5)).await;
    // Whatever was still in flight on the dead socket is lost to it; the position is not.
    loop {
        match client.frame().await {
            Frame::Json(v) if v["seq"].is_u64() => seen.push(v),
            Frame::Json(_) => {}
            Frame::Closed(_) => break,
        }
    }
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    let mut resumed = b.resume(&user, &epoch, last).await;
    let rest = resumed.events((total - last) as usize).await;
    publisher.await.unwrap();
    seen.extend(rest);
    assert_eq!(seqs(&seen), (1..=total).collect::<Vec<_>>());
    let want: Vec<String> = (0..total).map(|n| format!("e{n}")).collect();
    assert_eq!(labels(&seen), want);
}

/// SIGTERM while eight clients keep publishes in flight: none is cut short.
#[tokio::test]
async fn sigterm_under_load_cuts_no_request_short() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access).with("CHATONS_SHUTDOWN_DRAIN_SECONDS", "3");
    let mut a = setup.replica().await;
    let auth = format!("Bearer {}", a.service_token);
    assert_drain_under_load(
        &mut a.process,
        JsonRoute {
            path: "/v1/realtime/events",
            headers: &[("authorization", auth.as_str())],
        },
        8,
        Duration::from_secs(3),
    )
    .await;
}
