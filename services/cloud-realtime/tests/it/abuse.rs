//! What a hostile client may send cloud-realtime, and what it gets: websocket frames that are too
//! big, too many, not UTF-8 or not JSON; hostile JSON bodies and query strings on every route;
//! token strings chosen to hit other keys in Redis. Each is refused with a clear code and
//! changes nothing others can see.

use cloud_testkit::edge::{JsonRoute, assert_hostile_json_refused};
use futures_util::{SinkExt, StreamExt};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};

use crate::helpers::*;

/// Sends `messages` from a task of its own (the server may stop reading at any point) while
/// reading what the server answers; returns the close frame's code and reason.
async fn close_after(client: WsClient, messages: Vec<Message>) -> (u16, String) {
    let (mut tx, mut rx) = client.ws.split();
    let writer = tokio::spawn(async move {
        for m in messages {
            if tx.send(m).await.is_err() {
                break;
            }
        }
        tx
    });
    let close = tokio::time::timeout(WAIT, async {
        while let Some(frame) = rx.next().await {
            match frame {
                Ok(Message::Close(Some(c))) => {
                    return Some((u16::from(c.code), c.reason.to_string()));
                }
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    })
    .await
    .expect("no close within the wait");
    writer.abort();
    close.expect("the connection ended without a close frame")
}

/// A client message over 64 KiB closes the socket with 1009; memory does not grow with what
/// clients try to send, and everyone else keeps being served.
#[tokio::test]
async fn oversized_client_frames_close_with_1009_and_memory_stays_bounded() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let user = access.user().await;
    let mut watcher = a.connect(&user).await;
    let before = a.rss_kib();
    for _ in 0..6 {
        let c = a.connect(&user).await;
        // 4 MiB in one frame: refused from its header, never buffered.
        let big = Message::Text("x".repeat(4 << 20).into());
        assert_eq!(
            close_after(c, vec![big]).await,
            (1009, "message_too_big".into())
        );
    }
    // Just over the limit, in fragments of 16 KiB: the message total counts.
    let c = a.connect(&user).await;
    let mut fragments = Vec::new();
    for i in 0..5 {
        let header = FrameHeader {
            is_final: i == 4,
            opcode: if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            },
            ..FrameHeader::default()
        };
        let payload = vec![b'y'; 16 * 1024 + usize::from(i == 4)];
        fragments.push(Message::Frame(WsFrame::from_payload(
            header,
            payload.into(),
        )));
    }
    assert_eq!(
        close_after(c, fragments).await,
        (1009, "message_too_big".into())
    );
    let grown = a.rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB while clients sent 24 MiB of refused frames"
    );
    let seq = a
        .publish(&user.instance_id, &user.org_id, "still-served")
        .await;
    assert_eq!(watcher.events(1).await[0]["seq"], seq);
}

/// A flood of frames (text or pings) closes the socket with 1008 `message_rate_exceeded`.
#[tokio::test]
async fn frame_floods_close_with_1008() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let user = access.user().await;
    let text_flood: Vec<Message> = (0..500)
        .map(|i| {
            let frame = json!({"type": "resume", "epoch": "x", "afterSequence": i});
            Message::Text(frame.to_string().into())
        })
        .collect();
    let c = a.connect(&user).await;
    assert_eq!(
        close_after(c, text_flood).await,
        (1008, "message_rate_exceeded".into())
    );
    let ping_flood: Vec<Message> = (0..500)
        .map(|_| Message::Ping(vec![1, 2, 3].into()))
        .collect();
    let c = a.connect(&user).await;
    assert_eq!(
        close_after(c, ping_flood).await,
        (1008, "message_rate_exceeded".into())
    );
    // A client within the budget is unaffected.
    let mut calm = a.connect(&user).await;
    for _ in 0..20 {
        calm.send_json(json!({"type": "hello-there"})).await;
    }
    let seq = a.publish(&user.instance_id, &user.org_id, "calm").await;
    assert_eq!(calm.events(1).await[0]["seq"], seq);
}

/// Text frames that are not UTF-8 close with 1007; text that is not a known JSON message
/// (malformed, deeply nested, wrong types) is ignored and the socket keeps its stream.
#[tokio::test]
async fn invalid_client_text_is_refused_or_ignored() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let user = access.user().await;

    let c = a.connect(&user).await;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let frame = WsFrame::from_payload(header, vec![0xff, 0xfe, 0x80].into());
    assert_eq!(
        close_after(c, vec![Message::Frame(frame)]).await,
        (1007, "invalid_utf8".into())
    );

    let mut c = a.connect(&user).await;
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    for garbage in [
        "{\"type\":\"resume\"".to_owned(),
        nested,
        "{\"type\":\"resume\",\"afterSequence\":\"seven\"}".to_owned(),
        "{\"type\":\"resume\",\"afterSequence\":-1}".to_owned(),
        "[1,2,3]".to_owned(),
        "null".to_owned(),
        "\u{0}\u{1}".to_owned(),
    ] {
        c.ws.send(Message::Text(garbage.into()))
            .await
            .expect("send");
    }
    c.ws.send(Message::Binary(vec![0u8; 1024].into()))
        .await
        .expect("send binary");
    let seq = a
        .publish(&user.instance_id, &user.org_id, "after-garbage")
        .await;
    let events = c.events(1).await;
    assert_eq!(events[0]["seq"], seq, "{events:?}");
}

/// Hostile JSON on the publish route is a 4xx JSON error and stores nothing: the next valid
/// publish is still the stream's first event.
#[tokio::test]
async fn hostile_json_on_publish_stores_nothing() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let user = access.user().await;
    let auth = format!("Bearer {}", a.service_token);
    assert_hostile_json_refused(
        &a.base,
        JsonRoute {
            path: "/v1/realtime/events",
            headers: &[("authorization", auth.as_str())],
        },
    )
    .await;
    // Well-formed JSON with hostile contents.
    for body in [
        json!({"cloudInstanceId": user.instance_id, "event": "text"}),
        json!({"cloudInstanceId": "a:b", "event": event(&user.org_id, "x")}),
        json!({"cloudInstanceId": "x".repeat(5000), "event": event(&user.org_id, "x")}),
        json!({"cloudInstanceId": user.instance_id, "event": {"id": "e", "type": "t", "organizationId": user.org_id, "payload": [1]}}),
        json!({"cloudInstanceId": user.instance_id, "event": {"id": "e", "type": "t", "payload": {}}}),
    ] {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/realtime/events", a.base))
            .bearer_auth(&a.service_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert!(answer["message"].is_string(), "{answer}");
    }
    assert_eq!(a.publish(&user.instance_id, &user.org_id, "first").await, 1);
}

/// Hostile query strings on the GET routes: 4xx JSON, never a 5xx.
#[tokio::test]
async fn hostile_query_strings_are_4xx_json() {
    let access = AccessService::start().await;
    let a = Setup::new(&access).replica().await;
    let user = access.user().await;
    let client = reqwest::Client::new();
    for query in [
        "cloudInstanceId=%FF%FE",
        "cloudInstanceId=a%00b",
        "cloudInstanceId=..%2F..%2Fetc",
        "cloudInstanceId=token:abc",
        "cloudInstanceId=*",
        "cloudInstanceId[]=x&cloudInstanceId[]=y",
    ] {
        for path in ["/v1/realtime/token", "/v1/realtime/replay"] {
            let r = client
                .get(format!("{}{path}?{query}", a.base))
                .bearer_auth(&user.access_token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                (400..500).contains(&status),
                "{path}?{query}: {status} {body}"
            );
            assert!(body["error"].is_string(), "{path}?{query}: {body}");
        }
    }
}

/// An instance may be named `token`: its keys and the websocket tokens no longer share a key
/// space, so token strings named after its keys are just unknown tokens (1008), its retry
/// dedup survives them, and real tokens still work on every replica.
#[tokio::test]
async fn an_instance_named_token_shares_no_keys_with_websocket_tokens() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access);
    let (a, b) = (setup.replica().await, setup.replica().await);
    let owner = access.user().await;
    let user = User {
        instance_id: "token".into(),
        ..owner
    };
    let mut watcher = a.connect(&user).await;
    let first = event(&user.org_id, "one");
    let event_id = first["id"].as_str().unwrap().to_owned();
    let (status, body) = a.publish_raw("token", first.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["seq"], 1);
    assert_eq!(watcher.events(1).await[0]["seq"], 1);

    // Strings that name the instance's keys in the old shared key space.
    for name in ["meta", "replay", "sockets", &format!("id:{event_id}")] {
        assert_eq!(
            rejected(b.addr, name).await,
            (1008, "invalid_token".into()),
            "token {name:?}"
        );
    }
    // The dedup key was not consumed: the retried publish is still recognised.
    let (_, retried) = a.publish_raw("token", first).await;
    assert_eq!(retried["seq"], 1, "the retried publish was stored again");

    // Tokens live under their own namespace, which no instance id can produce.
    let client = redis::Client::open(cloud_testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let token = a.token(&user).await;
    let stored: Option<String> = conn
        .get(format!("{}:token:{token}", setup.prefix))
        .await
        .unwrap();
    assert!(stored.is_some(), "token not under P:token:");
    let shared: Vec<String> = conn.keys(format!("{}token:*", setup.prefix)).await.unwrap();
    assert!(
        shared.iter().all(|k| !k.ends_with(&token)),
        "token stored in the instance key space: {shared:?}"
    );
    // Minted on A, used on B.
    let mut c = WsClient::open(b.addr, &token, None)
        .await
        .expect_hello()
        .await;
    assert_eq!(c.hello["cloudInstanceId"], "token");

    // A token minted by a replica of the previous release (old key) is still honoured once.
    let legacy = cloud_realtime::http::token::new_token();
    let grant = json!({
        "cloudInstanceId": user.instance_id,
        "audience": {"userId": "u", "organizationId": user.org_id, "organizationIds": [user.org_id]},
        "expiresAt": "2099-01-01T00:00:00.000Z",
    });
    let _: () = conn
        .set_ex(
            format!("{}token:{legacy}", setup.prefix),
            grant.to_string(),
            60,
        )
        .await
        .unwrap();
    let _old = WsClient::open(b.addr, &legacy, None)
        .await
        .expect_hello()
        .await;
    assert_eq!(
        rejected(a.addr, &legacy).await,
        (1008, "invalid_token".into()),
        "a legacy token used twice"
    );
    let seq = a.publish("token", &user.org_id, "two").await;
    assert_eq!(c.events(1).await[0]["seq"], seq);
}
