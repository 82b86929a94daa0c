//! Device grants: a decision is taken once, polls follow RFC 8628, a code is redeemed once.

use chrono::Duration;
use cloud_api::domain::{DeviceGrantState, UserId, now};
use cloud_api::issuer::device::{Decision, DeviceGrant, PollOutcome};

use super::Backend;
use crate::store_contract::create;

fn grant(device: &str, user_code: &str, expires_in: Duration) -> DeviceGrant {
    DeviceGrant {
        device_code_hash: device.into(),
        user_code_hash: user_code.into(),
        client_id: "chatons-cli".into(),
        scope: "openid offline_access".into(),
        interval_secs: 5,
        state: DeviceGrantState::Pending,
        user_id: None,
        auth_time: None,
        amr: None,
        last_polled_at: None,
        expires_at: now() + expires_in,
    }
}

pub(super) async fn device_grants_decide_once_poll_and_purge(
    Backend {
        devices: grants,
        store,
        ..
    }: Backend,
) {
    // Grants name real users (a foreign key on Postgres).
    let user: UserId = create(&store, "device@example.com").await.user.id;
    let t0 = now();
    let minutes = Duration::minutes;
    grants
        .insert(&grant("d1", "u1", minutes(10)))
        .await
        .unwrap();
    // A user code is unique among grants (the caller draws another one).
    assert!(
        grants
            .insert(&grant("d2", "u1", minutes(10)))
            .await
            .is_err()
    );
    grants
        .insert(&grant("d2", "u2", minutes(10)))
        .await
        .unwrap();
    grants
        .insert(&grant("d3", "u3", -minutes(1)))
        .await
        .unwrap();

    assert!(
        grants
            .pending_by_user_code("u1", t0)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        grants
            .pending_by_user_code("u3", t0)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        grants
            .pending_by_user_code("nope", t0)
            .await
            .unwrap()
            .is_none()
    );

    // Polls before the decision; another client's poll is unknown and changes nothing.
    assert_eq!(
        grants.poll("d1", "chatons-cli", t0).await.unwrap(),
        PollOutcome::Pending
    );
    assert_eq!(
        grants.poll("d1", "other", t0).await.unwrap(),
        PollOutcome::Unknown
    );
    assert_eq!(
        grants
            .poll("d1", "chatons-cli", t0 + Duration::seconds(1))
            .await
            .unwrap(),
        PollOutcome::SlowDown(10)
    );
    assert_eq!(
        grants.poll("d3", "chatons-cli", t0).await.unwrap(),
        PollOutcome::Expired
    );
    assert_eq!(
        grants.poll("dx", "chatons-cli", t0).await.unwrap(),
        PollOutcome::Unknown
    );

    // A decision is taken once.
    let approve = Decision {
        user: user.clone(),
        auth_time: t0,
        amr: "pwd otp mfa".into(),
        approve: true,
    };
    let deny = Decision {
        approve: false,
        ..approve.clone()
    };
    assert!(grants.decide("u1", &approve, t0).await.unwrap());
    assert!(
        !grants.decide("u1", &deny, t0).await.unwrap(),
        "already decided"
    );
    assert!(
        grants
            .pending_by_user_code("u1", t0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!grants.decide("u3", &approve, t0).await.unwrap(), "expired");
    assert!(grants.decide("u2", &deny, t0).await.unwrap());

    // The approved grant is redeemed once, after the (raised) interval.
    let later = t0 + Duration::seconds(20);
    match grants.poll("d1", "chatons-cli", later).await.unwrap() {
        PollOutcome::Approved(g) => {
            assert_eq!(g.user_id.as_ref(), Some(&user));
            assert_eq!(g.scope, "openid offline_access");
            assert_eq!(g.amr.as_deref(), Some("pwd otp mfa"));
            assert_eq!(g.state, DeviceGrantState::Consumed);
        }
        other => panic!("not approved: {other:?}"),
    }
    let again = later + Duration::seconds(30);
    assert_eq!(
        grants.poll("d1", "chatons-cli", again).await.unwrap(),
        PollOutcome::AlreadyRedeemed
    );
    assert_eq!(
        grants.poll("d2", "chatons-cli", again).await.unwrap(),
        PollOutcome::Denied
    );

    // Housekeeping removes what expired, nothing else.
    assert_eq!(grants.purge_expired(t0).await.unwrap(), 1);
    assert_eq!(
        grants.poll("d3", "chatons-cli", t0).await.unwrap(),
        PollOutcome::Unknown
    );
    assert_eq!(
        grants.poll("d2", "chatons-cli", again).await.unwrap(),
        PollOutcome::Denied
    );
}
