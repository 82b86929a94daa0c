//! The store contract: every scenario runs against the in-memory store and against Postgres
//! (a fresh schema per test), and both must behave identically.

use chrono::{DateTime, Duration, Utc};
use cloud_api::domain::*;
use cloud_api::store::{DynStore, EmailTokenKind, NewAccount, PlanPatch, StoreResult};

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

/// A successor session for `rotate_refresh` (the store copies the family, user and client).
fn successor(access: &str, refresh: &str) -> Session {
    session(
        &UserId::default(),
        access,
        Some(refresh),
        Duration::hours(1),
    )
}

/// Whether the access token hash `access` names a live session now.
async fn is_live(store: &DynStore, access: &str) -> bool {
    store
        .session_by_access_hash(access, now())
        .await
        .unwrap()
        .is_some()
}

/// Presents `refresh` at `at`, naming `next` as its successor.
async fn rotate(
    store: &DynStore,
    refresh: &str,
    next: Session,
    at: DateTime<Utc>,
    grace: std::time::Duration,
) -> RotateOutcome {
    store
        .rotate_refresh(refresh, next, at, grace)
        .await
        .unwrap()
}

/// Whether the store answered `NotFound`.
fn not_found<T>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::NotFound))
}

/// The page after `page`, of the same size.
fn after<T>(page: &Page<T>, limit: usize) -> PageReq {
    PageReq {
        limit,
        after: page.next.clone(),
    }
}

async fn email_token(
    store: &DynStore,
    kind: EmailTokenKind,
    hash: &str,
    user: &UserId,
    expires_at: DateTime<Utc>,
) {
    store
        .insert_email_token(kind, hash, user, expires_at)
        .await
        .unwrap();
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

async fn refresh_rotates_and_detects_reuse(store: DynStore) {
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

async fn password_hash_is_replaced_only_if_unchanged(store: DynStore) {
    let a = create(&store, "ph@example.com").await;
    for (old, replaced) in [("scrypt$other", false), ("$argon2id$fake", true)] {
        let done = store.replace_password_hash(&a.user.id, old, "$argon2id$new");
        assert_eq!(done.await.unwrap(), replaced, "{old}");
    }
    let u = store.user(&a.user.id).await.unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$new"));
}

async fn refresh_reuse_within_grace_returns_the_successor(store: DynStore) {
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
    let pending = async || {
        let page = store.invites(&team.id, &PageReq::first(10)).await;
        page.unwrap().items.len()
    };
    assert_eq!(pending().await, 1);
    store
        .accept_invite(&invite.id, &b.user.id, now())
        .await
        .unwrap();
    let again = store.accept_invite(&invite.id, &b.user.id, now()).await;
    assert!(not_found(again), "single use");
    assert_eq!(
        store.role_in(&team.id, &b.user.id).await.unwrap(),
        Some(Role::Admin)
    );
    assert_eq!(pending().await, 0);
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
    let rest = store.members(&team.id, &after(&members, 1)).await.unwrap();
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
    assert!(not_found(store.remove_member(&team.id, &b.user.id).await));

    let second = Invite {
        id: InviteId::generate(),
        token_hash: "h2".into(),
        ..invite.clone()
    };
    store.insert_invite(&second).await.unwrap();
    let elsewhere = store.revoke_invite(&a.org.id, &second.id, now()).await;
    assert!(not_found(elsewhere), "scoped to its org");
    store
        .revoke_invite(&team.id, &second.id, now())
        .await
        .unwrap();
    assert!(not_found(
        store.accept_invite(&second.id, &b.user.id, now()).await
    ));

    // Rate counts: accepted and revoked invites count too; other orgs and inviters do not.
    let hour_ago = now() - chrono::Duration::hours(1);
    for (org, inviter, since, counts) in [
        (&team.id, &a.user.id, hour_ago, (2, 2)),
        (&a.org.id, &b.user.id, hour_ago, (0, 0)),
        // Only invites after `since`.
        (&team.id, &a.user.id, now(), (0, 0)),
    ] {
        let found = store.recent_invite_counts(org, inviter, since).await;
        assert_eq!(found.unwrap(), counts, "{org:?} {inviter:?}");
    }
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
    for (user, held) in [(&a.user.id, vec![inst]), (&b.user.id, vec![])] {
        let page = store.instances_of(user, &PageReq::first(5)).await;
        assert_eq!(page.unwrap().items, held);
    }
}

async fn instances_are_bounded_per_user_and_deletable(store: DynStore) {
    let a = create(&store, "lim1@example.com").await;
    let b = create(&store, "lim2@example.com").await;
    let register = async |id: &str, user: &UserId| {
        let inst = Instance {
            id: InstanceId::from(id),
            user_id: user.clone(),
            name: "Desk".into(),
            created_at: now(),
        };
        store.register_instance(&inst, 2).await.unwrap()
    };
    for id in ["l-1", "l-2"] {
        assert!(matches!(
            register(id, &a.user.id).await,
            RegisterOutcome::Created(_)
        ));
    }
    assert_eq!(
        register("l-3", &a.user.id).await,
        RegisterOutcome::LimitReached
    );
    // Held ids still answer Existing/Taken at the limit.
    assert!(matches!(
        register("l-1", &a.user.id).await,
        RegisterOutcome::Existing(_)
    ));
    assert_eq!(register("l-1", &b.user.id).await, RegisterOutcome::Taken);
    let l1 = InstanceId::from("l-1");
    for (user, deleted) in [(&b.user.id, false), (&a.user.id, true)] {
        assert_eq!(store.delete_instance(user, &l1).await.unwrap(), deleted);
    }
    assert!(store.instance(&l1).await.unwrap().is_none());
    assert!(matches!(
        register("l-3", &a.user.id).await,
        RegisterOutcome::Created(_)
    ));
}

/// Provider `P{i}` of the account's organization, without models or secret.
fn provider_in(a: &Account, i: usize) -> Provider {
    let t = now();
    Provider {
        id: ProviderId::generate(),
        organization_id: a.org.id.clone(),
        kind: "openai".into(),
        label: format!("P{i}"),
        base_url: "https://api.openai.com/v1".into(),
        credential_type: "api_key".into(),
        models: vec![],
        default_model: None,
        supports_cloud_runtime: true,
        secret: None,
        created_by: Some(a.user.id.clone()),
        created_at: t,
        updated_at: t,
    }
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
        let mut p = provider_in(&a, i);
        let sealer = if i == 50 { &foreign } else { &old };
        p.secret = Some(sealer.seal(&format!("sk-{i}"), p.id.as_str()).unwrap());
        store.insert_provider(&p).await.unwrap();
        ids.push(p.id);
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
        let p = Provider {
            models: vec![ProviderModel {
                id: "gpt".into(),
                label: "GPT".into(),
            }],
            default_model: Some("gpt".into()),
            secret: Some(Sealed {
                ciphertext: vec![1, 2, 3],
                nonce: vec![0; 12],
                key_id: "k1".into(),
            }),
            ..provider_in(&a, i)
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
    let second = store.providers(&a.org.id, &after(&first, 2)).await.unwrap();
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
    assert!(not_found(store.delete_provider(&changed.id).await));
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
        .projects(std::slice::from_ref(&a.org.id), &after(&page, 2))
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
    assert!(not_found(store.delete_conversation(&c3.id).await));
    assert!(not_found(store.delete_project(&zeta.id).await));
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
    let rest = store.messages(&c.id, &after(&page, 2)).await.unwrap();
    assert_eq!(rest.items, vec![msg("m3", "three")]);
    assert!(rest.next.is_none());
    let none = ConversationId::from("conversation-none");
    assert!(not_found(
        store.append_messages(&none, &[msg("x", "y")]).await
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
    // A's own preference on the topic "tabs" (global scope).
    let tabs = |content| {
        memory(
            &a.org.id,
            Some(&a.user.id),
            None,
            "preference",
            "tabs",
            content,
        )
    };
    let mine = tabs("Use tabs for indentation");
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
    let listed = async |f: &MemoryFilter| store.memories(f, &PageReq::first(10)).await.unwrap();
    assert_eq!(listed(&filter(&a.user.id, "all")).await.items.len(), 2);
    let global = listed(&filter(&a.user.id, "global")).await;
    assert_eq!(global.items, vec![mine.clone()]);
    let other = listed(&filter(&b.user.id, "global")).await;
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
    let newer = tabs("Use spaces");
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
    assert_eq!(listed(&active).await.items, vec![newer.clone()]);

    let page = store
        .memories(&filter(&a.user.id, "all"), &PageReq::first(2))
        .await
        .unwrap();
    assert_eq!(page.items[0].id, newer.id, "newest first");
    let rest = store
        .memories(&filter(&a.user.id, "all"), &after(&page, 2))
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
    assert!(not_found(store.delete_memory(&newer.id).await));
    assert!(not_found(store.touch_memory(&newer.id, now()).await));
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
    assert!(not_found(store.update_user_entitlements(&ghost).await));
}

async fn email_tokens_single_use_and_reset_revokes(store: DynStore) {
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
