//! The workspace foundation as seen from cloud-api: boot, health, readiness, config errors,
//! migrations, JSON 404/405.

use std::time::Duration;

use cloud_testkit::db::TestDb;
use cloud_testkit::proxy::{TcpProxy, target_of};

use crate::helpers::{spawn_app, spawn_with_env};

#[tokio::test]
async fn boots_on_port_zero_and_reports_health() {
    let app = spawn_app().await;
    let resp = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "cloud-api");
    assert!(body["version"].is_string());
    let resp = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(resp.status(), 204);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("chatons_http_requests_total"), "{metrics}");
    assert!(metrics.contains(r#"route="/readyz""#), "{metrics}");
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let db = TestDb::new().await;
    let proxy = TcpProxy::start(target_of(&db.url)).await;
    let app = spawn_with_env(vec![("DATABASE_URL".into(), proxy.rewrite_url(&db.url))]).await;
    let ready = || async {
        reqwest::get(format!("{}/readyz", app.base))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 204);
    proxy.cut();
    assert_eq!(ready().await, 503);
    proxy.restore();
    cloud_testkit::wait_for_readiness(&app.base, 204, "database back").await;
}

#[tokio::test]
async fn readiness_flips_at_shutdown() {
    let mut app = spawn_app().await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    app.shutdown.trigger();
    let handle = app.handle.take().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), handle).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "server stops cleanly");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json() {
    let app = spawn_app().await;
    let resp = reqwest::get(format!("{}/nope?x=1", app.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error":"not_found","message":"No route for GET /nope"})
    );
    let resp = reqwest::Client::new()
        .delete(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn migrations_apply_to_an_empty_schema_and_reapply_as_a_no_op() {
    let db = TestDb::empty().await;
    let migrator = &cloud_common::db::MIGRATOR;
    migrator.run(&db.pool).await.expect("first run");
    let count = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>("select count(*) from _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let applied = count(db.pool.clone()).await;
    assert_eq!(applied as usize, migrator.iter().count());
    migrator.run(&db.pool).await.expect("second run");
    assert_eq!(count(db.pool.clone()).await, applied);
    let tables: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_schema = current_schema() and table_name like any (array['cloud_%','runtime_%'])",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(tables >= 15, "only {tables} tables");
}

#[test]
fn a_bad_variable_stops_the_process_naming_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-api"))
        .env_clear()
        .env("PORT", "not-a-port")
        .env("CHATONS_CLOUD_PUBLIC_URL", "ftp://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORT: cannot parse"), "{stderr}");
    assert!(stderr.contains("CHATONS_CLOUD_PUBLIC_URL"), "{stderr}");
}

#[test]
fn env_command_lists_every_variable_read() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-api"))
        .arg("env")
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let env = cloud_common::config::Env::from_pairs(Vec::<(String, String)>::new());
    let _ = cloud_api::Config::from_env(&env);
    for name in env.names_read() {
        assert!(listed.contains(&name), "{name} is read but not documented");
    }
    assert!(listed.contains("DATABASE_URL"));
}

#[tokio::test]
async fn migrate_command_applies_and_exits() {
    let db = TestDb::empty().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cloud-api"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: i64 = sqlx::query_scalar("select count(*) from cloud_subscription_plans")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn a_bad_trusted_proxy_entry_is_named() {
    let env = cloud_common::config::Env::from_pairs([(
        "CHATONS_TRUSTED_PROXIES",
        "10.0.0.0/8, 10.0.0.0/40",
    )]);
    let errors = cloud_api::Config::from_env(&env).unwrap_err();
    assert_eq!(errors.names(), vec!["CHATONS_TRUSTED_PROXIES"]);
    assert!(errors.to_string().contains("10.0.0.0/40"), "{errors}");
}
