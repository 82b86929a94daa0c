//! `spawn_app()`: the real cloud-api router on 127.0.0.1:0, with its own database schema.

use cloud_api::Config;
use cloud_common::config::Env;
use cloud_common::server::Shutdown;
use cloud_testkit::db::TestDb;

/// base64 of 32 bytes 0x2a: a fixed key so tests can also open sealed rows themselves.
pub const TEST_SECRETS_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

pub struct TestApp {
    pub base: String,
    pub db: Option<TestDb>,
    pub shutdown: Shutdown,
    #[allow(dead_code)] // used by the internal-endpoint tests
    pub token: String,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// cloud-api on Postgres (a fresh schema) with `extra` variables.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new().await;
    let mut vars: Vec<(String, String)> = vec![("DATABASE_URL".into(), db.url.clone())];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut app = spawn_with_env(vars).await;
    app.db = Some(db);
    app
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// cloud-api on exactly these variables (plus a generated internal token).
pub async fn spawn_with_env(vars: Vec<(String, String)>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    spawn_on(listener, vars).await
}

/// cloud-api serving on `listener` (bound beforehand, so other services can be pointed at it
/// before it starts).
pub async fn spawn_on(
    listener: tokio::net::TcpListener,
    mut vars: Vec<(String, String)>,
) -> TestApp {
    let token = vars
        .iter()
        .find(|(k, _)| k == "CHATONS_INTERNAL_SERVICE_TOKEN")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(cloud_testkit::random_token);
    vars.retain(|(k, _)| k != "CHATONS_INTERNAL_SERVICE_TOKEN");
    vars.push(("CHATONS_INTERNAL_SERVICE_TOKEN".into(), token.clone()));
    if !vars
        .iter()
        .any(|(k, _)| k == "CHATONS_SECRETS_ENCRYPTION_KEY")
    {
        vars.push((
            "CHATONS_SECRETS_ENCRYPTION_KEY".into(),
            TEST_SECRETS_KEY.into(),
        ));
    }
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    // The issuer and every link must name the address the test really talks to.
    if !vars.iter().any(|(k, _)| k == "CHATONS_CLOUD_PUBLIC_URL") {
        vars.push(("CHATONS_CLOUD_PUBLIC_URL".into(), base.clone()));
    }
    // Development keys (signing key) go to a directory of this test, not the crate folder.
    if !vars.iter().any(|(k, _)| k == "CHATONS_DATA_DIR") {
        let dir =
            std::env::temp_dir().join(format!("chatons-test-{}", uuid::Uuid::new_v4().simple()));
        vars.push((
            "CHATONS_DATA_DIR".into(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    let config = Config::from_env(&Env::from_pairs(vars)).expect("test config");
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(cloud_api::run(config, listener, shutdown.clone()));
    TestApp {
        base,
        db: None,
        shutdown,
        token,
        handle: Some(handle),
    }
}

/// cloud-api with the in-memory store (no DATABASE_URL).
#[allow(dead_code)]
pub async fn spawn_memory_app() -> TestApp {
    spawn_with_env(vec![]).await
}

/// A signed-up user: id, email, access and refresh tokens.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
    pub body: serde_json::Value,
}

#[allow(dead_code)]
impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs up a fresh user (random email) and, on Postgres, proves the address with the
    /// verification link (as a real user would): only verified accounts may invite, and only a
    /// verified listed address is an admin.
    pub async fn signup(&self) -> TestUser {
        let email = format!("u{}@example.com", cloud_testkit::random_token());
        self.signup_as(&email).await
    }

    /// [`TestApp::signup`] with this email.
    pub async fn signup_as(&self, email: &str) -> TestUser {
        let user = self.signup_unverified(email).await;
        if self.db.is_some() {
            self.verify_email(email).await;
        }
        user
    }

    /// Signs up `email` without opening the verification link.
    pub async fn signup_unverified(&self, email: &str) -> TestUser {
        let password = "correct horse battery".to_string();
        let resp = reqwest::Client::new()
            .post(self.url("/v1/web/signup"))
            .json(&serde_json::json!({"email": email, "displayName": "Test User", "password": password}))
            .send()
            .await
            .expect("signup");
        assert_eq!(resp.status(), 201, "signup status");
        let body: serde_json::Value = resp.json().await.expect("signup body");
        TestUser {
            id: body["user"]["id"].as_str().expect("user id").to_owned(),
            email: email.to_owned(),
            password,
            access: body["session"]["accessToken"]
                .as_str()
                .expect("access")
                .to_owned(),
            refresh: body["session"]["refreshToken"]
                .as_str()
                .expect("refresh")
                .to_owned(),
            body,
        }
    }

    /// The token of the latest verification link mailed to `email` (read from the outbox).
    pub async fn verification_token(&self, email: &str) -> String {
        let pool = &self
            .db
            .as_ref()
            .expect("the outbox is read from Postgres")
            .pool;
        let body: String = sqlx::query_scalar(
            "SELECT text_body FROM cloud_mail_outbox WHERE recipient = $1 \
             AND subject LIKE 'Confirm%' ORDER BY id DESC LIMIT 1",
        )
        .bind(email)
        .fetch_one(pool)
        .await
        .expect("a verification mail was queued");
        let marker = "/cloud/verify-email?token=";
        let start = body.find(marker).expect("link in mail") + marker.len();
        body[start..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// Opens the verification link mailed to `email`.
    pub async fn verify_email(&self, email: &str) {
        let token = self.verification_token(email).await;
        let resp = reqwest::Client::new()
            .post(self.url("/v1/web/verify-email"))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .expect("verify");
        assert_eq!(resp.status(), 200, "verify-email status");
    }

    /// A request with the user's bearer token; returns (status, JSON body or Null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn patch(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// POSTs a creation that must answer 201 and returns the id of `body[kind]`
    /// (`"project"`, `"conversation"`, `"organization"`…).
    pub async fn create(
        &self,
        path: &str,
        token: &str,
        kind: &str,
        body: serde_json::Value,
    ) -> String {
        let (status, answer) = self.post(path, token, body).await;
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer[kind]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("POST {path}: no {kind}.id in {answer}"))
            .to_owned()
    }

    /// An internal call with the service token.
    pub async fn internal(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let token = self.token.clone();
        self.post(path, &token, body).await
    }
}
