//! Dead rows are deleted on a schedule, live ones stay, and the metric counts them.

use std::time::Duration;

use crate::helpers::{assert_status, spawn_app_with};

#[tokio::test]
async fn expired_rows_are_purged_on_schedule_and_counted() {
    let app = spawn_app_with(&[("CHATONS_HOUSEKEEPING_INTERVAL_SECONDS", "1")]).await;
    let pool = app.db.as_ref().unwrap().pool.clone();
    let [dead, live] = app.signups().await;
    let exec = |sql: &str, id: &str| {
        let (pool, sql, id) = (pool.clone(), sql.to_owned(), id.to_owned());
        async move {
            sqlx::query(&sql).bind(id).execute(&pool).await.unwrap();
        }
    };
    exec(
        "UPDATE cloud_sessions SET expires_at = now() - interval '2 days', \
         refresh_expires_at = now() - interval '1 day' WHERE user_id = $1",
        &dead.id,
    )
    .await;
    exec(
        "INSERT INTO cloud_email_verification_tokens (token_hash, user_id, expires_at) \
         VALUES ('dead-token', $1, now() - interval '1 hour')",
        &dead.id,
    )
    .await;
    exec(
        "INSERT INTO cloud_oidc_authorization_codes (code_hash, client_id, redirect_uri, user_id, \
           scope, code_challenge, code_challenge_method, auth_time, expires_at) \
         VALUES ('dead-code', 'chatons-desktop', 'chatons://cloud/auth/callback', $1, 'openid', \
           'c', 'S256', now(), now() - interval '1 minute')",
        &dead.id,
    )
    .await;
    exec(
        "INSERT INTO cloud_oidc_device_grants (device_code_hash, user_code_hash, client_id, \
           scope, interval_secs, state, user_id, auth_time, expires_at) \
         VALUES ('dead-device', 'dead-user-code', 'chatons-cli', 'openid', 5, 'denied', $1, \
           now(), now() - interval '1 minute')",
        &dead.id,
    )
    .await;
    exec(
        "INSERT INTO cloud_webauthn_ceremonies (id, user_id, state, expires_at) \
         VALUES ('dead-ceremony', $1, '{}', now() - interval '1 minute')",
        &dead.id,
    )
    .await;
    exec(
        "INSERT INTO cloud_mail_outbox (recipient, subject, text_body, html_body, sent_at) \
         VALUES ($1, 's', 't', 'h', now() - interval '8 days')",
        "old@example.com",
    )
    .await;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let mut left = i64::MAX;
    for _ in 0..50 {
        left = count(
            "SELECT (SELECT count(*) FROM cloud_sessions WHERE expires_at < now()) \
                  + (SELECT count(*) FROM cloud_email_verification_tokens WHERE token_hash = 'dead-token') \
                  + (SELECT count(*) FROM cloud_oidc_authorization_codes WHERE code_hash = 'dead-code') \
                  + (SELECT count(*) FROM cloud_oidc_device_grants WHERE device_code_hash = 'dead-device') \
                  + (SELECT count(*) FROM cloud_webauthn_ceremonies WHERE id = 'dead-ceremony') \
                  + (SELECT count(*) FROM cloud_mail_outbox WHERE recipient = 'old@example.com')",
        )
        .await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left, 0, "dead rows are still there");
    // The live user's session is untouched.
    assert_status(app.get("/v1/account", &live.access).await, 200);
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in [
        "sessions",
        "authorization_codes",
        "device_grants",
        "webauthn_ceremonies",
        "email_tokens",
        "sent_mails",
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("chatons_housekeeping_purged_total")
                    && l.contains(&format!("\"{kind}\""))
            })
            .unwrap_or_else(|| panic!("no metric for {kind}: {metrics}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1.0, "{line}");
    }
}
