//! Organizations with their members and invites, desktop instances, providers and their
//! sealed secrets.

use super::*;

pub(super) async fn organizations_members_and_invites(store: DynStore) {
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

pub(super) async fn instances_register_once(store: DynStore) {
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

pub(super) async fn instances_are_bounded_per_user_and_deletable(store: DynStore) {
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
pub(super) async fn secrets_reseal_under_a_rotated_key(store: DynStore) {
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

pub(super) async fn providers_page_update_delete(store: DynStore) {
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
