//! Accounts, token sessions, plans, entitlements and one-time email tokens.

use super::*;

pub(super) async fn accounts_are_unique_per_email(store: DynStore) {
    let a = create(&store, "Alice@Example.com").await;
    let again = account("alice@example.com");
    let err = store
        .create_account(NewAccount {
            user: again.user,
            organization: again.org,
            default_project: again.project,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let found = store
        .user_by_email("ALICE@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, a.user);
    assert_eq!(store.user(&a.user.id).await.unwrap().unwrap(), a.user);
    assert!(
        store
            .user(&UserId::from("user-none"))
            .await
            .unwrap()
            .is_none()
    );
    let m = store.memberships_of(&a.user.id).await.unwrap();
    assert_eq!(m, vec![(a.org.clone(), Role::Owner)]);
    let projects = store
        .projects(std::slice::from_ref(&a.org.id), &PageReq::first(10))
        .await
        .unwrap();
    assert_eq!(projects.items, vec![a.project.clone()]);
    let users = store.list_users(&PageReq::first(10)).await.unwrap();
    assert_eq!(
        users.items.len(),
        1,
        "the refused account left nothing behind"
    );
}

pub(super) async fn sessions_expire_and_revoke(store: DynStore) {
    let a = create(&store, "s@example.com").await;
    let live = session(&a.user.id, "h-live", None, Duration::hours(1));
    let expired = session(&a.user.id, "h-old", None, Duration::seconds(-1));
    store.insert_session(&live).await.unwrap();
    store.insert_session(&expired).await.unwrap();
    assert_eq!(
        store.session_by_access_hash("h-live", now()).await.unwrap(),
        Some(live.clone())
    );
    assert!(!is_live(&store, "h-old").await);
    assert!(!is_live(&store, "h-none").await);
    store
        .set_active_organization(&a.user.id, &a.org.id)
        .await
        .unwrap();
    let s = store
        .session_by_access_hash("h-live", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.active_organization_id, Some(a.org.id.clone()));
    store.revoke_session(&live.id, now()).await.unwrap();
    assert!(!is_live(&store, "h-live").await);
}

pub(super) async fn refresh_rotates_and_detects_reuse(store: DynStore) {
    let a = create(&store, "r@example.com").await;
    let first = session(&a.user.id, "a1", Some("r1"), Duration::hours(1));
    store.insert_session(&first).await.unwrap();
    let mut next = successor("a2", "r2");
    next.client_id = String::new();
    let out = rotate(&store, "r1", next, now(), NO_GRACE).await;
    let RotateOutcome::Rotated(rotated) = out else {
        panic!("expected a rotation, got {out:?}");
    };
    assert_eq!(rotated.family_id, first.family_id);
    assert_eq!(rotated.user_id, a.user.id);
    assert_eq!(rotated.client_id, "chatons-desktop");
    assert_eq!(
        rotated.amr, "pwd otp mfa",
        "a refresh keeps how the user signed in"
    );
    assert!(is_live(&store, "a2").await);
    // The first refresh token again: re-use revokes the whole family.
    let again = successor("a3", "r3");
    let out = rotate(&store, "r1", again, now(), NO_GRACE).await;
    assert_eq!(out, RotateOutcome::Reused);
    assert!(!is_live(&store, "a2").await);
    assert!(!is_live(&store, "a3").await);
    let unknown = successor("a4", "r4");
    let out = rotate(&store, "nope", unknown, now(), NO_GRACE).await;
    assert_eq!(out, RotateOutcome::Invalid);
    // An expired refresh token is invalid (and not a re-use).
    let mut old = session(&a.user.id, "a5", Some("r5"), Duration::hours(1));
    old.refresh_expires_at = Some(now() - Duration::seconds(1));
    store.insert_session(&old).await.unwrap();
    let out = rotate(&store, "r5", successor("a6", "r6"), now(), NO_GRACE).await;
    assert_eq!(out, RotateOutcome::Invalid);
    assert!(is_live(&store, "a5").await);
    // revoke_family ends every session of a family.
    store.revoke_family(&old.family_id, now()).await.unwrap();
    assert!(!is_live(&store, "a5").await);
}

pub(super) async fn password_hash_is_replaced_only_if_unchanged(store: DynStore) {
    let a = create(&store, "ph@example.com").await;
    for (old, replaced) in [("scrypt$other", false), ("$argon2id$fake", true)] {
        let done = store.replace_password_hash(&a.user.id, old, "$argon2id$new");
        assert_eq!(done.await.unwrap(), replaced, "{old}");
    }
    let u = store.user(&a.user.id).await.unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$new"));
}

pub(super) async fn refresh_reuse_within_grace_returns_the_successor(store: DynStore) {
    let a = create(&store, "g@example.com").await;
    let first = session(&a.user.id, "ga1", Some("gr1"), Duration::hours(1));
    store.insert_session(&first).await.unwrap();
    let t = now();
    let RotateOutcome::Rotated(rotated) =
        rotate(&store, "gr1", successor("ga2", "gr2"), t, GRACE).await
    else {
        panic!("expected a rotation");
    };
    // The same token again, naming the same successor, within the window: that successor, and
    // nothing new is stored or revoked.
    let within = t + Duration::seconds(5);
    let out = rotate(&store, "gr1", successor("ga2", "gr2"), within, GRACE).await;
    assert_eq!(out, RotateOutcome::Repeated(rotated));
    assert!(is_live(&store, "ga2").await);
    // A successor the store never issued (another derivation) is refused without revoking.
    let out = rotate(&store, "gr1", successor("gx", "gxr"), within, GRACE).await;
    assert_eq!(out, RotateOutcome::Invalid);
    assert!(is_live(&store, "ga2").await);
    // After the window the same token is a re-use: the family is revoked.
    let late = t + Duration::seconds(31);
    let out = rotate(&store, "gr1", successor("ga2", "gr2"), late, GRACE).await;
    assert_eq!(out, RotateOutcome::Reused);
    assert!(!is_live(&store, "ga2").await);
    let out = rotate(&store, "gr2", successor("ga3", "gr3"), now(), GRACE).await;
    assert_eq!(out, RotateOutcome::Reused, "a revoked family stays revoked");
}

pub(super) async fn plans_default_and_hidden_switch_both_ways(store: DynStore) {
    let plans = store.plans().await.unwrap();
    let ids: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec!["max", "plus", "pro"]);
    store
        .update_plan(
            "pro",
            &PlanPatch {
                is_default: Some(true),
                is_hidden: Some(true),
                label: Some("Pro+".into()),
                parallel_sessions_limit: Some(12),
            },
        )
        .await
        .unwrap();
    let plans = store.plans().await.unwrap();
    let pro = plans.iter().find(|p| p.id == "pro").unwrap();
    assert!(pro.is_default && pro.is_hidden);
    assert_eq!(
        (pro.label.as_str(), pro.parallel_sessions_limit),
        ("Pro+", 12)
    );
    assert!(
        !plans.iter().find(|p| p.id == "plus").unwrap().is_default,
        "one default"
    );
    store
        .update_plan(
            "pro",
            &PlanPatch {
                is_default: Some(false),
                is_hidden: Some(false),
                ..PlanPatch::default()
            },
        )
        .await
        .unwrap();
    let plans = store.plans().await.unwrap();
    let pro = plans.iter().find(|p| p.id == "pro").unwrap();
    assert!(!pro.is_default && !pro.is_hidden, "flags switch back off");
    assert!(matches!(
        store.update_plan("gold", &PlanPatch::default()).await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn entitlements_roundtrip(store: DynStore) {
    let a = create(&store, "e@example.com").await;
    let mut u = a.user.clone();
    u.is_admin = true;
    u.subscription_plan = None;
    u.complimentary = Some(ComplimentaryGrant {
        plan_id: "max".into(),
        granted_at: now(),
        expires_at: Some(now() + Duration::days(3)),
    });
    store.update_user_entitlements(&u).await.unwrap();
    assert_eq!(store.user(&u.id).await.unwrap(), Some(u.clone()));
    u.complimentary = None;
    store.update_user_entitlements(&u).await.unwrap();
    assert_eq!(
        store.user(&u.id).await.unwrap().unwrap().complimentary,
        None
    );
    assert_eq!(
        store.active_runtime_sessions(&u.id, now()).await.unwrap(),
        0
    );
    let ghost = User {
        id: UserId::from("user-ghost"),
        ..u
    };
    assert!(not_found(store.update_user_entitlements(&ghost).await));
}

pub(super) async fn email_tokens_single_use_and_reset_revokes(store: DynStore) {
    use EmailTokenKind::{PasswordReset, Verification};
    let a = create(&store, "tokens@example.com").await;
    let other = create(&store, "other-tokens@example.com").await;
    let later = now() + Duration::hours(1);
    let verify = async |hash: &str| store.verify_email_token(hash, now()).await.unwrap();
    let reset = async |hash: &str, password: &str| {
        let reset = store.reset_password_with_token(hash, password, now());
        reset.await.unwrap()
    };
    email_token(&store, Verification, "v-ok", &a.user.id, later).await;
    let past = now() - Duration::seconds(1);
    email_token(&store, Verification, "v-old", &a.user.id, past).await;
    assert_eq!(verify("v-old").await, None, "expired");
    assert_eq!(verify("v-none").await, None);
    // A reset token is not a verification token.
    email_token(&store, PasswordReset, "r-1", &a.user.id, later).await;
    assert_eq!(verify("r-1").await, None);
    assert_eq!(verify("v-ok").await, Some(a.user.id.clone()));
    let user = store.user(&a.user.id).await.unwrap().unwrap();
    assert!(user.email_verified_at.is_some());
    assert_eq!(verify("v-ok").await, None, "single use");

    email_token(&store, PasswordReset, "r-2", &a.user.id, later).await;
    email_token(&store, PasswordReset, "r-other", &other.user.id, later).await;
    let mine = session(&a.user.id, "h-mine", Some("r-h-mine"), Duration::hours(1));
    let theirs = session(&other.user.id, "h-theirs", None, Duration::hours(1));
    store.insert_session(&mine).await.unwrap();
    store.insert_session(&theirs).await.unwrap();
    let by_verification = reset("v-ok", "new-hash").await;
    assert_eq!(by_verification, None, "a verification token cannot reset");
    assert_eq!(reset("r-2", "new-hash").await, Some(a.user.id.clone()));
    let user = store.user(&a.user.id).await.unwrap().unwrap();
    assert_eq!(user.password_hash.as_deref(), Some("new-hash"));
    assert!(!is_live(&store, "h-mine").await);
    assert!(is_live(&store, "h-theirs").await);
    assert_eq!(reset("r-1", "x").await, None, "older reset tokens are gone");
    assert_eq!(reset("r-2", "x").await, None);
    let theirs_reset = reset("r-other", "other-hash").await;
    assert_eq!(theirs_reset, Some(other.user.id.clone()));
}

pub(super) async fn housekeeping_purges_only_dead_rows(store: DynStore) {
    let a = create(&store, "purge@example.com").await;
    let t = now();
    // Dead: access and refresh both expired. Kept: a live access token, a live refresh token
    // (a rotated row must stay for re-use detection), and a session without refresh.
    let mut dead = session(&a.user.id, "p-dead", Some("pr-dead"), Duration::hours(-2));
    dead.refresh_expires_at = Some(t - Duration::hours(1));
    let mut refreshable = session(&a.user.id, "p-ref", Some("pr-ref"), Duration::hours(-2));
    refreshable.rotated_at = Some(t - Duration::hours(3));
    let live = session(&a.user.id, "p-live", None, Duration::hours(1));
    let dead_plain = session(&a.user.id, "p-dead2", None, Duration::hours(-1));
    for s in [&dead, &refreshable, &live, &dead_plain] {
        store.insert_session(s).await.unwrap();
    }
    assert_eq!(store.purge_sessions(t).await.unwrap(), 2);
    for (refresh, kept) in [("pr-dead", false), ("pr-ref", true)] {
        let found = store.session_by_refresh_hash(refresh).await.unwrap();
        assert_eq!(found.is_some(), kept, "{refresh}");
    }
    let found = store.session_by_access_hash("p-live", t).await.unwrap();
    assert!(found.is_some());
    assert_eq!(store.purge_sessions(t).await.unwrap(), 0);

    let (old, new) = (t - Duration::seconds(5), t + Duration::hours(1));
    email_token(
        &store,
        EmailTokenKind::Verification,
        "pv-old",
        &a.user.id,
        old,
    )
    .await;
    email_token(
        &store,
        EmailTokenKind::PasswordReset,
        "pp-old",
        &a.user.id,
        old,
    )
    .await;
    email_token(
        &store,
        EmailTokenKind::Verification,
        "pv-new",
        &a.user.id,
        new,
    )
    .await;
    assert_eq!(store.purge_email_tokens(t).await.unwrap(), 2);
    assert_eq!(
        store.verify_email_token("pv-new", t).await.unwrap(),
        Some(a.user.id.clone()),
        "the live token survives"
    );
}
