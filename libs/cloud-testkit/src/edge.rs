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
    raw_send(base, reqwest::Method::POST, route, body).await
}

async fn raw_send(
    base: &str,
    method: reqwest::Method,
    route: &JsonRoute<'_>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("{base}{}", route.path))
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

/// Short connection limits for the slow-client checks, and the environment that sets them.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header: Duration,
    pub idle: Duration,
    pub body: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(2),
            idle: Duration::from_secs(3),
            body: Duration::from_secs(2),
            max_connections: 16,
        }
    }
}

impl ConnectionLimits {
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "CHATONS_HTTP_HEADER_TIMEOUT_SECONDS",
                self.header.as_secs().to_string(),
            ),
            (
                "CHATONS_HTTP_IDLE_TIMEOUT_SECONDS",
                self.idle.as_secs().to_string(),
            ),
            (
                "CHATONS_HTTP_BODY_TIMEOUT_SECONDS",
                self.body.as_secs().to_string(),
            ),
            (
                "CHATONS_HTTP_MAX_CONNECTIONS",
                self.max_connections.to_string(),
            ),
        ]
    }
}

/// Slack on top of a limit before a test calls the server late (scheduling on a busy machine).
const SLACK: Duration = Duration::from_secs(3);

/// Reads until the peer closes; `true` when it did within `within` (EOF or reset), `false` when
/// the connection was still open. Bytes read are appended to `into`.
async fn closed_within(stream: &mut TcpStream, within: Duration, into: &mut Vec<u8>) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => into.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 response.
fn parse_raw(response: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Clients that trickle, stall or hoard connections are cut off, each by its own bound, and the
/// service keeps answering everyone else. The binary at `addr` runs with `limits` (see
/// [`ConnectionLimits::env`]); `route` is a body-reading route.
pub async fn assert_slow_clients_are_cut(
    addr: std::net::SocketAddr,
    route: JsonRoute<'_>,
    limits: ConnectionLimits,
) {
    // 1. A head sent one header line every 500 ms is cut once the header bound has passed.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n")
        .await
        .expect("write");
    let started = tokio::time::Instant::now();
    let mut cut = false;
    while started.elapsed() < limits.header + SLACK {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if slow.write_all(b"x-slow: 1\r\n").await.is_err() {
            cut = true;
            break;
        }
        let mut probe = Vec::new();
        if closed_within(&mut slow, Duration::from_millis(1), &mut probe).await {
            cut = true;
            break;
        }
        assert!(probe.is_empty(), "a partial head was answered: {probe:?}");
    }
    assert!(
        cut,
        "a request head trickled for {:?} was still being read (header bound {:?})",
        started.elapsed(),
        limits.header
    );

    // 2. A connection that never sends anything is closed within the header bound too.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut got = Vec::new();
    assert!(
        closed_within(&mut silent, limits.header + SLACK, &mut got).await,
        "a silent connection was held open past the header bound"
    );

    // 3. Keep-alive works, and an idle kept-alive connection is closed after the idle bound.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    for round in 0..2 {
        kept.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&response).contains("\"status\":\"ok\"") {
            let n = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut buf))
                .await
                .expect("keep-alive response in time")
                .expect("read");
            assert!(n > 0, "closed during keep-alive round {round}");
            response.extend_from_slice(&buf[..n]);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut rest = Vec::new();
    assert!(
        closed_within(&mut kept, limits.idle + SLACK, &mut rest).await,
        "an idle keep-alive connection was held open past the idle bound {:?}",
        limits.idle
    );

    // 4. A body that stops half-way gets a 408 JSON error once the body bound has passed.
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n",
        route.path
    );
    for (k, v) in route.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n{\"partial\":");
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let closed = closed_within(&mut stalled, limits.body + SLACK, &mut response).await;
    assert!(
        !response.is_empty(),
        "a stalled body got no answer within {:?} (closed: {closed})",
        limits.body + SLACK
    );
    let (status, body) = parse_raw(&response);
    assert_eq!(status, 408, "stalled body: {body}");
    assert_eq!(body["error"], "request_timeout", "{body}");

    // 5. Past the connection cap, a new connection is answered 503 at once.
    assert_connections_capped(addr, limits.max_connections).await;
}

/// Past `max_connections` open connections, a new one is answered 503 JSON at once; the service
/// recovers as soon as connections close.
pub async fn assert_connections_capped(addr: std::net::SocketAddr, max_connections: usize) {
    let mut hoard = Vec::new();
    for _ in 0..max_connections + 1 {
        hoard.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut refused = 0;
    let mut refusal = serde_json::Value::Null;
    for s in &mut hoard {
        let mut got = Vec::new();
        // Generous: on a loaded 2-core machine the refusal can take a while to be written.
        closed_within(s, Duration::from_millis(1500), &mut got).await;
        if !got.is_empty() {
            let (status, body) = parse_raw(&got);
            assert_eq!(status, 503, "{body}");
            refused += 1;
            refusal = body;
        }
    }
    assert!(
        refused >= 1,
        "{} connections were all accepted (cap {})",
        max_connections + 1,
        max_connections
    );
    assert_eq!(refusal["error"], "unavailable", "{refusal}");
    drop(hoard);
    let mut healthy = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(r) = reqwest::get(format!("http://{addr}/healthz")).await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
    }
    assert!(healthy, "the service did not recover after the hoard left");
}

/// Bodies no JSON route may accept: malformed, invalid UTF-8 (in a string and as raw bytes),
/// nested far deeper than any real document, a number out of range, wrongly typed roots and a
/// control character inside a string. Each is named for the failure message.
pub fn hostile_json_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let depth = 100_000;
    let mut nested_arrays = "[".repeat(depth).into_bytes();
    nested_arrays.extend("]".repeat(depth).into_bytes());
    let mut nested_objects = "{\"a\":".repeat(depth).into_bytes();
    nested_objects.extend(b"1");
    nested_objects.extend("}".repeat(depth).into_bytes());
    vec![
        ("malformed", b"{\"type\": ".to_vec()),
        (
            "invalid UTF-8 in a string",
            b"{\"type\":\"\xff\xfe\"}".to_vec(),
        ),
        ("invalid UTF-8 bytes", b"\xc3\x28\xa0\xa1".to_vec()),
        ("overlong UTF-8", b"{\"a\":\"\xc0\xaf\"}".to_vec()),
        ("lone surrogate escape", b"{\"a\":\"\\ud800\"}".to_vec()),
        ("deeply nested arrays", nested_arrays),
        ("deeply nested objects", nested_objects),
        ("huge number", b"{\"a\":1e999999}".to_vec()),
        ("array root", b"[]".to_vec()),
        ("string root", b"\"x\"".to_vec()),
        ("null root", b"null".to_vec()),
        ("raw control character", b"{\"a\":\"x\x01y\"}".to_vec()),
        ("trailing garbage", b"{} {}".to_vec()),
    ]
}

/// POSTs every [`hostile_json_bodies`] body to `route` and checks each answer is a 4xx with the
/// `{"error","message"}` envelope (never a 5xx, never a dropped connection). What the route
/// stores must be checked by the caller afterwards: nothing may have changed.
pub async fn assert_hostile_json_refused(base: &str, route: JsonRoute<'_>) {
    assert_hostile_json_refused_with(base, reqwest::Method::POST, route).await;
}

/// [`assert_hostile_json_refused`] with another method (PATCH, PUT…).
pub async fn assert_hostile_json_refused_with(
    base: &str,
    method: reqwest::Method,
    route: JsonRoute<'_>,
) {
    for (name, body) in hostile_json_bodies() {
        let (status, answer) = raw_send(base, method.clone(), &route, body).await;
        assert!(
            (400..500).contains(&status),
            "{name} on {method} {}: status {status}, {answer}",
            route.path
        );
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{name} on {method} {}: {answer}",
            route.path
        );
    }
}

/// How one request of [`assert_drain_under_load`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Complete,
    Refused,
    /// Closed before any byte of a response.
    Unanswered,
    /// A response started but did not finish.
    Truncated(String),
}

/// Reads one response (head plus `content-length` body) to the end of the connection.
async fn read_response(stream: &mut TcpStream) -> Outcome {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut got)).await;
    if got.is_empty() {
        return Outcome::Unanswered;
    }
    let text = String::from_utf8_lossy(&got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Truncated(text.into_owned());
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    if body.len() < length {
        return Outcome::Truncated(text.into_owned());
    }
    Outcome::Complete
}

/// `clients` loops each send requests whose bodies arrive in two halves 200 ms apart (so some
/// are always in flight) while SIGTERM arrives. Every request whose head was sent more than
/// 100 ms before the signal gets its complete response; later ones are either answered or
/// refused; none is ever cut off mid-response; the process exits 0 within `drain` (+5 s).
pub async fn assert_drain_under_load(
    process: &mut ServiceProcess,
    route: JsonRoute<'_>,
    clients: usize,
    drain: Duration,
) {
    let addr = process.addr;
    let body = br#"{"a":"b","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        route.path,
        body.len()
    );
    for (k, v) in route.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let signalled = std::sync::Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let head = head.clone();
        let signalled = signalled.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let Ok(mut stream) = TcpStream::connect(addr).await else {
                    results.push((Outcome::Refused, None));
                    break;
                };
                let sent = tokio::time::Instant::now();
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(&body[..10]).await.is_err()
                {
                    results.push((Outcome::Unanswered, Some(sent)));
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = stream.write_all(&body[10..]).await;
                let outcome = read_response(&mut stream).await;
                results.push((outcome, Some(sent)));
                if signalled
                    .get()
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(1))
                {
                    break;
                }
            }
            results
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = signalled.set(tokio::time::Instant::now());
    process.signal("TERM");
    let at = *signalled.get().expect("set");
    let mut complete_in_flight = 0;
    for task in tasks {
        for (outcome, sent) in task.await.expect("client task") {
            let early = sent.is_some_and(|s| s + Duration::from_millis(100) < at);
            match &outcome {
                Outcome::Complete
                    if sent.is_some_and(|s| s < at && s + Duration::from_millis(200) > at) =>
                {
                    complete_in_flight += 1
                }
                Outcome::Truncated(text) => panic!("a response was cut short: {text:?}"),
                Outcome::Unanswered | Outcome::Refused if early => {
                    panic!("a request in flight at SIGTERM was not answered: {outcome:?}")
                }
                _ => {}
            }
        }
    }
    assert!(
        complete_in_flight > 0,
        "no request was in flight when SIGTERM arrived"
    );
    let status = process.wait_exit(drain + Duration::from_secs(5)).await;
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
