//! `CHATONS_PROFILE=production` fails closed: the real binary exits 2 naming each required
//! variable left empty, instead of fanning out in process on one replica.

#[tokio::test]
async fn production_profile_refuses_to_start_without_each_required_variable() {
    let valid = vec![
        ("REDIS_URL", cloud_testkit::redis_url()),
        (
            "CHATONS_REALTIME_CHANNEL_PREFIX",
            cloud_testkit::redis_prefix(),
        ),
        (
            "CHATONS_INTERNAL_SERVICE_TOKEN",
            cloud_testkit::random_token(),
        ),
    ];
    cloud_testkit::profile::assert_production_fails_closed(
        env!("CARGO_BIN_EXE_cloud-realtime"),
        &cloud_realtime::config::env_vars(),
        &valid,
    )
    .await;
}
