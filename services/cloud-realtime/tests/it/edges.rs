//! The shared HTTP edge checks, and shutdown with open websockets.

use std::time::Duration;

use cloud_testkit::edge::{
    ConnectionLimits, JsonRoute, assert_graceful_drain, assert_json_edges,
    assert_slow_clients_are_cut,
};

use crate::helpers::*;

#[tokio::test]
async fn publish_route_has_the_standard_json_edges() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access).with("CHATONS_CLOUD_MAX_JSON_BODY_BYTES", "4096");
    let a = setup.replica().await;
    let auth = format!("Bearer {}", a.service_token);
    assert_json_edges(
        &a.base,
        JsonRoute {
            path: "/v1/realtime/events",
            headers: &[("authorization", auth.as_str())],
        },
        4096,
    )
    .await;
}

#[tokio::test]
async fn sigterm_drains_requests_and_closes_sockets_with_1001() {
    let access = AccessService::start().await;
    let setup = Setup::new(&access).with("CHATONS_SHUTDOWN_DRAIN_SECONDS", "3");
    let mut a = setup.replica().await;
    let user = access.user().await;
    let mut c = a.connect(&user).await;
    let auth = format!("Bearer {}", a.service_token);
    assert_graceful_drain(
        &mut a.process,
        JsonRoute {
            path: "/v1/realtime/events",
            headers: &[("authorization", auth.as_str())],
        },
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(c.expect_close().await, (1001, "server_shutdown".into()));
}

#[tokio::test]
async fn slow_clients_are_cut_and_connections_capped() {
    let access = AccessService::start().await;
    let limits = ConnectionLimits::default();
    let mut setup = Setup::new(&access);
    setup.extra.extend(limits.env());
    let a = setup.replica().await;
    let auth = format!("Bearer {}", a.service_token);
    assert_slow_clients_are_cut(
        a.addr,
        JsonRoute {
            path: "/v1/realtime/events",
            headers: &[("authorization", auth.as_str())],
        },
        limits,
    )
    .await;
    // Websockets are not HTTP connections: more than the cap stay open side by side.
    let user = access.user().await;
    let mut sockets = Vec::new();
    for _ in 0..limits.max_connections + 2 {
        sockets.push(a.connect(&user).await);
    }
    let seq = a
        .publish(&user.instance_id, &user.org_id, "after-cap")
        .await;
    for s in &mut sockets {
        assert_eq!(s.events(1).await[0]["seq"], seq);
    }
}
