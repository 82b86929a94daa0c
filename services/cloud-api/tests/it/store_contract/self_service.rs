//! Account self-service in the store: live session families, password change, change of
//! address, account deletion. Same scenarios on memory and on Postgres (`contract!`).

use cloud_api::store::{AccountDeletion, EmailChange, EmailChangeOutcome, PasswordChange};

use super::*;

contract!(
    self_service_live_sessions_one_row_per_family,
    self_service_password_change_keeps_the_asking_family,
    self_service_email_change_single_use_and_taken,
    self_service_account_deletion_cascades_or_names_the_blocking_org,
);

/// `session` started `minutes_ago`, of `client`.
fn aged(
    user: &UserId,
    access: &str,
    refresh: Option<&str>,
    client: &str,
    minutes_ago: i64,
) -> Session {
    let mut s = session(user, access, refresh, Duration::hours(1));
    let shift = Duration::minutes(minutes_ago);
    s.created_at -= shift;
    s.auth_time -= shift;
    s.client_id = client.into();
    s
}

async fn self_service_live_sessions_one_row_per_family(store: DynStore) {
    let a = create(&store, "live@example.com").await;
    let b = create(&store, "live-other@example.com").await;
    let desktop = aged(&a.user.id, "ls-d1", Some("ls-r1"), "chatons-desktop", 30);
    let portal = aged(&a.user.id, "ls-p", None, "chatons-portal", 10);
    let mut dead = aged(&a.user.id, "ls-dead", None, "chatons-portal", 20);
    dead.expires_at = now() - Duration::seconds(1);
    let revoked = aged(&a.user.id, "ls-rev", None, "chatons-cli", 5);
    let theirs = aged(&b.user.id, "ls-b", None, "chatons-portal", 1);
    for s in [&desktop, &portal, &dead, &revoked, &theirs] {
        store.insert_session(s).await.unwrap();
    }
    store
        .revoke_family(&revoked.family_id, now())
        .await
        .unwrap();
    // A refresh: the family gets a second row and stays one entry.
    let next = successor("ls-d2", "ls-r2");
    let RotateOutcome::Rotated(next) = rotate(&store, "ls-r1", next, now(), NO_GRACE).await else {
        panic!("rotation");
    };

    let live = store.live_sessions(&a.user.id, now(), 10).await.unwrap();
    let families: Vec<&FamilyId> = live.iter().map(|s| &s.family_id).collect();
    assert_eq!(
        families,
        vec![&portal.family_id, &desktop.family_id],
        "newest first, live only"
    );
    let d = &live[1];
    assert_eq!(d.client_id, "chatons-desktop");
    assert_eq!(d.created_at, desktop.created_at, "when the family started");
    assert_eq!(d.auth_time, desktop.auth_time);
    assert_eq!(d.last_used_at, next.created_at, "its newest pair");
    assert_eq!(
        Some(d.expires_at),
        next.refresh_expires_at,
        "its live refresh token"
    );
    assert_eq!(live[0].expires_at, portal.expires_at);
    assert_eq!(
        store
            .live_sessions(&a.user.id, now(), 1)
            .await
            .unwrap()
            .len(),
        1,
        "limit"
    );

    // Another user's family, or a dead one, is not found and nothing changes.
    assert!(
        !store
            .revoke_user_family(&b.user.id, &desktop.family_id, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_user_family(&a.user.id, &dead.family_id, now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_user_family(&a.user.id, &theirs.family_id, now())
            .await
            .unwrap()
    );
    assert!(is_live(&store, "ls-d2").await && is_live(&store, "ls-b").await);
    assert!(
        store
            .revoke_user_family(&a.user.id, &desktop.family_id, now())
            .await
            .unwrap()
    );
    assert!(!is_live(&store, "ls-d1").await && !is_live(&store, "ls-d2").await);
    let refreshed = rotate(
        &store,
        "ls-r2",
        successor("ls-d3", "ls-r3"),
        now(),
        NO_GRACE,
    )
    .await;
    assert!(
        !matches!(refreshed, RotateOutcome::Rotated(_)),
        "the refresh token died too"
    );

    let cli = aged(&a.user.id, "ls-cli", Some("ls-cli-r"), "chatons-cli", 2);
    store.insert_session(&cli).await.unwrap();
    let ended = store
        .revoke_other_families(&a.user.id, &portal.family_id, now())
        .await;
    assert_eq!(ended.unwrap(), 1, "the command line's family");
    assert!(is_live(&store, "ls-p").await, "the kept family");
    assert!(is_live(&store, "ls-b").await, "another user's");
    let live = store.live_sessions(&a.user.id, now(), 10).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(
        store
            .live_sessions(&UserId::from("user-none"), now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn self_service_password_change_keeps_the_asking_family(store: DynStore) {
    let a = create(&store, "pw-change@example.com").await;
    let b = create(&store, "pw-other@example.com").await;
    let here = aged(&a.user.id, "pc-here", None, "chatons-portal", 3);
    let there = aged(
        &a.user.id,
        "pc-there",
        Some("pc-there-r"),
        "chatons-desktop",
        2,
    );
    let theirs = aged(&b.user.id, "pc-b", None, "chatons-portal", 1);
    for s in [&here, &there, &theirs] {
        store.insert_session(s).await.unwrap();
    }
    let later = now() + Duration::hours(1);
    email_token(
        &store,
        EmailTokenKind::PasswordReset,
        "pc-reset",
        &a.user.id,
        later,
    )
    .await;
    let old = a.user.password_hash.clone().unwrap();
    let stale = pw_change(&a.user.id, "$argon2id$stale", &here.family_id);
    assert!(!store.change_password(stale).await.unwrap());
    assert!(
        is_live(&store, "pc-there").await,
        "a refused change changes nothing"
    );
    let change = pw_change(&a.user.id, &old, &here.family_id);
    assert!(store.change_password(change).await.unwrap());
    let user = store.user(&a.user.id).await.unwrap().unwrap();
    assert_eq!(user.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(is_live(&store, "pc-here").await, "the asking family stays");
    assert!(!is_live(&store, "pc-there").await, "the others end");
    assert!(is_live(&store, "pc-b").await, "another user's stay");
    let reset = store
        .reset_password_with_token("pc-reset", "x", now())
        .await;
    assert_eq!(reset.unwrap(), None, "pending reset links stop working");
    let nobody = UserId::from("user-none");
    let gone = pw_change(&nobody, "$argon2id$new", &here.family_id);
    assert!(!store.change_password(gone).await.unwrap());
}

/// A change of `user`'s password from `old` to `$argon2id$new`, keeping `keep`.
fn pw_change<'a>(user: &'a UserId, old: &'a str, keep: &'a FamilyId) -> PasswordChange<'a> {
    PasswordChange {
        user,
        old_hash: old,
        new_hash: "$argon2id$new",
        keep,
        now: now(),
    }
}

async fn self_service_email_change_single_use_and_taken(store: DynStore) {
    let a = create(&store, "move-me@example.com").await;
    let b = create(&store, "taken@example.com").await;
    let later = now() + Duration::hours(1);
    let change = |hash: &str, to: &str, expires_at| EmailChange {
        hash: hash.into(),
        user: a.user.id.clone(),
        new_email: to.into(),
        expires_at,
    };
    let confirm = async |hash: &str| store.confirm_email_change(hash, now()).await.unwrap();
    store
        .insert_email_change(&change("ec-1", "first@example.com", later))
        .await
        .unwrap();
    store
        .insert_email_change(&change("ec-2", "moved@example.com", later))
        .await
        .unwrap();
    assert_eq!(
        confirm("ec-1").await,
        EmailChangeOutcome::Invalid,
        "replaced by the later one"
    );
    assert_eq!(confirm("ec-none").await, EmailChangeOutcome::Invalid);
    email_token(
        &store,
        EmailTokenKind::Verification,
        "ec-verify",
        &a.user.id,
        later,
    )
    .await;
    email_token(
        &store,
        EmailTokenKind::PasswordReset,
        "ec-reset",
        &a.user.id,
        later,
    )
    .await;

    assert_eq!(
        confirm("ec-2").await,
        EmailChangeOutcome::Changed {
            user: a.user.id.clone(),
            old_email: "move-me@example.com".into(),
            new_email: "moved@example.com".into(),
        }
    );
    assert_eq!(
        confirm("ec-2").await,
        EmailChangeOutcome::Invalid,
        "single use"
    );
    let moved = store
        .user_by_email("MOVED@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.id, a.user.id);
    assert!(moved.email_verified_at.is_some());
    assert!(
        store
            .user_by_email("move-me@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.verify_email_token("ec-verify", now()).await.unwrap(),
        None
    );
    let reset = store
        .reset_password_with_token("ec-reset", "x", now())
        .await;
    assert_eq!(
        reset.unwrap(),
        None,
        "links mailed to the old address stop working"
    );

    // Another account holds the address (any case): the link is used up, nothing changes.
    store
        .insert_email_change(&change("ec-3", "taken@example.com", later))
        .await
        .unwrap();
    assert_eq!(confirm("ec-3").await, EmailChangeOutcome::Taken);
    assert_eq!(confirm("ec-3").await, EmailChangeOutcome::Invalid);
    assert_eq!(
        store.user(&a.user.id).await.unwrap().unwrap().email,
        "moved@example.com"
    );
    assert_eq!(store.user(&b.user.id).await.unwrap().unwrap(), b.user);

    let past = now() - Duration::seconds(1);
    store
        .insert_email_change(&change("ec-old", "late@example.com", past))
        .await
        .unwrap();
    assert_eq!(
        confirm("ec-old").await,
        EmailChangeOutcome::Invalid,
        "expired"
    );
    store
        .insert_email_change(&change("ec-purge", "late@example.com", past))
        .await
        .unwrap();
    assert!(store.purge_email_tokens(now()).await.unwrap() >= 1);
    assert_eq!(confirm("ec-purge").await, EmailChangeOutcome::Invalid);
}

/// A non-personal organization created by `owner`.
async fn team(store: &DynStore, owner: &Account, name: &str) -> Organization {
    let org = Organization {
        id: OrgId::generate(),
        slug: format!("team-{}", uuid::Uuid::new_v4().simple()),
        name: name.into(),
        owner_user_id: Some(owner.user.id.clone()),
        is_personal: false,
        created_at: now(),
    };
    store
        .create_organization(&org, &owner.user.id)
        .await
        .unwrap();
    org
}

/// `member` joins `org` with `role` (through an accepted invite).
async fn join(store: &DynStore, org: &Organization, member: &Account, role: Role) {
    let t = now();
    let invite = Invite {
        id: InviteId::generate(),
        token_hash: format!("join-{}", uuid::Uuid::new_v4().simple()),
        organization_id: org.id.clone(),
        invited_email: member.user.email.clone(),
        role: Role::Member,
        inviter_user_id: org.owner_user_id.clone(),
        expires_at: t + Duration::days(1),
        accepted_at: None,
        revoked_at: None,
        created_at: t,
    };
    store.insert_invite(&invite).await.unwrap();
    store
        .accept_invite(&invite.id, &member.user.id, t)
        .await
        .unwrap();
    if role != Role::Member {
        store
            .set_role(&org.id, &member.user.id, role)
            .await
            .unwrap();
    }
}

async fn self_service_account_deletion_cascades_or_names_the_blocking_org(store: DynStore) {
    let a = create(&store, "leaving@example.com").await;
    let b = create(&store, "staying@example.com").await;
    let shared = team(&store, &a, "Shared").await;
    let solo = team(&store, &a, "Solo").await;
    let theirs = team(&store, &b, "Theirs").await;
    join(&store, &shared, &b, Role::Member).await;
    join(&store, &theirs, &a, Role::Admin).await;
    let conversation = conversation_in(&a.project, "Mine");
    store.insert_conversation(&conversation).await.unwrap();
    let mine = aged(&a.user.id, "del-a", Some("del-a-r"), "chatons-desktop", 1);
    let kept = aged(&b.user.id, "del-b", None, "chatons-portal", 1);
    store.insert_session(&mine).await.unwrap();
    store.insert_session(&kept).await.unwrap();

    // The last owner of an organization with another member: refused, naming it.
    let refused = store.delete_account(&a.user.id).await.unwrap();
    let AccountDeletion::LastOwner(blocking) = refused else {
        panic!("expected LastOwner, got {refused:?}");
    };
    assert_eq!(blocking, vec![shared.clone()]);
    assert!(
        store.user(&a.user.id).await.unwrap().is_some(),
        "nothing changed"
    );
    assert!(store.organization(&solo.id).await.unwrap().is_some());
    assert!(is_live(&store, "del-a").await);

    // Once the other member is an owner too, the account goes with its personal organization
    // and the one it was alone in; the shared one stays with its other owner.
    store
        .set_role(&shared.id, &b.user.id, Role::Owner)
        .await
        .unwrap();
    let done = store.delete_account(&a.user.id).await.unwrap();
    let mut expected = vec![a.org.id.clone(), solo.id.clone()];
    expected.sort();
    assert_eq!(
        done,
        AccountDeletion::Deleted {
            organizations: expected
        }
    );
    assert!(store.user(&a.user.id).await.unwrap().is_none());
    assert!(
        store
            .user_by_email("leaving@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.organization(&a.org.id).await.unwrap().is_none());
    assert!(store.organization(&solo.id).await.unwrap().is_none());
    assert!(
        store.project(&a.project.id).await.unwrap().is_none(),
        "cascaded"
    );
    assert!(
        store
            .conversation(&conversation.id)
            .await
            .unwrap()
            .is_none(),
        "cascaded"
    );
    assert!(!is_live(&store, "del-a").await, "its sessions are gone");
    assert!(is_live(&store, "del-b").await);
    let left = store.organization(&shared.id).await.unwrap().unwrap();
    assert_eq!(left.owner_user_id, None, "the creator reference is cleared");
    let members = store
        .members(&shared.id, &PageReq::first(10))
        .await
        .unwrap();
    assert_eq!(members.items.len(), 1);
    assert_eq!(members.items[0].membership.user_id, b.user.id);
    assert_eq!(store.role_in(&theirs.id, &a.user.id).await.unwrap(), None);
    assert!(store.organization(&theirs.id).await.unwrap().is_some());
    assert!(store.user(&b.user.id).await.unwrap().is_some());
    assert!(
        not_found(store.delete_account(&a.user.id).await),
        "already gone"
    );
}
