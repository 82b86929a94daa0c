//! The shared edge assertions on cloud-api: JSON errors at the edge, graceful drain of the binary.

use std::time::Duration;

use cloud_testkit::edge::{
    ConnectionLimits, JsonRoute, assert_connections_capped, assert_graceful_drain,
    assert_json_edges, assert_slow_clients_are_cut,
};
use cloud_testkit::process::ServiceProcess;

use crate::helpers::{TEST_SECRETS_KEY, spawn_app, spawn_app_with};

#[tokio::test]
async fn login_route_has_json_edges() {
    let app = spawn_app().await;
    assert_json_edges(
        &app.base,
        JsonRoute {
            path: "/v1/web/login",
            headers: &[],
        },
        1_048_576,
    )
    .await;
    let u = app.signup().await;
    let auth = format!("Bearer {}", u.access);
    assert_json_edges(
        &app.base,
        JsonRoute {
            path: "/v1/projects",
            headers: &[("authorization", auth.as_str())],
        },
        1_048_576,
    )
    .await;
}

#[tokio::test]
async fn the_binary_drains_in_flight_requests_on_sigterm() {
    let mut process = ServiceProcess::spawn(
        env!("CARGO_BIN_EXE_cloud-api"),
        &[
            (
                "CHATONS_SECRETS_ENCRYPTION_KEY",
                TEST_SECRETS_KEY.to_owned(),
            ),
            (
                "CHATONS_INTERNAL_SERVICE_TOKEN",
                cloud_testkit::random_token(),
            ),
            ("CHATONS_SHUTDOWN_DRAIN_SECONDS", "5".to_owned()),
        ],
    )
    .await;
    assert_graceful_drain(
        &mut process,
        JsonRoute {
            path: "/v1/web/login",
            headers: &[],
        },
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test]
async fn slow_clients_are_cut_and_connections_capped() {
    let limits = ConnectionLimits::default();
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
    env.extend(limits.env());
    let process = ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-api"), &env).await;
    assert_slow_clients_are_cut(
        process.addr,
        JsonRoute {
            path: "/v1/web/login",
            headers: &[],
        },
        limits,
    )
    .await;
}

/// The connection limits come from cloud-api's typed configuration (`serve_options`), not from
/// the process environment: this in-process server is given its cap only in its `Config`.
#[tokio::test]
async fn connection_limits_come_from_the_configuration() {
    let app = spawn_app_with(&[("CHATONS_HTTP_MAX_CONNECTIONS", "3")]).await;
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    assert_connections_capped(addr, 3).await;
}
