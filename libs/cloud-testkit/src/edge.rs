//! Assertions every service must pass at its HTTP edge, written once: oversized, malformed and
//! unrouted requests get JSON errors; SIGTERM lets an in-flight request finish while new
//! connections are refused and the process exits 0.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::ServiceProcess;

/// A request to a body-reading route: path plus extra headers (e.g. authorization).
pub struct JsonRoute<'a> {
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

async fn raw_post(base: &str, route: &JsonRoute<'_>, body: Vec<u8>) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{base}{}", route.path))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in route.headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    assert!(
        ct.starts_with("application/json"),
        "status {status}: content-type {ct:?}, body {text:?}"
    );
    (
        status,
        serde_json::from_str(&text).expect("JSON error body"),
    )
}

/// 413 for a body over `limit`, 400 for malformed JSON and for a JSON `null`, 404 for an
/// unknown route — each with the `{"error","message"}` envelope.
pub async fn assert_json_edges(base: &str, route: JsonRoute<'_>, limit: usize) {
    let mut big = br#"{"pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', limit + 16));
    big.extend(br#""}"#);
    let (status, body) = raw_post(base, &route, big).await;
    assert_eq!(status, 413, "oversized body: {body}");
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains(&limit.to_string()),
        "{body}"
    );

    let (status, body) = raw_post(base, &route, b"{\"unterminated".to_vec()).await;
    assert_eq!(status, 400, "malformed JSON: {body}");
    assert_eq!(body["error"], "invalid_request");

    let (status, body) = raw_post(base, &route, b"[1,2,3]".to_vec()).await;
    assert_eq!(status, 400, "wrongly typed JSON: {body}");

    let resp = reqwest::get(format!("{base}/no/such/route?x=1"))
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 404);
    let body: serde_json::Value = resp.json().await.expect("404 JSON");
    assert_eq!(body["error"], "not_found");
    assert_eq!(body["message"], "No route for GET /no/such/route");
}

/// Sends a request whose body trickles in, sends SIGTERM half-way, and checks that the request
/// still completes, that new connections are refused meanwhile and that the process exits 0
/// within `drain` (+ a small margin).
pub async fn assert_graceful_drain(
    process: &mut ServiceProcess,
    route: JsonRoute<'_>,
    drain: Duration,
) {
    let body = br#"{"a":"b","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        route.path,
        process.addr,
        body.len()
    );
    for (k, v) in route.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(process.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream
        .write_all(&body[..10])
        .await
        .expect("write first part");
    tokio::time::sleep(Duration::from_millis(300)).await;

    process.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(process.addr)).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a new connection was accepted after SIGTERM"
    );

    stream
        .write_all(&body[10..])
        .await
        .expect("write rest of body");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("in-flight response within 5 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.starts_with("HTTP/1.1 "),
        "in-flight request got no response: {text:?}"
    );

    let status = process.wait_exit(drain + Duration::from_secs(5)).await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
