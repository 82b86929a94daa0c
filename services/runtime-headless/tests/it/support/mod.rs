//! Shared test harness: fake provider, stand-in cloud-api, event sink, and runtime-headless
//! processes on one Postgres schema.

pub mod provider;
pub mod scripted;
pub mod sink;

use std::time::Duration;

use cloud_testkit::db::TestDb;
use cloud_testkit::process::ServiceProcess;
use serde_json::{Value, json};

pub use provider::FakeProvider;
pub use sink::EventSink;

pub const BIN: &str = env!("CARGO_BIN_EXE_runtime-headless");

pub struct Cluster {
    pub db: TestDb,
    pub provider: FakeProvider,
    pub api: CloudApi,
    pub sink: EventSink,
    pub token: String,
    pub extra: Vec<(&'static str, String)>,
}

/// The real cloud-api binary (built by `cargo build --bins`), on the test's database or in
/// memory.
pub struct CloudApi {
    _process: ServiceProcess,
    pub base: String,
    pub provider_base: String,
    http: reqwest::Client,
    data_dir: std::path::PathBuf,
}

/// A signed-up user with a provider, a registered desktop instance and the default project.
#[derive(Clone, Debug)]
pub struct TestUser {
    #[allow(dead_code)]
    pub id: String,
    pub token: String,
    pub instance: String,
    pub project: String,
}

impl Drop for CloudApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A new account through the portal's JSON signup: (user id, access token, bootstrap).
pub async fn signup(http: &reqwest::Client, api: &str) -> (String, String, Value) {
    let email = format!("u-{}@example.test", uuid::Uuid::new_v4().simple());
    let signup = ok_json(
        http.post(format!("{api}/v1/web/signup"))
            .json(&json!({"email": email, "displayName": "Test", "password": "correct horse battery staple"}))
            .send()
            .await
            .unwrap(),
        "signup",
    )
    .await;
    let token = signup["session"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = signup["user"]["id"].as_str().unwrap().to_owned();
    let boot = ok_json(
        http.get(format!("{api}/v1/bootstrap"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        "bootstrap",
    )
    .await;
    (id, token, boot)
}

async fn ok_json(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

impl CloudApi {
    pub async fn start(
        database_url: Option<&str>,
        internal_token: &str,
        provider_base: &str,
    ) -> Self {
        let data_dir =
            std::env::temp_dir().join(format!("rh-cloud-api-{}", uuid::Uuid::new_v4().simple()));
        let mut env = vec![
            ("CHATONS_INTERNAL_SERVICE_TOKEN", internal_token.to_owned()),
            ("CHATONS_DATA_DIR", data_dir.to_string_lossy().into_owned()),
        ];
        if let Some(url) = database_url {
            env.push(("DATABASE_URL", url.to_owned()));
        }
        let process =
            ServiceProcess::spawn(&cloud_testkit::workspace_binary("cloud-api"), &env).await;
        Self {
            base: process.url(),
            _process: process,
            provider_base: provider_base.to_owned(),
            http: reqwest::Client::new(),
            data_dir,
        }
    }

    /// Signup (default plan: 3 parallel sessions), an OpenAI-compatible provider pointing at
    /// the fake, and a registered instance.
    pub async fn user(&self) -> TestUser {
        let (id, token, boot) = signup(&self.http, &self.base).await;
        let project = boot["projects"][0]["id"].as_str().unwrap().to_owned();
        ok_json(
            self.http
                .post(format!("{}/v1/organization/providers", self.base))
                .bearer_auth(&token)
                .json(&json!({
                    "kind": "openai", "label": "Fake", "secret": "sk-test-secret",
                    "baseUrl": self.provider_base, "models": [],
                    "defaultModel": "chunks=5,delay=10"
                }))
                .send()
                .await
                .unwrap(),
            "provider",
        )
        .await;
        let instance = uuid::Uuid::new_v4().to_string();
        ok_json(
            self.http
                .post(format!("{}/v1/cloud-instances", self.base))
                .bearer_auth(&token)
                .json(&json!({"id": instance, "name": "Test desktop"}))
                .send()
                .await
                .unwrap(),
            "instance",
        )
        .await;
        TestUser {
            id,
            token,
            instance,
            project,
        }
    }

    pub async fn conversation(&self, user: &TestUser) -> String {
        let body = ok_json(
            self.http
                .post(format!("{}/v1/conversations", self.base))
                .bearer_auth(&user.token)
                .json(&json!({"projectId": user.project, "title": "New - test"}))
                .send()
                .await
                .unwrap(),
            "conversation",
        )
        .await;
        body["conversation"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn transcript(&self, user: &TestUser, conversation: &str) -> Vec<Value> {
        let body = ok_json(
            self.http
                .get(format!(
                    "{}/v1/conversations/{conversation}/messages",
                    self.base
                ))
                .bearer_auth(&user.token)
                .send()
                .await
                .unwrap(),
            "transcript",
        )
        .await;
        body["messages"].as_array().cloned().unwrap_or_default()
    }
}

impl Cluster {
    pub async fn new(extra: &[(&'static str, &str)]) -> Self {
        let db = TestDb::new().await;
        let token = cloud_testkit::random_token();
        let provider = FakeProvider::start().await;
        let api = CloudApi::start(Some(&db.url), &token, &provider.base).await;
        let sink = EventSink::start(&token).await;
        Self {
            db,
            provider,
            api,
            sink,
            token,
            extra: extra.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    pub fn env(&self, owner: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DATABASE_URL", self.db.url.clone()),
            ("CHATONS_INTERNAL_SERVICE_TOKEN", self.token.clone()),
            ("CHATONS_CLOUD_API_URL", self.api.base.clone()),
            ("CHATONS_REALTIME_PUBLISH_URL", self.sink.url.clone()),
            ("CHATONS_RUNTIME_OWNER_ID", owner.to_owned()),
            ("CHATONS_RUNTIME_LEASE_TTL_SECONDS", "3".to_owned()),
            ("CHATONS_SHUTDOWN_DRAIN_SECONDS", "5".to_owned()),
            // Many tests share one Postgres (100 connections): stay small.
            ("CHATONS_RUNTIME_DB_POOL_SIZE", "4".to_owned()),
            // The fake provider listens on loopback.
            (
                "CHATONS_RUNTIME_PROVIDER_ALLOW_PRIVATE_NETWORKS",
                "true".to_owned(),
            ),
        ];
        for (k, v) in &self.extra {
            env.retain(|(name, _)| name != k);
            env.push((k, v.clone()));
        }
        env
    }

    pub async fn worker(&self, owner: &str) -> ServiceProcess {
        ServiceProcess::spawn(BIN, &self.env(owner)).await
    }

    pub async fn user(&self) -> TestUser {
        self.api.user().await
    }

    pub async fn conv(&self, user: &TestUser) -> String {
        self.api.conversation(user).await
    }

    /// Two workers (`worker-a`, `worker-b`), a user, and that user's client on each.
    pub async fn replicas(&self) -> (ServiceProcess, ServiceProcess, TestUser, Client, Client) {
        let a = self.worker("worker-a").await;
        let b = self.worker("worker-b").await;
        let user = self.user().await;
        let (ca, cb) = (
            Client::new(&a.url(), &user.token),
            Client::new(&b.url(), &user.token),
        );
        (a, b, user, ca, cb)
    }
}

/// A desktop-like client of one runtime-headless replica.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    pub async fn acquire(
        &self,
        user: &TestUser,
        conversation: &str,
        model: Option<&str>,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/runtime/sessions", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "conversationId": conversation,
                "cloudInstanceId": user.instance,
                "projectId": user.project,
                "modelProvider": model.map(|_| "openai"),
                "modelId": model,
                "thinkingLevel": null,
            }))
            .send()
            .await
            .expect("acquire request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn session_id(
        &self,
        user: &TestUser,
        conversation: &str,
        model: Option<&str>,
    ) -> String {
        let (status, body) = self.acquire(user, conversation, model).await;
        assert!(status == 200 || status == 201, "acquire: {status} {body}");
        body["id"].as_str().expect("session id").to_owned()
    }

    pub async fn command(&self, id: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/runtime/sessions/{id}/commands", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("command request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn prompt(&self, id: &str, message: &str) -> Value {
        let (status, body) = self
            .command(id, json!({"id": format!("req-{}", uuid::Uuid::new_v4()), "type": "prompt", "message": message}))
            .await;
        assert_eq!(status, 200, "prompt: {body}");
        assert_eq!(body["success"], true, "prompt: {body}");
        body
    }

    pub async fn get(&self, id: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/v1/runtime/sessions/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, id: &str) -> u16 {
        self.http
            .delete(format!("{}/v1/runtime/sessions/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("delete request")
            .status()
            .as_u16()
    }
}

/// Polls `f` until it returns `Some`, at most `within`; panics naming `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn healthy(base: &str) -> bool {
    reqwest::get(format!("{base}/healthz"))
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}
