//! Sign-in factors: a TOTP step and a recovery code are accepted once; passkey ids are unique
//! and only their owner removes them.

use cloud_api::domain::{Sealed, UserId, now};
use cloud_api::mfa::{Ceremony, PasskeyRecord};
use serde_json::json;

use super::Backend;
use crate::store_contract::create;

fn sealed(byte: u8) -> Sealed {
    Sealed {
        ciphertext: vec![byte; 8],
        nonce: vec![byte; 12],
        key_id: "k1".into(),
    }
}

pub(super) async fn totp_steps_and_recovery_codes_are_used_once(
    Backend { factors, store, .. }: Backend,
) {
    let user: UserId = create(&store, "totp@example.com").await.user.id;
    assert_eq!(factors.totp(&user).await.unwrap(), None);
    // An unconfirmed secret can be replaced; it accepts no step.
    factors.begin_totp(&user, &sealed(1)).await.unwrap();
    factors.begin_totp(&user, &sealed(2)).await.unwrap();
    let pending = factors.totp(&user).await.unwrap().unwrap();
    assert_eq!((pending.sealed, pending.confirmed), (sealed(2), false));
    assert!(!factors.use_totp_step(&user, 100).await.unwrap());

    let codes = ["r1".to_owned(), "r2".to_owned()];
    assert!(factors.confirm_totp(&user, 100, &codes).await.unwrap());
    assert!(
        !factors.confirm_totp(&user, 101, &codes).await.unwrap(),
        "confirmed once"
    );
    assert!(
        factors.begin_totp(&user, &sealed(3)).await.is_err(),
        "turn it off first"
    );
    assert_eq!(
        factors.totp(&user).await.unwrap().unwrap().last_step,
        Some(100)
    );

    // Each step once, and never an older one.
    assert!(!factors.use_totp_step(&user, 100).await.unwrap());
    assert!(factors.use_totp_step(&user, 101).await.unwrap());
    assert!(!factors.use_totp_step(&user, 101).await.unwrap());
    assert!(!factors.use_totp_step(&user, 99).await.unwrap());

    assert_eq!(factors.recovery_codes_left(&user).await.unwrap(), 2);
    assert!(factors.use_recovery_code(&user, "r1", now()).await.unwrap());
    assert!(
        !factors.use_recovery_code(&user, "r1", now()).await.unwrap(),
        "used"
    );
    assert!(
        !factors
            .use_recovery_code(&user, "nope", now())
            .await
            .unwrap()
    );
    let other: UserId = create(&store, "other-totp@example.com").await.user.id;
    assert!(
        !factors
            .use_recovery_code(&other, "r2", now())
            .await
            .unwrap(),
        "not theirs"
    );
    assert_eq!(factors.recovery_codes_left(&user).await.unwrap(), 1);

    factors.remove_totp(&user).await.unwrap();
    assert_eq!(factors.totp(&user).await.unwrap(), None);
    assert_eq!(factors.recovery_codes_left(&user).await.unwrap(), 0);
    assert!(!factors.use_recovery_code(&user, "r2", now()).await.unwrap());
    factors.begin_totp(&user, &sealed(4)).await.unwrap();
}

pub(super) async fn passkeys_are_unique_listed_and_removed(
    Backend { factors, store, .. }: Backend,
) {
    let ada: UserId = create(&store, "passkey@example.com").await.user.id;
    let bob: UserId = create(&store, "passkey-bob@example.com").await.user.id;
    let t = now();
    let key = |id: &str, user: &UserId| PasskeyRecord {
        id: id.into(),
        user_id: user.clone(),
        name: format!("key {id}"),
        credential: json!({"id": id, "counter": 0}),
        created_at: t,
        last_used_at: None,
    };
    factors.add_passkey(&key("k1", &ada)).await.unwrap();
    factors.add_passkey(&key("k2", &ada)).await.unwrap();
    assert!(
        factors.add_passkey(&key("k1", &bob)).await.is_err(),
        "ids are unique"
    );
    let listed: Vec<String> = factors
        .passkeys(&ada)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed, ["k1", "k2"]);
    assert!(factors.passkeys(&bob).await.unwrap().is_empty());

    factors
        .touch_passkey("k1", &json!({"id": "k1", "counter": 7}), t)
        .await
        .unwrap();
    let touched = factors.passkey("k1").await.unwrap().unwrap();
    assert_eq!(touched.credential["counter"], 7);
    assert!(touched.last_used_at.is_some());

    assert!(
        !factors.remove_passkey(&bob, "k1").await.unwrap(),
        "not bob's"
    );
    assert!(factors.remove_passkey(&ada, "k1").await.unwrap());
    assert_eq!(factors.passkey("k1").await.unwrap(), None);
    assert!(!factors.remove_passkey(&ada, "k1").await.unwrap());
}

pub(super) async fn ceremonies_are_taken_once_and_expire(Backend { factors, store, .. }: Backend) {
    let user: UserId = create(&store, "ceremony@example.com").await.user.id;
    let t = now();
    let ceremony = |id: &str, user: Option<&UserId>, ttl: i64| Ceremony {
        id: id.into(),
        user_id: user.cloned(),
        state: json!({"challenge": id}),
        expires_at: t + chrono::Duration::seconds(ttl),
    };
    factors
        .put_ceremony(&ceremony("c1", Some(&user), 60))
        .await
        .unwrap();
    factors
        .put_ceremony(&ceremony("c2", None, 60))
        .await
        .unwrap();
    factors
        .put_ceremony(&ceremony("c3", None, -1))
        .await
        .unwrap();
    let taken = factors.take_ceremony("c1", t).await.unwrap();
    assert_eq!(taken, Some(ceremony("c1", Some(&user), 60)));
    assert_eq!(
        factors.take_ceremony("c1", t).await.unwrap(),
        None,
        "taken once"
    );
    assert_eq!(
        factors.take_ceremony("c3", t).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(factors.take_ceremony("nope", t).await.unwrap(), None);
    factors
        .put_ceremony(&ceremony("c4", None, -1))
        .await
        .unwrap();
    assert_eq!(factors.purge_ceremonies(t).await.unwrap(), 1);
    assert!(
        factors.take_ceremony("c2", t).await.unwrap().is_some(),
        "live ones stay"
    );
}

/// A key rotation: `reseal-secrets` moves TOTP secrets under the current key too (bound to the
/// user), leaves unreadable ones alone, and finds nothing left on a second pass.
pub(super) async fn totp_secrets_reseal_under_a_rotated_key(
    Backend { factors, store, .. }: Backend,
) {
    use base64::Engine;
    use cloud_api::crypto::SecretBox;
    use cloud_api::reseal::reseal_totp_secrets;

    let old_key = [5u8; 32];
    let old = SecretBox::from_key(&old_key);
    let foreign = SecretBox::from_key(&[6u8; 32]);
    let mut users = Vec::new();
    for i in 0..3 {
        let user: UserId = create(&store, &format!("reseal-{i}@example.com"))
            .await
            .user
            .id;
        let sealer = if i == 1 { &foreign } else { &old };
        let sealed = sealer
            .seal(&format!("SECRET{i}"), &format!("totp:{user}"))
            .unwrap();
        factors.begin_totp(&user, &sealed).await.unwrap();
        users.push(user);
    }
    let previous = base64::engine::general_purpose::STANDARD.encode(old_key);
    let rotated = SecretBox::from_key(&[7u8; 32])
        .with_previous(&previous)
        .unwrap();
    let report = reseal_totp_secrets(factors.as_ref(), &rotated, |_| {})
        .await
        .unwrap();
    assert_eq!(report.resealed, 2);
    assert_eq!(report.unreadable, vec![users[1].clone()]);
    let current_only = SecretBox::from_key(&[7u8; 32]);
    for i in [0, 2] {
        let record = factors.totp(&users[i]).await.unwrap().unwrap();
        let plain = current_only
            .open(&record.sealed, &format!("totp:{}", users[i]))
            .unwrap();
        assert_eq!(plain, format!("SECRET{i}"));
    }
    let again = reseal_totp_secrets(factors.as_ref(), &rotated, |_| {})
        .await
        .unwrap();
    assert_eq!((again.resealed, again.unreadable.len()), (0, 1));
}
