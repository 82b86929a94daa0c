//! Test harness: the access service (cloud-api's internal realtime access endpoint), replicas
//! of cloud-realtime as real processes, websocket clients and a publisher.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use cloud_common::config::Env;
use cloud_common::server::Shutdown;
use cloud_testkit::process::ServiceProcess;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(15);

/// A user with a registered cloud instance, as cloud-api knows it.
#[derive(Debug, Clone)]
pub struct User {
    pub access_token: String,
    pub instance_id: String,
    /// The user's active (personal) organization.
    pub org_id: String,
}

/// The real cloud-api library, mounted in this test process on 127.0.0.1:0 with its
/// in-memory store; cloud-realtime replicas call its internal realtime access endpoint.
pub struct AccessService {
    pub base: String,
    pub service_token: String,
    shutdown: Shutdown,
}

impl AccessService {
    pub async fn start() -> Self {
        let service_token = cloud_testkit::random_token();
        let data_dir = std::env::temp_dir().join("chatons-realtime-tests");
        let vars = vec![
            (
                "CHATONS_INTERNAL_SERVICE_TOKEN".to_owned(),
                service_token.clone(),
            ),
            (
                "CHATONS_DATA_DIR".to_owned(),
                data_dir.to_string_lossy().into_owned(),
            ),
            // Addresses count as verified (the in-memory store has no mailbox to read), so
            // test users can invite one another.
            (
                "CHATONS_DEV_AUTO_VERIFY_EMAILS".to_owned(),
                "true".to_owned(),
            ),
        ];
        let config = cloud_api::Config::from_env(&Env::from_pairs(vars)).expect("cloud-api config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = Shutdown::new();
        let server = tokio::spawn(cloud_api::run(config, listener, shutdown.clone()));
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                && r.status() == 204
            {
                ready = true;
                break;
            }
            assert!(
                !server.is_finished(),
                "cloud-api stopped at start: {:?}",
                server.await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "cloud-api did not become ready at {base}");
        Self {
            base,
            service_token,
            shutdown,
        }
    }

    /// Signs a new user up and registers a new desktop instance for it.
    /// `POST`/`DELETE` with a user's bearer token on cloud-api: `(status, JSON body)`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        user: &User,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&user.access_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("cloud-api call");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn user(&self) -> User {
        let client = reqwest::Client::new();
        let email = format!("rt{}@example.com", cloud_testkit::random_token());
        let r = client
            .post(format!("{}/v1/web/signup", self.base))
            .json(&json!({"email": email, "displayName": "Realtime Tester", "password": "correct horse battery staple"}))
            .send()
            .await
            .expect("signup");
        assert_eq!(r.status(), 201, "signup");
        let body: Value = r.json().await.expect("signup body");
        let access_token = body["session"]["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned();
        let instance_id = uuid::Uuid::new_v4().to_string();
        let r = client
            .post(format!("{}/v1/cloud-instances", self.base))
            .bearer_auth(&access_token)
            .json(&json!({"id": instance_id, "name": "Test desktop"}))
            .send()
            .await
            .expect("register instance");
        assert_eq!(r.status(), 201, "register instance");
        let account: Value = client
            .get(format!("{}/v1/account", self.base))
            .bearer_auth(&access_token)
            .send()
            .await
            .expect("account")
            .json()
            .await
            .expect("account body");
        let org_id = account["activeOrganizationId"]
            .as_str()
            .expect("active organization")
            .to_owned();
        User {
            access_token,
            instance_id,
            org_id,
        }
    }

    /// Stops cloud-api (to test its outage).
    pub fn stop(&self) {
        self.shutdown.trigger();
    }
}

impl Drop for AccessService {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Environment shared by the replicas of one test.
pub struct Setup {
    pub service_token: String,
    pub prefix: String,
    pub redis_url: Option<String>,
    pub cloud_api_url: String,
    pub extra: Vec<(&'static str, String)>,
}

impl Setup {
    pub fn new(access: &AccessService) -> Self {
        Self {
            service_token: access.service_token.clone(),
            prefix: cloud_testkit::redis_prefix(),
            redis_url: Some(cloud_testkit::redis_url()),
            cloud_api_url: access.base.clone(),
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// Routes the replicas' Redis connections through a proxy the test can cut and restore.
    pub async fn redis_through_proxy(&mut self) -> cloud_testkit::proxy::TcpProxy {
        let redis = cloud_testkit::redis_url();
        let proxy =
            cloud_testkit::proxy::TcpProxy::start(cloud_testkit::proxy::target_of(&redis)).await;
        self.redis_url = Some(proxy.rewrite_url(&redis));
        proxy
    }

    pub fn without_redis(mut self) -> Self {
        self.redis_url = None;
        self
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CHATONS_INTERNAL_SERVICE_TOKEN", self.service_token.clone()),
            ("CHATONS_REALTIME_CHANNEL_PREFIX", self.prefix.clone()),
            ("CHATONS_CLOUD_API_URL", self.cloud_api_url.clone()),
            ("RUST_LOG", "info".to_owned()),
        ];
        if let Some(url) = &self.redis_url {
            env.push(("REDIS_URL", url.clone()));
        }
        env.extend(self.extra.iter().cloned());
        env
    }

    pub async fn replica(&self) -> Replica {
        let process =
            ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-realtime"), &self.env()).await;
        let replica = Replica {
            base: process.url(),
            addr: process.addr,
            service_token: self.service_token.clone(),
            process,
        };
        replica.wait_ready().await;
        replica
    }
}

pub struct Replica {
    pub base: String,
    pub addr: SocketAddr,
    pub service_token: String,
    pub process: ServiceProcess,
}

impl Replica {
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 204
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica {} never became ready", self.base);
    }

    /// Mints a websocket token for `user`.
    pub async fn token(&self, user: &User) -> String {
        let (status, body) = self.token_raw(user).await;
        assert_eq!(status, 200, "token: {body}");
        body["token"].as_str().expect("token string").to_owned()
    }

    pub async fn token_raw(&self, user: &User) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/realtime/token", self.base))
            .query(&[("cloudInstanceId", user.instance_id.as_str())])
            .bearer_auth(&user.access_token)
            .send()
            .await
            .expect("token request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Publishes one event of `org` on `instance`; returns (status, body).
    pub async fn publish_raw(&self, instance: &str, event: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/realtime/events", self.base))
            .bearer_auth(&self.service_token)
            .json(&json!({"cloudInstanceId": instance, "event": event}))
            .send()
            .await
            .expect("publish request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Publishes and expects 202; returns the assigned seq.
    pub async fn publish(&self, instance: &str, org: &str, label: &str) -> u64 {
        let (status, body) = self.publish_raw(instance, event(org, label)).await;
        assert_eq!(status, 202, "publish: {body}");
        assert_eq!(body["ok"], true);
        body["seq"].as_u64().expect("seq")
    }

    pub async fn connect(&self, user: &User) -> WsClient {
        let token = self.token(user).await;
        WsClient::open(self.addr, &token, None)
            .await
            .expect_hello()
            .await
    }

    pub async fn resume(&self, user: &User, epoch: &str, after: u64) -> WsClient {
        let token = self.token(user).await;
        WsClient::open(self.addr, &token, Some((epoch, after)))
            .await
            .expect_hello()
            .await
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// A `conversation.event` envelope of `org` whose payload names `label`.
pub fn event(org: &str, label: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "conversation.event",
        "ts": "2026-11-23T12:00:00.000Z",
        "organizationId": org,
        "conversationId": "conv-1",
        "payload": {"label": label, "event": {"type": "message_update"}}
    })
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct WsClient {
    pub ws: Ws,
    pub hello: Value,
}

pub fn ws_url(addr: SocketAddr, token: &str, position: Option<(&str, u64)>) -> String {
    let mut url = format!("ws://{addr}/ws?token={token}");
    if let Some((epoch, after)) = position {
        url.push_str(&format!("&epoch={epoch}&afterSequence={after}"));
    }
    url
}

/// What the server sent, once pings, pongs and heartbeats are skipped.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(Option<(u16, String)>),
}

impl WsClient {
    pub async fn open(addr: SocketAddr, token: &str, position: Option<(&str, u64)>) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url(addr, token, position))
            .await
            .expect("websocket handshake");
        Self {
            ws,
            hello: Value::Null,
        }
    }

    /// Reads `hello` and the "Realtime connected" status.
    pub async fn expect_hello(mut self) -> Self {
        let hello = self.next_json().await;
        assert_eq!(hello["type"], "hello", "first frame: {hello}");
        assert!(hello["epoch"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(hello["sequence"].is_u64(), "{hello}");
        let status = self.next_json().await;
        assert_eq!(status["type"], "cloud.instance.status", "{status}");
        assert_eq!(status["payload"]["message"], "Realtime connected");
        self.hello = hello;
        self
    }

    pub fn epoch(&self) -> String {
        self.hello["epoch"].as_str().unwrap_or_default().to_owned()
    }

    pub async fn frame(&mut self) -> Frame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"));
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                    if v["type"] == "cloud.instance.status"
                        && v["payload"]["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("Heartbeat"))
                    {
                        continue;
                    }
                    return Frame::Json(v);
                }
                Some(Ok(Message::Close(c))) => {
                    return Frame::Closed(c.map(|c| (u16::from(c.code), c.reason.to_string())));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        match self.frame().await {
            Frame::Json(v) => v,
            Frame::Closed(c) => panic!("socket closed ({c:?}) while a frame was expected"),
        }
    }

    /// The next `n` stored events (frames with a `seq`); panics on anything else.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let v = self.next_json().await;
            assert!(
                v["seq"].is_u64(),
                "expected an event, got {v} after {} events",
                out.len()
            );
            out.push(v);
        }
        out
    }

    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.frame().await {
                Frame::Closed(Some(c)) => return c,
                Frame::Closed(None) => panic!("connection dropped without a close frame"),
                Frame::Json(v) => {
                    if v["seq"].is_u64() {
                        continue;
                    }
                    panic!("expected a close frame, got {v}");
                }
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    pub async fn send_json(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }
}

/// Opens a socket expecting the server to close it at once; returns the close code and reason.
pub async fn rejected(addr: SocketAddr, token: &str) -> (u16, String) {
    let mut c = WsClient::open(addr, token, None).await;
    c.expect_close().await
}

pub fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

pub fn labels(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["payload"]["label"].as_str().unwrap().to_owned())
        .collect()
}

pub const NORMAL: u16 = 1000;

pub fn close_code(code: CloseCode) -> u16 {
    u16::from(code)
}
