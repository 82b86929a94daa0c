//! `CHATONS_PROFILE=production` fails closed: the real binary exits 2 naming each required
//! variable left empty, instead of keeping sessions in memory or sealing turn specs under a
//! key derived from the service token.

use cloud_testkit::db::TestDb;

#[tokio::test]
async fn production_profile_refuses_to_start_without_each_required_variable() {
    let db = TestDb::new().await;
    let root = std::env::temp_dir().join(format!("chatons-prod-{}", uuid::Uuid::new_v4().simple()));
    let valid = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "CHATONS_INTERNAL_SERVICE_TOKEN",
            cloud_testkit::random_token(),
        ),
        // base64 of 32 bytes 0x07.
        (
            "CHATONS_RUNTIME_SEALING_KEY",
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_owned(),
        ),
        (
            "CHATONS_RUNTIME_ROOT_DIR",
            root.to_string_lossy().into_owned(),
        ),
    ];
    cloud_testkit::profile::assert_production_fails_closed(
        env!("CARGO_BIN_EXE_runtime-headless"),
        &runtime_headless::config::env_vars(),
        &valid,
    )
    .await;
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_malformed_sealing_key_is_a_configuration_error() {
    use cloud_common::config::Env;
    for bad in ["not base64!", "AAAA"] {
        let env = Env::from_pairs([("CHATONS_RUNTIME_SEALING_KEY", bad)]);
        let err = runtime_headless::Config::from_env(&env).unwrap_err();
        assert_eq!(err.names(), vec!["CHATONS_RUNTIME_SEALING_KEY"], "{bad}");
    }
    let env = Env::from_pairs([("CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS", "AAAA")]);
    let err = runtime_headless::Config::from_env(&env).unwrap_err();
    assert_eq!(err.names(), vec!["CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS"]);
}
