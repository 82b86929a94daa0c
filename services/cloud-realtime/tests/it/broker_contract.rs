//! One contract, two brokers: every test runs against the in-process broker and against Redis
//! (real server, a fresh key prefix per test).

use std::sync::Arc;
use std::time::Duration;

use cloud_common::realtime::EventEnvelope;
use cloud_common::server::Shutdown;
use cloud_realtime::broker::{
    DynBroker, Live, LocalFanout, MemoryBroker, Recv, RedisBroker, TokenGrant,
};
use cloud_realtime::http::token::new_token;
use cloud_realtime::hub::Audience;
use futures_util::future::BoxFuture;
use serde_json::json;

type LoseFn = Box<dyn Fn(&str) -> BoxFuture<'static, ()> + Send + Sync>;

struct Subject {
    broker: DynBroker,
    /// Loses an instance's history (as a Redis flush would).
    lose: LoseFn,
    _shutdown: Shutdown,
}

async fn memory(buffer: usize) -> Subject {
    let b = Arc::new(MemoryBroker::new(
        LocalFanout::new(64),
        buffer,
        Duration::from_secs(3600),
    ));
    let lose_b = b.clone();
    Subject {
        broker: b,
        lose: Box::new(move |i: &str| {
            lose_b.forget(i);
            Box::pin(async {})
        }),
        _shutdown: Shutdown::new(),
    }
}

async fn redis(buffer: usize) -> Subject {
    let url = cloud_testkit::redis_url();
    let prefix = cloud_testkit::redis_prefix();
    let shutdown = Shutdown::new();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let b = RedisBroker::connect(
        client.clone(),
        prefix.clone(),
        LocalFanout::new(64),
        buffer,
        Duration::from_secs(3600),
        shutdown.clone(),
    )
    .await
    .expect("connect to Redis");
    Subject {
        broker: Arc::new(b),
        lose: Box::new(move |i: &str| {
            let keys = vec![format!("{prefix}{i}:meta"), format!("{prefix}{i}:replay")];
            let client = client.clone();
            Box::pin(async move {
                let mut c = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("redis");
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut c)
                    .await
                    .expect("DEL");
            })
        }),
        _shutdown: shutdown,
    }
}

impl Drop for Subject {
    fn drop(&mut self) {
        self._shutdown.trigger();
    }
}

fn event(n: u32) -> EventEnvelope {
    let mut e = EventEnvelope::new(
        "conversation.event",
        json!({"n": n, "nested": {"list": [], "obj": {}}}),
    );
    e.organization_id = Some("org-1".into());
    e
}

/// Waits until the subscriber is attached (Redis) by publishing probes on another instance.
async fn settle(s: &Subject) {
    let mut sub = s.broker.subscribe("probe");
    for _ in 0..100 {
        s.broker.publish("probe", &event(0)).await.expect("probe");
        if tokio::time::timeout(Duration::from_millis(100), async {
            loop {
                if let Recv::Live(Live::Event(_)) = sub.recv().await {
                    return;
                }
            }
        })
        .await
        .is_ok()
        {
            return;
        }
    }
    panic!("the broker's subscriber never delivered a probe");
}

macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::memory(5).await).await;
            }
            #[tokio::test]
            async fn redis() {
                super::$name(super::redis(5).await).await;
            }
        }
    };
}

contract!(sequences_start_at_one_and_replay_in_order);
async fn sequences_start_at_one_and_replay_in_order(s: Subject) {
    let empty = s.broker.read("i1", 0).await.unwrap();
    assert_eq!(empty.snapshot.last_seq, 0);
    assert!(empty.events.is_empty());
    for n in 1..=3 {
        let p = s.broker.publish("i1", &event(n)).await.unwrap();
        assert_eq!(p.seq, u64::from(n));
        assert_eq!(p.epoch, empty.snapshot.epoch, "epoch is stable");
    }
    let r = s.broker.read("i1", 1).await.unwrap();
    assert_eq!(r.snapshot.last_seq, 3);
    assert_eq!(r.snapshot.first_seq, 1);
    let seqs: Vec<u64> = r.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![2, 3]);
    let stored: serde_json::Value = serde_json::from_slice(r.events[0].json()).unwrap();
    assert_eq!(stored["seq"], 2);
    assert_eq!(stored["epoch"], r.snapshot.epoch.as_str());
    assert_eq!(
        stored["payload"],
        json!({"n": 2, "nested": {"list": [], "obj": {}}})
    );
    assert_eq!(stored["organizationId"], "org-1");
    // Other instances have their own streams.
    assert_eq!(s.broker.publish("i2", &event(9)).await.unwrap().seq, 1);
}

contract!(the_buffer_is_bounded_and_reports_truncation);
async fn the_buffer_is_bounded_and_reports_truncation(s: Subject) {
    for n in 1..=12 {
        s.broker.publish("i1", &event(n)).await.unwrap();
    }
    let r = s.broker.read("i1", 0).await.unwrap();
    assert_eq!(r.snapshot.last_seq, 12);
    assert_eq!(r.snapshot.first_seq, 8, "buffer of 5 holds 8..=12");
    assert_eq!(r.events.len(), 5);
    assert!(r.snapshot.truncated_after(3));
    assert!(!r.snapshot.truncated_after(7));
    let r = s.broker.read("i1", 10).await.unwrap();
    assert_eq!(
        r.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11, 12]
    );
    assert!(s.broker.read("i1", 12).await.unwrap().events.is_empty());
}

contract!(a_retried_event_id_is_not_published_twice);
async fn a_retried_event_id_is_not_published_twice(s: Subject) {
    let e = event(1);
    let first = s.broker.publish("i1", &e).await.unwrap();
    let again = s.broker.publish("i1", &e).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(s.broker.publish("i1", &event(2)).await.unwrap().seq, 2);
    assert_eq!(s.broker.read("i1", 0).await.unwrap().events.len(), 2);
}

contract!(subscribers_see_one_order);
async fn subscribers_see_one_order(s: Subject) {
    settle(&s).await;
    let mut a = s.broker.subscribe("i1");
    let mut b = s.broker.subscribe("i1");
    let broker = s.broker.clone();
    let publishers: Vec<_> = (0..4)
        .map(|k| {
            let broker = broker.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    broker.publish("i1", &event(k * 100 + n)).await.unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for sub in [&mut a, &mut b] {
        let mut seqs = Vec::new();
        while seqs.len() < 40 {
            match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
                Ok(Recv::Live(Live::Event(e))) => seqs.push(e.seq),
                Ok(Recv::Live(Live::Reset)) => {}
                other => panic!("expected 40 events, got {} then {other:?}", seqs.len()),
            }
        }
        assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
    }
}

contract!(lost_history_starts_a_new_epoch);
async fn lost_history_starts_a_new_epoch(s: Subject) {
    let first = s.broker.publish("i1", &event(1)).await.unwrap();
    s.broker.publish("i1", &event(2)).await.unwrap();
    (s.lose)("i1").await;
    let r = s.broker.read("i1", 2).await.unwrap();
    assert_ne!(r.snapshot.epoch, first.epoch);
    assert_eq!(r.snapshot.last_seq, 0);
    let p = s.broker.publish("i1", &event(3)).await.unwrap();
    assert_eq!(p.seq, 1);
    assert_eq!(p.epoch, r.snapshot.epoch);
}

contract!(tokens_are_single_use_and_expire);
async fn tokens_are_single_use_and_expire(s: Subject) {
    let grant = TokenGrant {
        cloud_instance_id: "i1".into(),
        audience: Audience {
            user_id: "u1".into(),
            organization_id: "o1".into(),
            organization_ids: ["o1".to_owned()].into_iter().collect(),
        },
        expires_at: "2026-01-01T00:00:00.000Z".into(),
    };
    let (t1, t2) = (new_token(), new_token());
    s.broker
        .put_token(&t1, &grant, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.broker.take_token(&t1).await.unwrap(), Some(grant.clone()));
    assert_eq!(s.broker.take_token(&t1).await.unwrap(), None, "single use");
    assert_eq!(s.broker.take_token(&new_token()).await.unwrap(), None);
    s.broker
        .put_token(&t2, &grant, Duration::from_millis(150))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.broker.sweep().await;
    assert_eq!(s.broker.take_token(&t2).await.unwrap(), None, "expired");
    // A string that was never minted is unknown without a look-up, whatever it is named after.
    for odd in ["meta", "replay", "sockets", "id:e1", "", "*"] {
        assert_eq!(s.broker.take_token(odd).await.unwrap(), None, "{odd:?}");
    }
}

contract!(socket_slots_are_capped_and_released);
async fn socket_slots_are_capped_and_released(s: Subject) {
    let lease = Duration::from_secs(60);
    assert!(s.broker.acquire_slot("i1", "a", 2, lease).await.unwrap());
    assert!(s.broker.acquire_slot("i1", "b", 2, lease).await.unwrap());
    assert!(!s.broker.acquire_slot("i1", "c", 2, lease).await.unwrap());
    assert!(
        s.broker.acquire_slot("i2", "c", 2, lease).await.unwrap(),
        "per instance"
    );
    s.broker.refresh_slot("i1", "a", lease).await.unwrap();
    s.broker.release_slot("i1", "a").await.unwrap();
    assert!(s.broker.acquire_slot("i1", "c", 2, lease).await.unwrap());
}
