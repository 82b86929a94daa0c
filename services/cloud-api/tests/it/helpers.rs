//! `spawn_app()`: the real cloud-api router on 127.0.0.1:0, with its own database schema.

use cloud_api::Config;
use cloud_common::config::Env;
use cloud_common::server::Shutdown;
use cloud_testkit::db::TestDb;
use reqwest::Method;
use serde_json::Value;

/// What a request answered: the status and the JSON body (`Null` when it is not JSON).
pub type Reply = (u16, Value);

/// base64 of 32 bytes 0x2a: a fixed key so tests can also open sealed rows themselves.
pub const TEST_SECRETS_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The login route, for the shared edge checks of `cloud_testkit::edge`.
#[allow(dead_code)]
pub const LOGIN_ROUTE: cloud_testkit::edge::JsonRoute<'static> = cloud_testkit::edge::JsonRoute {
    path: "/v1/web/login",
    headers: &[],
};

/// What the cloud-api binary needs besides `extra`: the secrets key and a service token.
#[allow(dead_code)]
pub fn binary_env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "CHATONS_SECRETS_ENCRYPTION_KEY",
            TEST_SECRETS_KEY.to_owned(),
        ),
        (
            "CHATONS_INTERNAL_SERVICE_TOKEN",
            cloud_testkit::random_token(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

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

/// cloud-api whose `CHATONS_ADMIN_EMAILS` lists a fresh address (returned; nobody has signed
/// up with it yet), with `extra` variables.
#[allow(dead_code)]
pub async fn spawn_with_admin(extra: &[(&str, &str)]) -> (TestApp, String) {
    let admin_email = format!("admin{}@example.com", cloud_testkit::random_token());
    let mut vars = vec![("CHATONS_ADMIN_EMAILS", admin_email.as_str())];
    vars.extend_from_slice(extra);
    (spawn_app_with(&vars).await, admin_email)
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

    /// `N` fresh users ([`TestApp::signup`] each), in order.
    pub async fn signups<const N: usize>(&self) -> [TestUser; N] {
        let mut users = Vec::with_capacity(N);
        for _ in 0..N {
            users.push(self.signup().await);
        }
        users.try_into().expect("N users")
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
        let (status, body) = self
            .post_public(
                "/v1/web/signup",
                serde_json::json!({"email": email, "displayName": "Test User", "password": password}),
            )
            .await;
        assert_eq!(status, 201, "signup status: {body}");
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
        token_in(&body, "/cloud/verify-email")
    }

    /// Opens the verification link mailed to `email`.
    pub async fn verify_email(&self, email: &str) {
        let token = self.verification_token(email).await;
        let (status, body) = self
            .post_public(
                "/v1/web/verify-email",
                serde_json::json!({ "token": token }),
            )
            .await;
        assert_eq!(status, 200, "verify-email status: {body}");
    }

    /// A request with the user's bearer token; returns (status, JSON body or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    /// A JSON POST without a token (signup, login, the email routes, the token endpoint's JSON
    /// shape); returns (status, JSON body or Null).
    pub async fn post_public(&self, path: &str, body: Value) -> Reply {
        answer(reqwest::Client::new().post(self.url(path)).json(&body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, token, None).await
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

    /// `POST /v1/web/login` with JSON: (status, body).
    pub async fn login(&self, email: &str, password: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"email": email, "password": password});
        self.post_public("/v1/web/login", body).await
    }

    /// `manager` invites `member` into organization `org` (with `role`, default member) and
    /// `member` accepts: both must succeed.
    pub async fn add_member(
        &self,
        manager: &TestUser,
        org: &str,
        member: &TestUser,
        role: Option<&str>,
    ) {
        let mut invite = serde_json::json!({"organizationId": org, "email": member.email});
        if let Some(role) = role {
            invite["role"] = role.into();
        }
        let (status, body) = self
            .post("/v1/organization/invites", &manager.access, invite)
            .await;
        assert_eq!(status, 201, "invite: {body}");
        let accept = serde_json::json!({"token": body["token"]});
        let (status, body) = self
            .post("/v1/organization/invites/accept", &member.access, accept)
            .await;
        assert_eq!(status, 200, "accept: {body}");
    }

    /// The internal access grant of `service` (`"realtime"` or `"runtime"`) for the user of
    /// `access_token` on `instance`: (status, body).
    pub async fn grant(
        &self,
        service: &str,
        access_token: &str,
        instance: &str,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::json!({"accessToken": access_token, "cloudInstanceId": instance});
        self.internal(&format!("/v1/internal/{service}/access"), body)
            .await
    }

    /// The typed client of the internal endpoints (`cloud_common::internal`), with the service
    /// token.
    pub fn internal_client(&self) -> cloud_common::internal::CloudApiClient {
        cloud_common::internal::CloudApiClient::new(
            url::Url::parse(&self.base).expect("base URL"),
            cloud_common::Secret::new(self.token.clone()),
        )
    }

    /// An internal call with the service token.
    pub async fn internal(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let token = self.token.clone();
        self.post(path, &token, body).await
    }
}

/// The token of the first `{path}?token=…` link in a mail's text.
pub fn token_in(body: &str, path: &str) -> String {
    let marker = format!("{path}?token=");
    let start = body.find(&marker).expect("link in mail") + marker.len();
    body[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Sends `req`; returns (status, JSON body or Null).
pub async fn answer(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// The JSON error envelope (`{"error", "message"}`, or OAuth's `{"error",
/// "error_description"}`): `status` and the `error` code are the expected ones.
#[allow(dead_code)]
pub fn assert_error(status: u16, body: &serde_json::Value, want_status: u16, want_error: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want_status, Some(want_error)),
        "{body}"
    );
}

/// The answer has status `want`; a failure shows the body, which says why.
#[track_caller]
pub fn assert_status((status, body): Reply, want: u16) {
    assert_eq!(status, want, "{body}");
}

/// `key` of every item of the JSON array `list` (ids, contents…), as strings.
#[allow(dead_code)]
pub fn strings<'a>(list: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| {
            item[key]
                .as_str()
                .unwrap_or_else(|| panic!("no string {key} in {item}"))
        })
        .collect()
}

#[allow(dead_code)]
impl TestApp {
    /// A cookie-keeping browser (redirects not followed) signed in to the portal as `user`.
    pub async fn portal_browser(&self, user: &TestUser) -> reqwest::Client {
        let b = crate::web::browser();
        let resp = crate::web::portal_login(self, &b, &user.email, &user.password).await;
        assert_eq!(resp.status(), 303, "portal login");
        b
    }

    /// The CSRF token of the form on `page` (a path or a whole URL), as `browser` sees it.
    pub async fn csrf_of(&self, browser: &reqwest::Client, page: &str) -> String {
        let url = if page.starts_with('/') {
            self.url(page)
        } else {
            page.to_owned()
        };
        cloud_testkit::oidc::csrf_from(&crate::web::page(browser, url).await)
    }
}
