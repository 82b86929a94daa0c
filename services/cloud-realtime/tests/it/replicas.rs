//! Two cloud-realtime processes on one Redis: the multi-replica guarantees.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

async fn two(setup: &Setup) -> (Replica, Replica) {
    (setup.replica().await, setup.replica().await)
}

#[tokio::test]
async fn clients_on_both_replicas_get_every_event_once_in_order() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access);
    let (a, b) = two(&setup).await;
    let user = access.user().await;
    let mut clients = vec![
        a.connect(&user).await,
        a.connect(&user).await,
        b.connect(&user).await,
        b.connect(&user).await,
    ];
    // Two publishers, one per replica, at the same time.
    let (ra, rb) = (&a, &b);
    let inst = user.instance_id.clone();
    let org = user.org_id.clone();
    let (from_a, from_b) = tokio::join!(
        async {
            let mut labels = Vec::new();
            for n in 0..25 {
                let l = format!("a{n}");
                ra.publish(&inst, &org, &l).await;
                labels.push(l);
            }
            labels
        },
        async {
            let mut labels = Vec::new();
            for n in 0..25 {
                let l = format!("b{n}");
                rb.publish(&inst, &org, &l).await;
                labels.push(l);
            }
            labels
        }
    );
    let published: HashSet<String> = from_a.iter().chain(&from_b).cloned().collect();
    let mut orders = Vec::new();
    for c in &mut clients {
        let events = c.events(50).await;
        assert_eq!(
            seqs(&events),
            (1..=50).collect::<Vec<u64>>(),
            "every seq once, in order"
        );
        let got = labels(&events);
        assert_eq!(got.iter().cloned().collect::<HashSet<_>>(), published);
        // Each publisher's own events stay in its order.
        let only_a: Vec<_> = got.iter().filter(|l| l.starts_with('a')).cloned().collect();
        assert_eq!(only_a, from_a);
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "one order for every client"
    );
}

#[tokio::test]
async fn a_client_that_reconnects_elsewhere_gets_exactly_the_missed_events() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access);
    let (a, b) = two(&setup).await;
    let user = access.user().await;
    let mut c = a.connect(&user).await;
    for n in 1..=5 {
        a.publish(&user.instance_id, &user.org_id, &format!("e{n}"))
            .await;
    }
    let seen = c.events(5).await;
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    let epoch = c.epoch();
    assert_eq!(seen[0]["epoch"], epoch.as_str());
    c.close().await;
    for n in 6..=10 {
        b.publish(&user.instance_id, &user.org_id, &format!("e{n}"))
            .await;
    }
    let mut c = b.resume(&user, &epoch, last).await;
    assert_eq!(c.hello["sequence"], 10);
    let missed = c.events(5).await;
    assert_eq!(seqs(&missed), vec![6, 7, 8, 9, 10]);
    assert_eq!(labels(&missed), vec!["e6", "e7", "e8", "e9", "e10"]);
    a.publish(&user.instance_id, &user.org_id, "e11").await;
    let live = c.events(1).await;
    assert_eq!(
        seqs(&live),
        vec![11],
        "live continues with no gap and no duplicate"
    );

    // Resuming at the head replays nothing and goes live.
    let mut d = a.resume(&user, &epoch, 11).await;
    b.publish(&user.instance_id, &user.org_id, "e12").await;
    assert_eq!(seqs(&d.events(1).await), vec![12]);

    // The same position as a first message instead of query parameters.
    let mut e = b.connect(&user).await;
    e.send_json(serde_json::json!({"type":"resume","epoch": epoch, "afterSequence": 9}))
        .await;
    assert_eq!(seqs(&e.events(3).await), vec![10, 11, 12]);
    a.publish(&user.instance_id, &user.org_id, "e13").await;
    assert_eq!(seqs(&e.events(1).await), vec![13]);
}

#[tokio::test]
async fn a_position_older_than_the_buffer_or_from_another_epoch_gets_resync() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access).with("CHATONS_REALTIME_REPLAY_BUFFER_SIZE", "5");
    let (a, b) = two(&setup).await;
    let user = access.user().await;
    let mut c = a.connect(&user).await;
    a.publish(&user.instance_id, &user.org_id, "first").await;
    assert_eq!(seqs(&c.events(1).await), vec![1]);
    let epoch = c.epoch();
    c.close().await;
    for n in 2..=11 {
        a.publish(&user.instance_id, &user.org_id, &format!("e{n}"))
            .await;
    }
    let mut c = b.resume(&user, &epoch, 1).await;
    let resync = c.next_json().await;
    assert_eq!(resync["type"], "resync", "{resync}");
    assert_eq!(resync["epoch"], epoch.as_str());
    assert_eq!(resync["sequence"], 11);
    b.publish(&user.instance_id, &user.org_id, "after").await;
    assert_eq!(seqs(&c.events(1).await), vec![12], "live after the resync");

    let mut other = a.resume(&user, "not-the-epoch", 11).await;
    let resync = other.next_json().await;
    assert_eq!(resync["type"], "resync");
    assert_eq!(resync["epoch"], epoch.as_str());
    assert_eq!(resync["sequence"], 12);

    // Over HTTP the same position is reported as truncated.
    let r: Value = reqwest::Client::new()
        .get(format!("{}/v1/realtime/replay", b.base))
        .query(&[
            ("cloudInstanceId", user.instance_id.as_str()),
            ("afterSeq", "1"),
        ])
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["truncated"], true);
    assert_eq!(r["lastSeq"], 12);
    assert_eq!(r["epoch"], epoch.as_str());
    assert_eq!(
        seqs(r["events"].as_array().unwrap()),
        vec![8, 9, 10, 11, 12]
    );
    let r: Value = reqwest::Client::new()
        .get(format!("{}/v1/realtime/replay", a.base))
        .query(&[
            ("cloudInstanceId", user.instance_id.as_str()),
            ("afterSeq", "10"),
        ])
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["truncated"], false);
    assert_eq!(seqs(r["events"].as_array().unwrap()), vec![11, 12]);
}

#[tokio::test]
async fn a_redis_outage_loses_nothing_silently() {
    let access = AccessService::start().await;
    let mut setup = Setup::new(&access);
    let proxy = setup.redis_through_proxy().await;
    let (a, b) = two(&setup).await;
    let user = access.user().await;
    let mut ca = a.connect(&user).await;
    let mut cb = b.connect(&user).await;
    let mut accepted = Vec::new();
    for n in 0..3 {
        let label = format!("before{n}");
        a.publish(&user.instance_id, &user.org_id, &label).await;
        accepted.push(label);
    }

    proxy.cut();
    let mut refused = 0;
    for n in 0..3 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let (status, body) = replica
            .publish_raw(
                &user.instance_id,
                event(&user.org_id, &format!("during{n}")),
            )
            .await;
        assert_eq!(status, 503, "publish during the outage: {body}");
        assert_eq!(body["error"], "unavailable");
        assert_eq!(body["retryable"], true);
        refused += 1;
    }
    assert_eq!(refused, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();

    // The publisher retries until Redis is back; every accepted event must arrive.
    let mut n = 0;
    while accepted.len() < 13 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let label = format!("after{n}");
        let mut tries = 0;
        loop {
            let (status, body) = replica
                .publish_raw(&user.instance_id, event(&user.org_id, &label))
                .await;
            if status == 202 {
                break;
            }
            assert_eq!(status, 503, "{body}");
            tries += 1;
            assert!(tries < 100, "Redis never came back for publishing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        accepted.push(label);
        n += 1;
    }
    for c in [&mut ca, &mut cb] {
        let events = c.events(accepted.len()).await;
        assert_eq!(
            seqs(&events),
            (1..=accepted.len() as u64).collect::<Vec<_>>()
        );
        assert_eq!(labels(&events), accepted);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_memory_stays_bounded() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access)
        .with("CHATONS_REALTIME_SOCKET_QUEUE_SIZE", "256")
        .with("CHATONS_REALTIME_SEND_TIMEOUT_SECONDS", "2");
    let a = setup.replica().await;
    let user = access.user().await;
    // A socket with a tiny receive window that never reads after its handshake.
    let token = a.token(&user).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(a.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(ws_url(a.addr, &token, None), stream)
        .await
        .expect("handshake");
    // A healthy reader on the same instance.
    let mut healthy = a.connect(&user).await;
    let before = a.rss_kib();

    let big = "x".repeat(16 * 1024);
    let total = 3000usize;
    let reader = tokio::spawn(async move {
        let events = healthy.events(total).await;
        assert_eq!(seqs(&events), (1..=total as u64).collect::<Vec<_>>());
    });
    let inst = user.instance_id.clone();
    let org = user.org_id.clone();
    let publishers: Vec<_> = (0..4)
        .map(|k| {
            let org = org.clone();
            let base = a.base.clone();
            let token = a.service_token.clone();
            let inst = inst.clone();
            let big = big.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for _ in 0..total / 4 {
                    let mut e = event(&org, "big");
                    e["payload"]["pad"] = Value::String(big.clone());
                    let r = client
                        .post(format!("{base}/v1/realtime/events"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"cloudInstanceId": inst, "event": e}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202, "publisher {k}");
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the healthy reader got every event")
        .unwrap();
    let after = a.rss_kib();
    let published_kib = (total * 16) as u64;
    assert!(
        after < before + published_kib / 3,
        "RSS grew from {before} KiB to {after} KiB while {published_kib} KiB went to a stalled socket"
    );

    // The stalled socket was cut: reading it now ends (close frame or EOF) well before it
    // could have held every event.
    use futures_util::StreamExt;
    let mut frames = 0usize;
    let mut close = None;
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(msg) = stalled.next().await {
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Text(_)) => frames += 1,
                Ok(tokio_tungstenite::tungstenite::Message::Close(c)) => {
                    close = c.map(|c| u16::from(c.code));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the stalled socket was never closed");
    assert!(
        frames < total,
        "the stalled socket received {frames} frames (all of them)"
    );
    if let Some(code) = close {
        assert_eq!(code, 4008, "slow consumer close code");
    }
    let metrics = a.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("chatons_realtime_slow_consumers_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn tokens_are_single_use_expire_and_work_on_either_replica() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access).with("CHATONS_REALTIME_TOKEN_TTL_SECONDS", "1");
    let (a, b) = two(&setup).await;
    let user = access.user().await;
    let (status, body) = a.token_raw(&user).await;
    assert_eq!(status, 200);
    assert!(
        body["expiresAt"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{body}"
    );
    assert!(
        body["websocketUrl"]
            .as_str()
            .is_some_and(|s| s.starts_with("ws")),
        "{body}"
    );
    let token = body["token"].as_str().unwrap().to_owned();
    // Minted on A, used on B.
    let c = WsClient::open(b.addr, &token, None)
        .await
        .expect_hello()
        .await;
    // Used again, on either replica: refused.
    assert_eq!(
        rejected(a.addr, &token).await,
        (1008, "invalid_token".into())
    );
    assert_eq!(
        rejected(b.addr, &token).await,
        (1008, "invalid_token".into())
    );
    drop(c);
    // Expired.
    let token = b.token(&user).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rejected(a.addr, &token).await,
        (1008, "invalid_token".into())
    );
    // Unknown and missing.
    assert_eq!(
        rejected(a.addr, "nope").await,
        (1008, "invalid_token".into())
    );
    assert_eq!(rejected(a.addr, "").await, (1008, "invalid_token".into()));
}

#[tokio::test]
async fn the_socket_cap_counts_across_replicas() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access).with("CHATONS_REALTIME_MAX_SOCKETS_PER_INSTANCE", "2");
    let (a, b) = two(&setup).await;
    let user = access.user().await;
    let first = a.connect(&user).await;
    let _second = b.connect(&user).await;
    let token = a.token(&user).await;
    assert_eq!(
        rejected(a.addr, &token).await,
        (1013, "instance_capacity_reached".into())
    );
    let token = b.token(&user).await;
    assert_eq!(
        rejected(b.addr, &token).await,
        (1013, "instance_capacity_reached".into())
    );
    first.close().await;
    // The slot is released when the socket ends.
    let mut ok = None;
    for _ in 0..50 {
        let token = b.token(&user).await;
        let mut c = WsClient::open(b.addr, &token, None).await;
        match c.frame().await {
            Frame::Json(v) if v["type"] == "hello" => {
                ok = Some(c);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        ok.is_some(),
        "a slot freed by a closed socket was never reusable"
    );
    // Another instance is not affected.
    let other = access.user().await;
    let _c = a.connect(&other).await;
}

#[tokio::test]
async fn an_event_of_organization_x_never_reaches_a_socket_of_organization_y() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access);
    let (a, b) = two(&setup).await;
    // Two tenants: their personal organizations differ.
    let x = access.user().await;
    let y = access.user().await;
    assert_ne!(x.org_id, y.org_id);
    let mut cx_a = a.connect(&x).await;
    let mut cx_b = b.connect(&x).await;
    let mut cy = b.connect(&y).await;
    // An event of organization Y published on X's instance (a misrouted publish) is stored
    // but never delivered to X's sockets, live or replayed.
    b.publish(&x.instance_id, &y.org_id, "y-on-x").await;
    a.publish(&x.instance_id, &x.org_id, "x-1").await;
    a.publish(&y.instance_id, &y.org_id, "y-1").await;
    b.publish(&y.instance_id, &x.org_id, "x-on-y").await;
    b.publish(&y.instance_id, &y.org_id, "y-2").await;
    for c in [&mut cx_a, &mut cx_b] {
        let got = c.events(1).await;
        assert_eq!(labels(&got), vec!["x-1"]);
        assert_eq!(seqs(&got), vec![2], "seq 1 (organization Y) was skipped");
    }
    let got = cy.events(2).await;
    assert_eq!(labels(&got), vec!["y-1", "y-2"]);
    a.publish(&x.instance_id, &x.org_id, "x-2").await;
    assert_eq!(labels(&cx_a.events(1).await), vec!["x-2"]);
    let mut rx = a.resume(&x, &cx_a.epoch(), 0).await;
    assert_eq!(labels(&rx.events(2).await), vec!["x-1", "x-2"]);
    for (user, expected) in [(&x, vec!["x-1", "x-2"]), (&y, vec!["y-1", "y-2"])] {
        let r: Value = reqwest::Client::new()
            .get(format!("{}/v1/realtime/replay", b.base))
            .query(&[("cloudInstanceId", user.instance_id.as_str())])
            .bearer_auth(&user.access_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(labels(r["events"].as_array().unwrap()), expected);
    }
    // Neither user can watch the other's instance.
    let (status, _) = a
        .token_raw(&User {
            instance_id: y.instance_id.clone(),
            ..x.clone()
        })
        .await;
    assert_eq!(status, 403);
    // An event without an organization is refused at publish.
    let mut e = event(&x.org_id, "no-org");
    e.as_object_mut().unwrap().remove("organizationId");
    let (status, body) = a.publish_raw(&x.instance_id, e).await;
    assert_eq!(status, 400, "{body}");
}
