//! `CHATONS_PROFILE=production` fails closed: the real binary exits 2 naming each required
//! variable left empty, instead of falling back to the in-memory store or generated keys.

use cloud_testkit::db::TestDb;

use crate::helpers::TEST_SECRETS_KEY;

#[tokio::test]
async fn production_profile_refuses_to_start_without_each_required_variable() {
    let db = TestDb::new().await;
    let (_, pem) = cloud_api::issuer::keys::SigningKey::generate().expect("key");
    let data = std::env::temp_dir().join(format!("chatons-prod-{}", uuid::Uuid::new_v4().simple()));
    let valid = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "CHATONS_INTERNAL_SERVICE_TOKEN",
            cloud_testkit::random_token(),
        ),
        (
            "CHATONS_CLOUD_PUBLIC_URL",
            "https://cloud.example.test".to_owned(),
        ),
        ("JWT_SIGNING_KEY", pem),
        (
            "CHATONS_SECRETS_ENCRYPTION_KEY",
            TEST_SECRETS_KEY.to_owned(),
        ),
        ("CHATONS_DATA_DIR", data.to_string_lossy().into_owned()),
    ];
    cloud_testkit::profile::assert_production_fails_closed(
        env!("CARGO_BIN_EXE_cloud-api"),
        &cloud_api::config::env_vars(),
        &valid,
    )
    .await;
    let _ = std::fs::remove_dir_all(&data);
}
