//! The shared edge assertions on cloud-api: JSON errors at the edge, graceful drain of the binary.

use std::time::Duration;

use cloud_testkit::edge::{
    ConnectionLimits, JsonRoute, assert_connections_capped, assert_graceful_drain,
    assert_json_edges, assert_slow_clients_are_cut,
};
use cloud_testkit::process::ServiceProcess;

use crate::helpers::{LOGIN_ROUTE, binary_env, spawn_app, spawn_app_with};

#[tokio::test]
async fn login_route_has_json_edges() {
    let app = spawn_app().await;
    assert_json_edges(&app.base, LOGIN_ROUTE, 1_048_576).await;
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
    let env = binary_env(&[("CHATONS_SHUTDOWN_DRAIN_SECONDS", "5")]);
    let mut process = ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-api"), &env).await;
    assert_graceful_drain(&mut process, LOGIN_ROUTE, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn slow_clients_are_cut_and_connections_capped() {
    let limits = ConnectionLimits::default();
    let mut env = binary_env(&[]);
    env.extend(limits.env());
    let process = ServiceProcess::spawn(env!("CARGO_BIN_EXE_cloud-api"), &env).await;
    assert_slow_clients_are_cut(process.addr, LOGIN_ROUTE, limits).await;
}

/// The connection limits come from cloud-api's typed configuration (`serve_options`), not from
/// the process environment: this in-process server is given its cap only in its `Config`.
#[tokio::test]
async fn connection_limits_come_from_the_configuration() {
    let app = spawn_app_with(&[("CHATONS_HTTP_MAX_CONNECTIONS", "3")]).await;
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    assert_connections_capped(addr, 3).await;
}
