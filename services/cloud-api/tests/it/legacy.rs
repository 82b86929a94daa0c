//! `cloud-api import-legacy`: the first system's schema (reference §6) with a few rows in one
//! test schema, ours in another; the real binary imports twice, then the real API serves the
//! imported account.

use cloud_testkit::db::TestDb;
use serde_json::{Value, json};

use crate::helpers::{TEST_SECRETS_KEY, spawn_with_env, strings};

const PASSWORD: &str = "legacy password 42";
const ALICE: &str = "user-alice-example-com";
const PROVIDER: &str = "provider-11111111-1111-4111-8111-111111111111";
const REPO_PROJECT: &str = "project-22222222-2222-4222-8222-222222222222";
const WORKSPACE: &str = "project-user-alice-example-com-workspace";
const CONVERSATION: &str = "conversation-33333333-3333-4333-8333-333333333333";

/// Runs `cloud-api import-legacy --from <source>` against `target`; (success, stdout).
async fn import(source: &TestDb, target: &TestDb) -> (bool, String) {
    let out = tokio::process::Command::new(cloud_testkit::workspace_binary("cloud-api"))
        .args(["import-legacy", "--from", &source.url])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &target.url)
        .env("CHATONS_SECRETS_ENCRYPTION_KEY", TEST_SECRETS_KEY)
        .env("LOG_FORMAT", "json")
        .output()
        .await
        .expect("run cloud-api import-legacy");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {stdout}\n{stderr}");
    (out.status.success(), stdout)
}

async fn password_hash(db: &TestDb, user: &str) -> String {
    sqlx::query_scalar("SELECT password_hash FROM cloud_users WHERE id = $1")
        .bind(user)
        .fetch_one(&db.pool)
        .await
        .expect("password hash")
}

#[tokio::test]
async fn legacy_deployment_is_imported_once_and_its_users_keep_working() {
    let source = TestDb::empty().await;
    sqlx::raw_sql(include_str!("fixtures/legacy_schema.sql"))
        .execute(&source.pool)
        .await
        .expect("the first system's schema");
    sqlx::raw_sql(include_str!("fixtures/legacy_rows.sql"))
        .execute(&source.pool)
        .await
        .expect("the first system's rows");
    let target = TestDb::new().await;

    let (_, first) = import(&source, &target).await;
    assert!(
        first.contains("[1/2] organization org-user-alice-example-com"),
        "{first}"
    );
    assert!(
        first.contains("skipped memories: no organization"),
        "{first}"
    );
    let written: u64 = first
        .lines()
        .find_map(|l| l.strip_suffix(" rows written."))
        .and_then(|n| n.trim().parse().ok())
        .expect("summary line");
    assert_eq!(written, 18, "{first}");
    // Idempotent: the second run writes nothing and changes nothing.
    let snapshot = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            let mut counts = Vec::new();
            for t in [
                "cloud_users",
                "cloud_organizations",
                "cloud_organization_memberships",
                "cloud_organization_providers",
                "cloud_projects",
                "cloud_conversations",
                "cloud_conversation_messages",
                "cloud_memories",
                "cloud_sessions",
            ] {
                let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                counts.push((t, n));
            }
            let nonce: Vec<u8> = sqlx::query_scalar(
                "SELECT secret_nonce FROM cloud_organization_providers WHERE id = $1",
            )
            .bind(PROVIDER)
            .fetch_one(&pool)
            .await
            .unwrap();
            (counts, nonce)
        }
    };
    let before = snapshot(&target).await;
    let (_, second) = import(&source, &target).await;
    assert!(second.contains("\n0 rows written."), "{second}");
    assert_eq!(
        snapshot(&target).await,
        before,
        "the second run changed rows"
    );
    assert!(
        password_hash(&target, ALICE).await.starts_with("scrypt$"),
        "the hash is kept until the first login"
    );

    // The API on the imported database.
    let app = spawn_with_env(vec![("DATABASE_URL".into(), target.url.clone())]).await;
    let login = |password: &str| {
        let url = app.url("/v1/web/login");
        let body = json!({"email": "alice@example.com", "password": password});
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(login("not the password").await.0, 401);
    assert!(password_hash(&target, ALICE).await.starts_with("scrypt$"));
    let (status, body) = login(PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        password_hash(&target, ALICE)
            .await
            .starts_with("$argon2id$"),
        "upgraded at the first login"
    );
    let (status, body) = login(PASSWORD).await;
    assert_eq!(status, 200, "the argon2id hash verifies: {body}");
    let access = body["session"]["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(body["user"]["id"], ALICE);
    assert_eq!(body["user"]["subscription"]["id"], "pro");

    let (status, boot) = app.get("/v1/bootstrap", &access).await;
    assert_eq!(status, 200, "{boot}");
    let orgs = boot["organizations"].as_array().unwrap();
    assert_eq!(orgs.len(), 1, "{boot}");
    assert_eq!(orgs[0]["id"], "org-user-alice-example-com");
    assert_eq!(orgs[0]["role"], "owner", "the owner is an owner here");
    assert_eq!(orgs[0]["providers"][0]["id"], PROVIDER);
    let projects = strings(&boot["projects"], "id");
    assert!(
        projects.contains(&REPO_PROJECT) && projects.contains(&WORKSPACE),
        "{boot}"
    );
    let workspace = boot["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == WORKSPACE)
        .unwrap();
    assert!(workspace["repository"].is_null(), "{workspace}");
    assert_eq!(boot["conversations"][0]["id"], CONVERSATION);
    let (status, messages) = app
        .get(
            &format!("/v1/conversations/{CONVERSATION}/messages"),
            &access,
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    let list = messages["messages"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{messages}");
    assert_eq!(list[1]["content"], "Fixed in footer.css");
    let (status, memories) = app.get("/v1/memory", &access).await;
    assert_eq!(status, 200, "{memories}");
    let contents = strings(&memories["items"], "content");
    assert!(
        contents.contains(&"Alice prefers tabs over spaces"),
        "{memories}"
    );
    assert!(
        contents.contains(&"The website uses plain CSS"),
        "{memories}"
    );
    let (status, hits) = app.get("/v1/memory/search?query=tabs", &access).await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(
        hits["items"][0]["content"],
        "Alice prefers tabs over spaces"
    );

    // The provider secret and repository token open (sealed under our key at import).
    let (status, grant) = app
        .internal(
            "/v1/internal/runtime/access",
            json!({"accessToken": access, "cloudInstanceId": format!("instance-{ALICE}"),
                   "projectId": REPO_PROJECT}),
        )
        .await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["providers"][0]["secret"], "sk-legacy-secret-value");
    assert_eq!(grant["repository"]["accessToken"], "ghp_legacy_token");
    let raw: Vec<u8> = sqlx::query_scalar(
        "SELECT secret_ciphertext FROM cloud_organization_providers WHERE id = $1",
    )
    .bind(PROVIDER)
    .fetch_one(&target.pool)
    .await
    .unwrap();
    assert!(
        !raw.windows(6).any(|w| w == b"sk-leg"),
        "sealed, not plaintext"
    );

    // A desktop still holding the first system's tokens stays signed in and can refresh.
    let legacy_access = "access-77777777-7777-4777-8777-777777777777";
    let (status, account) = app.get("/v1/account", legacy_access).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(
        account["activeOrganizationId"],
        "org-user-alice-example-com"
    );
    let refreshed = reqwest::Client::new()
        .post(app.url("/oidc/token"))
        .json(
            &json!({"grantType": "refresh_token", "clientId": "chatons-desktop",
                      "redirectUri": "chatons://cloud/auth/callback",
                      "refreshToken": "refresh-88888888-8888-4888-8888-888888888888"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
}
