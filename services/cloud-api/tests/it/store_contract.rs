//! The store contract: every scenario runs against the in-memory store and against Postgres
//! (a fresh schema per test), and both must behave identically.

use chrono::Duration;
use cloud_api::domain::*;
use cloud_api::store::{DynStore, EmailTokenKind, NewAccount, PlanPatch};

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(std::sync::Arc::new(cloud_api::store::memory::MemoryStore::new())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = cloud_testkit::db::TestDb::new().await;
                    super::$name(std::sync::Arc::new(cloud_api::store::postgres::PgStore::new(db.pool.clone()))).await;
                }
            )*
        }
    };
}

contract!(
    accounts_are_unique_per_email,
    sessions_expire_and_revoke,
    refresh_rotates_and_detects_reuse,
    refresh_reuse_within_grace_returns_the_successor,
    plans_default_and_hidden_switch_both_ways,
    organizations_members_and_invites,
    instances_register_once,
    instances_are_bounded_per_user_and_deletable,
    providers_page_update_delete,
    secrets_reseal_under_a_rotated_key,
    projects_and_conversations_page_and_cascade,
    transcripts_append_idempotently,
    memories_visibility_search_and_supersede,
    entitlements_roundtrip,
    password_hash_is_replaced_only_if_unchanged,
    email_tokens_single_use_and_reset_revokes,
    housekeeping_purges_only_dead_rows,
);

pub(crate) struct Account {
    pub(crate) user: User,
    org: Organization,
    project: Project,
}

fn account(email: &str) -> Account {
    let t = now();
    let user = User {
        id: UserId::generate(),
        email: email.to_lowercase(),
        display_name: "Someone".into(),
        is_admin: false,
        subscription_plan: Some("plus".into()),
        password_hash: Some("$argon2id$fake".into()),
        email_verified_at: Some(t),
        complimentary: None,
        created_at: t,
    };
    let org = Organization {
        id: OrgId::generate(),
        slug: format!("slug-{}", uuid::Uuid::new_v4().simple()),
        name: "Org".into(),
        owner_user_id: Some(user.id.clone()),
        is_personal: true,
        created_at: t,
    };
    let project = project_in(&org, &user, "Cloud Workspace");
    Account { user, org, project }
}

fn project_in(org: &Organization, user: &User, name: &str) -> Project {
    let t = now();
    Project {
        id: ProjectId::generate(),
        organization_id: org.id.clone(),
        created_by: Some(user.id.clone()),
        name: name.into(),
        repo_name: org.name.clone(),
        kind: "conversation_only".into(),
        workspace_capability: "chat_only".into(),
        repository: None,
        cloud_status: "connected".into(),
        created_at: t,
        updated_at: t,
    }
}

fn conversation_in(p: &Project, title: &str) -> Conversation {
    let t = now();
    Conversation {
        id: ConversationId::generate(),
        organization_id: p.organization_id.clone(),
        project_id: p.id.clone(),
        created_by: None,
        title: title.into(),
        status: "active".into(),
        model_provider: None,
        model_id: None,
        created_at: t,
        updated_at: t,
    }
}

pub(crate) async fn create(store: &DynStore, email: &str) -> Account {
    let a = account(email);
    store
        .create_account(NewAccount {
            user: a.user.clone(),
            organization: a.org.clone(),
            default_project: a.project.clone(),
        })
        .await
        .expect("create account");
    a
}

const NO_GRACE: std::time::Duration = std::time::Duration::ZERO;
const GRACE: std::time::Duration = std::time::Duration::from_secs(30);

fn session(user: &UserId, access: &str, refresh: Option<&str>, ttl: Duration) -> Session {
    let t = now();
    Session {
        id: SessionId::generate(),
        family_id: FamilyId::generate(),
        user_id: user.clone(),
        client_id: "chatons-desktop".into(),
        scope: "openid".into(),
        access_token_hash: access.into(),
        refresh_token_hash: refresh.map(Into::into),
        active_organization_id: None,
        auth_time: t,
        expires_at: t + ttl,
        refresh_expires_at: refresh.map(|_| t + Duration::days(30)),
        rotated_at: None,
        revoked_at: None,
        created_at: t,
    }
}

async fn accounts_are_unique_per_email(store: DynStore) {
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

async fn sessions_expire_and_revoke(store: DynStore) {
    let a = create(&store, "s@example.com").await;
    let live = session(&a.user.id, "h-live", None, Duration::hours(1));
    let expired = session(&a.user.id, "h-old", None, Duration::seconds(-1));
    store.insert_session(&live).await.unwrap();
    store.insert_session(&expired).await.unwrap();
    assert_eq!(
        store.session_by_access_hash("h-live", now()).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store.session_by_access_hash("h-old", now()).await.unwrap(),
        None
    );
    assert_eq!(
        store.session_by_access_hash("h-none", now()).await.unwrap(),
        None
    );
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
    assert_eq!(
        store.session_by_access_hash("h-live", now()).await.unwrap(),
        None
    );
}

async fn refresh_rotates_and_detects_reuse(store: DynStore) {
    let a = create(&store, "r@example.com").await;
    let first = session(&a.user.id, "a1", Some("r1"), Duration::hours(1));
    store.insert_session(&first).await.unwrap();
    let mut next = session(&UserId::default(), "a2", Some("r2"), Duration::hours(1));
    next.client_id = String::new();
    let out = store
        .rotate_refresh("r1", next.clone(), now(), NO_GRACE)
        .await
        .unwrap();
    let RotateOutcome::Rotated(rotated) = out else {
        panic!("expected a rotation, got {out:?}");
    };
    assert_eq!(rotated.family_id, first.family_id);
    assert_eq!(rotated.user_id, a.user.id);
    assert_eq!(rotated.client_id, "chatons-desktop");
    assert!(
        store
            .session_by_access_hash("a2", now())
            .await
            .unwrap()
            .is_some()
    );
    // The first refresh token again: re-use revokes the whole family.
    let again = session(&UserId::default(), "a3", Some("r3"), Duration::hours(1));
    assert_eq!(
        store
            .rotate_refresh("r1", again, now(), NO_GRACE)
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert!(
        store
            .session_by_access_hash("a2", now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_access_hash("a3", now())
            .await
            .unwrap()
            .is_none()
    );
    let unknown = session(&UserId::default(), "a4", Some("r4"), Duration::hours(1));
    assert_eq!(
        store
            .rotate_refresh("nope", unknown, now(), NO_GRACE)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    // An expired refresh token is invalid (and not a re-use).
    let mut old = session(&a.user.id, "a5", Some("r5"), Duration::hours(1));
    old.refresh_expires_at = Some(now() - Duration::seconds(1));
    store.insert_session(&old).await.unwrap();
    let n = session(&UserId::default(), "a6", Some("r6"), Duration::hours(1));
    assert_eq!(
        store
            .rotate_refresh("r5", n, now(), NO_GRACE)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(
        store
            .session_by_access_hash("a5", now())
            .await
            .unwrap()
            .is_some()
    );
    // revoke_family ends every session of a family.
    store.revoke_family(&old.family_id, now()).await.unwrap();
    assert!(
        store
            .session_by_access_hash("a5", now())
            .await
            .unwrap()
            .is_none()
    );
}

async fn password_hash_is_replaced_only_if_unchanged(store: DynStore) {
    let a = create(&store, "ph@example.com").await;
    assert!(
        !store
            .replace_password_hash(&a.user.id, "scrypt$other", "$argon2id$new")
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_password_hash(&a.user.id, "$argon2id$fake", "$argon2id$new")
            .await
            .unwrap()
    );
    let u = store.user(&a.user.id).await.unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$new"));
}

async fn refresh_reuse_within_grace_returns_the_successor(store: DynStore) {
    let a = create(&store, "g@example.com").await;
    let first = session(&a.user.id, "ga1", Some("gr1"), Duration::hours(1));
    store.insert_session(&first).await.unwrap();
    let next = session(&UserId::default(), "ga2", Some("gr2"), Duration::hours(1));
    let t = now();
    let RotateOutcome::Rotated(rotated) = store
        .rotate_refresh("gr1", next.clone(), t, GRACE)
        .await
        .unwrap()
    else {
        panic!("expected a rotation");
    };
    // The same token again, naming the same successor, within the window: that successor, and
    // nothing new is stored or revoked.
    let same = session(&UserId::default(), "ga2", Some("gr2"), Duration::hours(1));
    assert_eq!(
        store
            .rotate_refresh("gr1", same.clone(), t + Duration::seconds(5), GRACE)
            .await
            .unwrap(),
        RotateOutcome::Repeated(rotated.clone())
    );
    assert!(
        store
            .session_by_access_hash("ga2", now())
            .await
            .unwrap()
            .is_some()
    );
    // A successor the store never issued (another derivation) is refused without revoking.
    let stranger = session(&UserId::default(), "gx", Some("gxr"), Duration::hours(1));
    assert_eq!(
        store
            .rotate_refresh("gr1", stranger, t + Duration::seconds(5), GRACE)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(
        store
            .session_by_access_hash("ga2", now())
            .await
            .unwrap()
            .is_some()
    );
    // After the window the same token is a re-use: the family is revoked.
    assert_eq!(
        store
            .rotate_refresh("gr1", same, t + Duration::seconds(31), GRACE)
            .await
            .unwrap(),
        RotateOutcome::Reused
    );
    assert!(
        store
            .session_by_access_hash("ga2", now())
            .await
            .unwrap()
            .is_none()
    );
    let fresh = session(&UserId::default(), "ga3", Some("gr3"), Duration::hours(1));
    assert_eq!(
        store
            .rotate_refresh("gr2", fresh, now(), GRACE)
            .await
            .unwrap(),
        RotateOutcome::Reused,
        "a revoked family stays revoked"
    );
}

async fn plans_default_and_hidden_switch_both_ways(store: DynStore) {
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

async fn organizations_members_and_invites(store: DynStore) {
    let a = create(&store, "owner@example.com").await;
    let b = create(&store, "bob@example.com").await;
    let team = Organization {
        id: OrgId::generate(),
        slug: "team-x".into(),
        name: "Team".into(),
        owner_user_id: Some(a.user.id.clone()),
        is_personal: false,
        created_at: now(),
    };
    store.create_organization(&team, &a.user.id).await.unwrap();
    let dup = Organization {
        id: OrgId::generate(),
        ..team.clone()
    };
    assert!(matches!(
        store.create_organization(&dup, &a.user.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.role_in(&team.id, &a.user.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(store.role_in(&team.id, &b.user.id).await.unwrap(), None);

    let t = now();
    let invite = Invite {
        id: InviteId::generate(),
        token_hash: "inv-hash".into(),
        organization_id: team.id.clone(),
        invited_email: b.user.email.clone(),
        role: Role::Admin,
        inviter_user_id: Some(a.user.id.clone()),
        expires_at: t + Duration::days(7),
        accepted_at: None,
        revoked_at: None,
        created_at: t,
    };
    store.insert_invite(&invite).await.unwrap();
    assert_eq!(
        store.invite_by_token_hash("inv-hash").await.unwrap(),
        Some(invite.clone())
    );
    assert_eq!(
        store
            .invites(&team.id, &PageReq::first(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    store
        .accept_invite(&invite.id, &b.user.id, now())
        .await
        .unwrap();
    assert!(
        matches!(
            store.accept_invite(&invite.id, &b.user.id, now()).await,
            Err(StoreError::NotFound)
        ),
        "single use"
    );
    assert_eq!(
        store.role_in(&team.id, &b.user.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert!(
        store
            .invites(&team.id, &PageReq::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Bob now sees both organizations, his personal one first.
    let orgs: Vec<OrgId> = store
        .memberships_of(&b.user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(o, _)| o.id)
        .collect();
    assert_eq!(orgs, vec![b.org.id.clone(), team.id.clone()]);

    let members = store.members(&team.id, &PageReq::first(1)).await.unwrap();
    assert_eq!(members.items.len(), 1);
    let rest = store
        .members(
            &team.id,
            &PageReq {
                limit: 1,
                after: members.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    assert_ne!(
        members.items[0].membership.user_id,
        rest.items[0].membership.user_id
    );

    store
        .set_role(&team.id, &b.user.id, Role::Member)
        .await
        .unwrap();
    assert_eq!(
        store.role_in(&team.id, &b.user.id).await.unwrap(),
        Some(Role::Member)
    );
    assert_eq!(store.owner_count(&team.id).await.unwrap(), 1);
    // The last owner can be neither demoted nor removed; promoting keeps working.
    assert!(matches!(
        store.set_role(&team.id, &a.user.id, Role::Admin).await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store.remove_member(&team.id, &a.user.id).await,
        Err(StoreError::LastOwner)
    ));
    store
        .set_role(&team.id, &a.user.id, Role::Owner)
        .await
        .unwrap();
    assert_eq!(store.owner_count(&team.id).await.unwrap(), 1);
    store
        .rename_organization(&team.id, "Renamed", "renamed-x")
        .await
        .unwrap();
    assert_eq!(
        store.organization(&team.id).await.unwrap().unwrap().name,
        "Renamed"
    );
    assert!(matches!(
        store.rename_organization(&team.id, "X", &a.org.slug).await,
        Err(StoreError::Conflict(_))
    ));
    store.remove_member(&team.id, &b.user.id).await.unwrap();
    assert!(matches!(
        store.remove_member(&team.id, &b.user.id).await,
        Err(StoreError::NotFound)
    ));

    let second = Invite {
        id: InviteId::generate(),
        token_hash: "h2".into(),
        ..invite.clone()
    };
    store.insert_invite(&second).await.unwrap();
    assert!(
        matches!(
            store.revoke_invite(&a.org.id, &second.id, now()).await,
            Err(StoreError::NotFound)
        ),
        "scoped to its org"
    );
    store
        .revoke_invite(&team.id, &second.id, now())
        .await
        .unwrap();
    assert!(matches!(
        store.accept_invite(&second.id, &b.user.id, now()).await,
        Err(StoreError::NotFound)
    ));

    // Rate counts: accepted and revoked invites count too; other orgs and inviters do not.
    let hour_ago = now() - chrono::Duration::hours(1);
    assert_eq!(
        store
            .recent_invite_counts(&team.id, &a.user.id, hour_ago)
            .await
            .unwrap(),
        (2, 2)
    );
    assert_eq!(
        store
            .recent_invite_counts(&a.org.id, &b.user.id, hour_ago)
            .await
            .unwrap(),
        (0, 0)
    );
    assert_eq!(
        store
            .recent_invite_counts(&team.id, &a.user.id, now())
            .await
            .unwrap(),
        (0, 0),
        "only invites after `since`"
    );
}

async fn instances_register_once(store: DynStore) {
    let a = create(&store, "i1@example.com").await;
    let b = create(&store, "i2@example.com").await;
    let inst = Instance {
        id: InstanceId::from("desk-1"),
        user_id: a.user.id.clone(),
        name: "Laptop".into(),
        created_at: now(),
    };
    assert_eq!(
        store.register_instance(&inst, 2).await.unwrap(),
        RegisterOutcome::Created(inst.clone())
    );
    let again = Instance {
        name: "Other".into(),
        created_at: now(),
        ..inst.clone()
    };
    assert_eq!(
        store.register_instance(&again, 2).await.unwrap(),
        RegisterOutcome::Existing(inst.clone())
    );
    let theirs = Instance {
        user_id: b.user.id.clone(),
        ..inst.clone()
    };
    assert_eq!(
        store.register_instance(&theirs, 2).await.unwrap(),
        RegisterOutcome::Taken
    );
    assert_eq!(store.instance(&inst.id).await.unwrap(), Some(inst.clone()));
    assert_eq!(
        store
            .instances_of(&a.user.id, &PageReq::first(5))
            .await
            .unwrap()
            .items,
        vec![inst]
    );
    assert!(
        store
            .instances_of(&b.user.id, &PageReq::first(5))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn instances_are_bounded_per_user_and_deletable(store: DynStore) {
    let a = create(&store, "lim1@example.com").await;
    let b = create(&store, "lim2@example.com").await;
    let inst = |id: &str, user: &UserId| Instance {
        id: InstanceId::from(id),
        user_id: user.clone(),
        name: "Desk".into(),
        created_at: now(),
    };
    for id in ["l-1", "l-2"] {
        assert!(matches!(
            store
                .register_instance(&inst(id, &a.user.id), 2)
                .await
                .unwrap(),
            RegisterOutcome::Created(_)
        ));
    }
    assert_eq!(
        store
            .register_instance(&inst("l-3", &a.user.id), 2)
            .await
            .unwrap(),
        RegisterOutcome::LimitReached
    );
    // Held ids still answer Existing/Taken at the limit.
    assert!(matches!(
        store
            .register_instance(&inst("l-1", &a.user.id), 2)
            .await
            .unwrap(),
        RegisterOutcome::Existing(_)
    ));
    assert_eq!(
        store
            .register_instance(&inst("l-1", &b.user.id), 2)
            .await
            .unwrap(),
        RegisterOutcome::Taken
    );
    assert!(
        !store
            .delete_instance(&b.user.id, &InstanceId::from("l-1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_instance(&a.user.id, &InstanceId::from("l-1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .instance(&InstanceId::from("l-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .register_instance(&inst("l-3", &a.user.id), 2)
            .await
            .unwrap(),
        RegisterOutcome::Created(_)
    ));
}

/// A key rotation end to end on the store: old rows open through the previous key, the
/// re-seal pass moves every readable row under the current key (paging past unreadable ones),
/// a second pass has nothing to do, and the previous key is then no longer needed.
async fn secrets_reseal_under_a_rotated_key(store: DynStore) {
    use cloud_api::crypto::SecretBox;
    use cloud_api::reseal::reseal_all;

    let a = create(&store, "rotate@example.com").await;
    let old_key = [3u8; 32];
    let old = SecretBox::from_key(&old_key);
    let foreign = SecretBox::from_key(&[9u8; 32]);
    let mut ids = Vec::new();
    for i in 0..105 {
        let t = now();
        let id = ProviderId::generate();
        let sealer = if i == 50 { &foreign } else { &old };
        let p = Provider {
            id: id.clone(),
            organization_id: a.org.id.clone(),
            kind: "openai".into(),
            label: format!("P{i}"),
            base_url: "https://api.openai.com/v1".into(),
            credential_type: "api_key".into(),
            models: vec![],
            default_model: None,
            supports_cloud_runtime: true,
            secret: Some(sealer.seal(&format!("sk-{i}"), id.as_str()).unwrap()),
            created_by: Some(a.user.id.clone()),
            created_at: t,
            updated_at: t,
        };
        store.insert_provider(&p).await.unwrap();
        ids.push(id);
    }
    let rotated = SecretBox::from_key(&[4u8; 32])
        .with_previous(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            old_key,
        ))
        .unwrap();
    let mut passes = 0;
    let report = reseal_all(store.as_ref(), &rotated, |_| passes += 1)
        .await
        .unwrap();
    assert_eq!(report.resealed, 104);
    assert_eq!(report.unreadable, vec![ids[50].clone()]);
    assert_eq!(passes, 2, "two batches of at most 100");
    let current_only = SecretBox::from_key(&[4u8; 32]);
    for (i, id) in ids.iter().enumerate() {
        let p = store.provider(id).await.unwrap().unwrap();
        let sealed = p.secret.unwrap();
        if i == 50 {
            assert_eq!(
                &sealed.key_id,
                foreign.key_id(),
                "unreadable rows are left alone"
            );
        } else {
            assert_eq!(
                current_only.open(&sealed, id.as_str()).unwrap(),
                format!("sk-{i}")
            );
        }
    }
    let again = reseal_all(store.as_ref(), &rotated, |_| {}).await.unwrap();
    assert_eq!(again.resealed, 0);
    assert_eq!(again.unreadable.len(), 1);
    // A row whose secret changed since it was read is not overwritten.
    let p = store.provider(&ids[50]).await.unwrap().unwrap();
    let fresh = rotated.seal("sk-new", ids[50].as_str()).unwrap();
    assert!(
        !store
            .reseal_provider_secret(&ids[50], &[0u8; 12], &fresh)
            .await
            .unwrap()
    );
    assert_eq!(
        store.provider(&ids[50]).await.unwrap().unwrap().secret,
        p.secret
    );
}

async fn providers_page_update_delete(store: DynStore) {
    let a = create(&store, "p@example.com").await;
    let mut made = Vec::new();
    for i in 0..3 {
        let t = now();
        let p = Provider {
            id: ProviderId::generate(),
            organization_id: a.org.id.clone(),
            kind: "openai".into(),
            label: format!("P{i}"),
            base_url: "https://api.openai.com/v1".into(),
            credential_type: "api_key".into(),
            models: vec![ProviderModel {
                id: "gpt".into(),
                label: "GPT".into(),
            }],
            default_model: Some("gpt".into()),
            supports_cloud_runtime: true,
            secret: Some(Sealed {
                ciphertext: vec![1, 2, 3],
                nonce: vec![0; 12],
                key_id: "k1".into(),
            }),
            created_by: Some(a.user.id.clone()),
            created_at: t,
            updated_at: t,
        };
        store.insert_provider(&p).await.unwrap();
        made.push(p);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let first = store
        .providers(&a.org.id, &PageReq::first(2))
        .await
        .unwrap();
    assert_eq!(first.items, made[..2].to_vec());
    let second = store
        .providers(
            &a.org.id,
            &PageReq {
                limit: 2,
                after: first.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items, made[2..].to_vec());
    assert!(second.next.is_none());
    let mut changed = made[0].clone();
    changed.label = "Renamed".into();
    changed.models = vec![];
    changed.secret = None;
    store.update_provider(&changed).await.unwrap();
    assert_eq!(
        store.provider(&changed.id).await.unwrap(),
        Some(changed.clone())
    );
    store.delete_provider(&changed.id).await.unwrap();
    assert!(store.provider(&changed.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_provider(&changed.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn projects_and_conversations_page_and_cascade(store: DynStore) {
    let a = create(&store, "c@example.com").await;
    let mut repo = project_in(&a.org, &a.user, "Alpha");
    repo.kind = "repository".into();
    repo.workspace_capability = "full_tools".into();
    repo.repository = Some(Repository {
        clone_url: "https://example.com/a.git".into(),
        default_branch: Some("main".into()),
        auth_mode: "token".into(),
        token: Some(Sealed {
            ciphertext: vec![9],
            nonce: vec![1; 12],
            key_id: "k".into(),
        }),
    });
    store.insert_project(&repo).await.unwrap();
    let zeta = project_in(&a.org, &a.user, "Zeta");
    store.insert_project(&zeta).await.unwrap();
    assert_eq!(store.project(&repo.id).await.unwrap(), Some(repo.clone()));
    // Byte order: "Alpha" < "Cloud Workspace" < "Zeta".
    let page = store
        .projects(std::slice::from_ref(&a.org.id), &PageReq::first(2))
        .await
        .unwrap();
    let names: Vec<&str> = page.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["Alpha", "Cloud Workspace"]);
    let rest = store
        .projects(
            std::slice::from_ref(&a.org.id),
            &PageReq {
                limit: 2,
                after: page.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items, vec![zeta.clone()]);
    assert!(
        store
            .projects(&[OrgId::from("org-other")], &PageReq::first(5))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let c1 = conversation_in(&zeta, "b");
    let c2 = conversation_in(&zeta, "a");
    let c3 = conversation_in(&repo, "c");
    for c in [&c1, &c2, &c3] {
        store.insert_conversation(c).await.unwrap();
    }
    let all = store
        .conversations(std::slice::from_ref(&a.org.id), None, &PageReq::first(10))
        .await
        .unwrap();
    let titles: Vec<&str> = all.items.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, vec!["a", "b", "c"]);
    let only = store
        .conversations(
            std::slice::from_ref(&a.org.id),
            Some(&zeta.id),
            &PageReq::first(10),
        )
        .await
        .unwrap();
    assert_eq!(only.items.len(), 2);
    let mut upd = c1.clone();
    upd.title = "renamed".into();
    upd.status = "done".into();
    store.update_conversation(&upd).await.unwrap();
    assert_eq!(store.conversation(&c1.id).await.unwrap(), Some(upd));
    let mut p2 = zeta.clone();
    p2.name = "Zeta 2".into();
    store.update_project(&p2).await.unwrap();
    assert_eq!(store.project(&zeta.id).await.unwrap(), Some(p2));

    store.delete_project(&zeta.id).await.unwrap();
    assert!(
        store.conversation(&c1.id).await.unwrap().is_none(),
        "conversations go with their project"
    );
    assert!(store.conversation(&c3.id).await.unwrap().is_some());
    store.delete_conversation(&c3.id).await.unwrap();
    assert!(matches!(
        store.delete_conversation(&c3.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_project(&zeta.id).await,
        Err(StoreError::NotFound)
    ));
}

fn msg(id: &str, content: &str) -> Message {
    Message {
        id: id.into(),
        role: "user".into(),
        timestamp: 1_700_000_000_000,
        content: content.into(),
    }
}

async fn transcripts_append_idempotently(store: DynStore) {
    let a = create(&store, "t@example.com").await;
    let c = conversation_in(&a.project, "T");
    store.insert_conversation(&c).await.unwrap();
    assert_eq!(
        store
            .append_messages(&c.id, &[msg("m1", "one"), msg("m2", "two")])
            .await
            .unwrap(),
        (2, 2)
    );
    assert_eq!(
        store
            .append_messages(
                &c.id,
                &[msg("m2", "changed?"), msg("m3", "three"), msg("m3", "dup")]
            )
            .await
            .unwrap(),
        (1, 3),
        "known ids are skipped, never rewritten"
    );
    let page = store.messages(&c.id, &PageReq::first(2)).await.unwrap();
    assert_eq!(page.items, vec![msg("m1", "one"), msg("m2", "two")]);
    let rest = store
        .messages(
            &c.id,
            &PageReq {
                limit: 2,
                after: page.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items, vec![msg("m3", "three")]);
    assert!(rest.next.is_none());
    assert!(matches!(
        store
            .append_messages(&ConversationId::from("conversation-none"), &[msg("x", "y")])
            .await,
        Err(StoreError::NotFound)
    ));
}

fn memory(
    org: &OrgId,
    user: Option<&UserId>,
    project: Option<&ProjectId>,
    kind: &str,
    topic: &str,
    content: &str,
) -> Memory {
    let t = now();
    let scope = if project.is_some() {
        "project"
    } else {
        "global"
    };
    Memory {
        id: MemoryId::generate(),
        organization_id: org.clone(),
        user_id: user.cloned(),
        project_id: project.cloned(),
        scope: scope.into(),
        kind: kind.into(),
        title: Some("Title".into()),
        content: content.into(),
        tags: vec!["style".into()],
        topic_key: topic.into(),
        confidence: 0.5,
        schema_version: 1,
        reinforced_at: None,
        last_used_at: None,
        times_used: 0,
        source_conversation_id: None,
        origin_type: "manual".into(),
        status: "active".into(),
        visibility: "private".into(),
        fingerprint: format!("{scope}::{}::{topic}", org.0),
        archived: false,
        source: "manual".into(),
        created_by: user.cloned(),
        created_at: t,
        updated_at: t,
    }
}

async fn memories_visibility_search_and_supersede(store: DynStore) {
    let a = create(&store, "m1@example.com").await;
    let b = create(&store, "m2@example.com").await;
    let mine = memory(
        &a.org.id,
        Some(&a.user.id),
        None,
        "preference",
        "tabs",
        "Use tabs for indentation",
    );
    let shared = memory(
        &a.org.id,
        None,
        Some(&a.project.id),
        "fact",
        "db",
        "The database is Postgres",
    );
    store.save_memory(&mine).await.unwrap();
    store.save_memory(&shared).await.unwrap();
    assert_eq!(store.memory(&mine.id).await.unwrap(), Some(mine.clone()));
    let filter = |user: &UserId, scope: &str| MemoryFilter {
        organization_id: a.org.id.clone(),
        user_id: user.clone(),
        scope: scope.into(),
        ..MemoryFilter::default()
    };
    let all = store
        .memories(&filter(&a.user.id, "all"), &PageReq::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let global = store
        .memories(&filter(&a.user.id, "global"), &PageReq::first(10))
        .await
        .unwrap();
    assert_eq!(global.items, vec![mine.clone()]);
    let other = store
        .memories(&filter(&b.user.id, "global"), &PageReq::first(10))
        .await
        .unwrap();
    assert!(
        other.items.is_empty(),
        "global memories are private to their owner"
    );

    let hits = store
        .memory_candidates(&filter(&a.user.id, "all"), "postgres", 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0.id, shared.id);
    assert!(hits[0].1 > 0.0 && hits[0].1 <= 1.0);

    // A newer memory on the same topic supersedes the older one.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let newer = memory(
        &a.org.id,
        Some(&a.user.id),
        None,
        "preference",
        "tabs",
        "Use spaces",
    );
    store.save_memory(&newer).await.unwrap();
    store
        .supersede_memories(&a.org.id, &newer.fingerprint, &newer.id)
        .await
        .unwrap();
    assert_eq!(
        store.memory(&mine.id).await.unwrap().unwrap().status,
        "superseded"
    );
    assert_eq!(
        store
            .memory_by_fingerprint(&a.org.id, &newer.fingerprint)
            .await
            .unwrap()
            .unwrap()
            .id,
        newer.id
    );
    let active = MemoryFilter {
        active_only: true,
        ..filter(&a.user.id, "global")
    };
    assert_eq!(
        store
            .memories(&active, &PageReq::first(10))
            .await
            .unwrap()
            .items,
        vec![newer.clone()]
    );

    let page = store
        .memories(&filter(&a.user.id, "all"), &PageReq::first(2))
        .await
        .unwrap();
    assert_eq!(page.items[0].id, newer.id, "newest first");
    let rest = store
        .memories(
            &filter(&a.user.id, "all"),
            &PageReq {
                limit: 2,
                after: page.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len() + rest.items.len(), 3);

    store.touch_memory(&newer.id, now()).await.unwrap();
    let touched = store.memory(&newer.id).await.unwrap().unwrap();
    assert_eq!(touched.times_used, 1);
    assert!(touched.last_used_at.is_some());
    store
        .mark_memories_seen(std::slice::from_ref(&newer.id), now())
        .await
        .unwrap();
    store.delete_memory(&newer.id).await.unwrap();
    assert!(matches!(
        store.delete_memory(&newer.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.touch_memory(&newer.id, now()).await,
        Err(StoreError::NotFound)
    ));
}

async fn entitlements_roundtrip(store: DynStore) {
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
    assert!(matches!(
        store.update_user_entitlements(&ghost).await,
        Err(StoreError::NotFound)
    ));
}

async fn email_tokens_single_use_and_reset_revokes(store: DynStore) {
    let a = create(&store, "tokens@example.com").await;
    let other = create(&store, "other-tokens@example.com").await;
    let later = now() + Duration::hours(1);
    store
        .insert_email_token(EmailTokenKind::Verification, "v-ok", &a.user.id, later)
        .await
        .unwrap();
    store
        .insert_email_token(
            EmailTokenKind::Verification,
            "v-old",
            &a.user.id,
            now() - Duration::seconds(1),
        )
        .await
        .unwrap();
    assert_eq!(
        store.verify_email_token("v-old", now()).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.verify_email_token("v-none", now()).await.unwrap(),
        None
    );
    // A reset token is not a verification token.
    store
        .insert_email_token(EmailTokenKind::PasswordReset, "r-1", &a.user.id, later)
        .await
        .unwrap();
    assert_eq!(store.verify_email_token("r-1", now()).await.unwrap(), None);
    assert_eq!(
        store.verify_email_token("v-ok", now()).await.unwrap(),
        Some(a.user.id.clone())
    );
    assert!(
        store
            .user(&a.user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at
            .is_some()
    );
    assert_eq!(
        store.verify_email_token("v-ok", now()).await.unwrap(),
        None,
        "single use"
    );

    store
        .insert_email_token(EmailTokenKind::PasswordReset, "r-2", &a.user.id, later)
        .await
        .unwrap();
    store
        .insert_email_token(
            EmailTokenKind::PasswordReset,
            "r-other",
            &other.user.id,
            later,
        )
        .await
        .unwrap();
    let mine = session(&a.user.id, "h-mine", Some("r-h-mine"), Duration::hours(1));
    let theirs = session(&other.user.id, "h-theirs", None, Duration::hours(1));
    store.insert_session(&mine).await.unwrap();
    store.insert_session(&theirs).await.unwrap();
    assert_eq!(
        store
            .reset_password_with_token("v-ok", "new-hash", now())
            .await
            .unwrap(),
        None,
        "a verification token cannot reset"
    );
    assert_eq!(
        store
            .reset_password_with_token("r-2", "new-hash", now())
            .await
            .unwrap(),
        Some(a.user.id.clone())
    );
    assert_eq!(
        store
            .user(&a.user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("new-hash")
    );
    assert_eq!(
        store.session_by_access_hash("h-mine", now()).await.unwrap(),
        None
    );
    assert!(
        store
            .session_by_access_hash("h-theirs", now())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .reset_password_with_token("r-1", "x", now())
            .await
            .unwrap(),
        None,
        "older reset tokens are gone"
    );
    assert_eq!(
        store
            .reset_password_with_token("r-2", "x", now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reset_password_with_token("r-other", "other-hash", now())
            .await
            .unwrap(),
        Some(other.user.id.clone())
    );
}

async fn housekeeping_purges_only_dead_rows(store: DynStore) {
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
    assert!(
        store
            .session_by_refresh_hash("pr-dead")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_refresh_hash("pr-ref")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session_by_access_hash("p-live", t)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.purge_sessions(t).await.unwrap(), 0);

    store
        .insert_email_token(
            EmailTokenKind::Verification,
            "pv-old",
            &a.user.id,
            t - Duration::seconds(5),
        )
        .await
        .unwrap();
    store
        .insert_email_token(
            EmailTokenKind::PasswordReset,
            "pp-old",
            &a.user.id,
            t - Duration::seconds(5),
        )
        .await
        .unwrap();
    store
        .insert_email_token(
            EmailTokenKind::Verification,
            "pv-new",
            &a.user.id,
            t + Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(store.purge_email_tokens(t).await.unwrap(), 2);
    assert_eq!(
        store.verify_email_token("pv-new", t).await.unwrap(),
        Some(a.user.id.clone()),
        "the live token survives"
    );
}
