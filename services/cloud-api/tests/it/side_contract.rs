//! The contract of the stores outside `Store`: authorization codes, device grants, sign-in
//! factors and the mail outbox. Every scenario runs against the in-memory and the Postgres
//! implementation.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use cloud_api::domain::*;
use cloud_api::issuer::codes::{AuthCode, AuthCodes, MemoryAuthCodes, PgAuthCodes};
use cloud_api::issuer::device::{DeviceGrants, MemoryDeviceGrants, PgDeviceGrants};
use cloud_api::mail::{Mail, MailOutbox, MemoryOutbox, PgOutbox};
use cloud_api::mfa::{FactorStore, MemoryFactors, PgFactors};
use cloud_api::store::DynStore;
use cloud_api::store::memory::MemoryStore;
use cloud_api::store::postgres::PgStore;

use crate::store_contract::create;

mod devices;
mod factors;

/// The side stores of one backend; `store` holds the users their rows refer to.
pub(crate) struct Backend {
    codes: Arc<dyn AuthCodes>,
    outbox: Arc<dyn MailOutbox>,
    devices: Arc<dyn DeviceGrants>,
    factors: Arc<dyn FactorStore>,
    store: DynStore,
}

macro_rules! side_contract {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend {
                        codes: std::sync::Arc::new(super::MemoryAuthCodes::default()),
                        outbox: std::sync::Arc::new(super::MemoryOutbox::new()),
                        devices: std::sync::Arc::new(super::MemoryDeviceGrants::default()),
                        factors: std::sync::Arc::new(super::MemoryFactors::default()),
                        store: std::sync::Arc::new(super::MemoryStore::new()),
                    })
                    .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = cloud_testkit::db::TestDb::new().await;
                    let pool = db.pool.clone();
                    super::$name(super::Backend {
                        codes: std::sync::Arc::new(super::PgAuthCodes(pool.clone())),
                        outbox: std::sync::Arc::new(super::PgOutbox::new(pool.clone())),
                        devices: std::sync::Arc::new(super::PgDeviceGrants(pool.clone())),
                        factors: std::sync::Arc::new(super::PgFactors(pool.clone())),
                        store: std::sync::Arc::new(super::PgStore::new(pool)),
                    })
                    .await;
                }
            )*
        }
    };
}

side_contract!(
    codes_are_single_use_bound_and_purged,
    outbox_claims_leases_retries_and_counts,
    device_grants_decide_once_poll_and_purge,
    totp_steps_and_recovery_codes_are_used_once,
    passkeys_are_unique_listed_and_removed,
    ceremonies_are_taken_once_and_expire,
    totp_secrets_reseal_under_a_rotated_key,
);

use devices::device_grants_decide_once_poll_and_purge;
use factors::{
    ceremonies_are_taken_once_and_expire, passkeys_are_unique_listed_and_removed,
    totp_secrets_reseal_under_a_rotated_key, totp_steps_and_recovery_codes_are_used_once,
};

fn code(user: &UserId, hash: &str, ttl: Span) -> AuthCode {
    let t = now();
    AuthCode {
        code_hash: hash.into(),
        client_id: "chatons-desktop".into(),
        redirect_uri: "chatons://cloud/auth/callback".into(),
        user_id: user.clone(),
        scope: "openid offline_access".into(),
        nonce: Some("n".into()),
        code_challenge: "challenge".into(),
        auth_time: t,
        expires_at: t + ttl,
        consumed_at: None,
        family_id: None,
        amr: "pwd".into(),
    }
}

async fn codes_are_single_use_bound_and_purged(Backend { codes, store, .. }: Backend) {
    let a = create(&store, &format!("c{}@example.com", uuid::Uuid::new_v4())).await;
    let live = code(&a.user.id, "h-live", Span::minutes(5));
    codes.insert(&live).await.unwrap();
    assert_eq!(codes.get("h-live").await.unwrap(), Some(live.clone()));
    assert_eq!(codes.get("h-none").await.unwrap(), None);
    assert!(codes.consume("h-live", now()).await.unwrap());
    assert!(
        !codes.consume("h-live", now()).await.unwrap(),
        "a second consume is a replay"
    );
    let family = FamilyId::generate();
    codes.bind_family("h-live", &family).await.unwrap();
    let read = codes.get("h-live").await.unwrap().unwrap();
    assert!(read.consumed_at.is_some());
    assert_eq!(read.family_id, Some(family));
    let expired = code(&a.user.id, "h-old", Span::seconds(-10));
    codes.insert(&expired).await.unwrap();
    assert_eq!(codes.purge_expired(now()).await.unwrap(), 1);
    assert_eq!(codes.get("h-old").await.unwrap(), None);
    assert!(codes.get("h-live").await.unwrap().is_some());
}

fn mail(to: &str) -> Mail {
    Mail {
        recipient: to.into(),
        subject: "Hello".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
    }
}

async fn outbox_claims_leases_retries_and_counts(Backend { outbox, .. }: Backend) {
    outbox.enqueue(&mail("a@example.com")).await.unwrap();
    outbox.enqueue(&mail("b@example.com")).await.unwrap();
    assert_eq!(outbox.backlog().await.unwrap(), 2);
    let lease = Duration::from_secs(60);
    let t = now();
    let first = outbox.claim_due(t, 1, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].mail, mail("a@example.com"));
    let second = outbox.claim_due(t, 10, lease).await.unwrap();
    assert_eq!(
        second.len(),
        1,
        "the leased message is not handed out twice"
    );
    assert_eq!(second[0].mail.recipient, "b@example.com");
    assert!(outbox.claim_due(t, 10, lease).await.unwrap().is_empty());
    outbox.mark_sent(first[0].id, t).await.unwrap();
    assert_eq!(outbox.backlog().await.unwrap(), 1);
    // A failure schedules a retry; once due it is claimed again with its attempt counted.
    outbox
        .mark_failed(second[0].id, "smtp down", t + Span::seconds(30))
        .await
        .unwrap();
    assert!(
        outbox
            .claim_due(t + Span::seconds(10), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = outbox
        .claim_due(t + Span::seconds(31), 10, lease)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 2);
    assert_eq!(outbox.backlog().await.unwrap(), 1);
    // Housekeeping deletes delivered mail older than the cut-off, never pending mail.
    assert_eq!(
        outbox.purge_sent(t).await.unwrap(),
        0,
        "sent at t, not before"
    );
    assert_eq!(outbox.purge_sent(t + Span::seconds(1)).await.unwrap(), 1);
    assert_eq!(outbox.backlog().await.unwrap(), 1);
    assert!(
        !outbox
            .claim_due(t + Span::hours(1), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
}
