//! Shared integration-test harness. Every test gets its own Postgres schema, Redis key prefix and
//! ports, so nextest can run them in parallel against the one local Postgres and Redis.
#![allow(clippy::missing_panics_doc)]
// Test support: a setup that fails should fail the test that asked for it, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod db;
pub mod edge;
pub mod oidc;
pub mod process;
pub mod profile;
pub mod proxy;
pub mod servers;

/// Redis for tests: `TEST_REDIS_URL` or the local server.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses. It starts with the creation time so `scripts/test` can
/// remove leftovers of old runs without touching a run in progress.
pub fn redis_prefix() -> String {
    format!("test:{}:{}:", unix_now(), uuid::Uuid::new_v4().simple())
}

/// Seconds since the epoch (names of test schemas and key prefixes start with it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random 32-character token (internal service token, passwords…).
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Polls `GET {base}/readyz` until it answers `want` (10 s at most; panics naming `what`).
/// Readiness follows its dependencies asynchronously, so tests wait for the flip.
pub async fn wait_for_readiness(base: &str, want: u16, what: &str) {
    let mut last = 0;
    for _ in 0..100 {
        last = reqwest::get(format!("{base}/readyz"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if last == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: /readyz stayed {last}, wanted {want}");
}

/// Path of a workspace binary built beside the running test (`target/<profile>/<name>`), for
/// tests that start another crate's service as a process.
pub fn workspace_binary(name: &str) -> String {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-binary>
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --bins` first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}
