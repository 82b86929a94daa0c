//! One fresh, migrated Postgres schema per test.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `TEST_DATABASE_URL` or the local `test` database.
pub fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub struct TestDb {
    pub schema: String,
    /// A `DATABASE_URL` whose connections use this schema (for child processes and app configs).
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates schema `t_<unix time>_<uuid>` and applies every migration to it.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        cloud_common::db::MIGRATOR
            .run(&db.pool)
            .await
            .expect("apply migrations");
        db
    }

    /// Creates an empty schema (for migration tests).
    pub async fn empty() -> Self {
        let base = base_url();
        let schema = format!("t_{}_{}", crate::unix_now(), uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&base)
            .await
            .expect("connect to the test database");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let url = with_search_path(&base, &schema);
        let options = PgConnectOptions::from_str(&url).expect("test url");
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options)
            .await
            .expect("connect to the test schema");
        Self { schema, url, pool }
    }
}

/// Adds `options=-c search_path=<schema>` to a Postgres URL.
pub fn with_search_path(base: &str, schema: &str) -> String {
    let mut url = url::Url::parse(base).expect("database url");
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    url.to_string()
}
