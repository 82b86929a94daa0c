//! The audit store's contract (admin changes with their audit rows, the log's pages, the
//! admin's directory search): the same scenarios on memory and on Postgres.

use std::sync::Arc;

use chrono::Duration;
use cloud_api::domain::*;
use cloud_api::store::{AdminChange, DynStore, PlanPatch};

use super::{create, session};

#[tokio::test]
async fn audited_changes_in_memory() {
    audited_changes_are_atomic(Arc::new(cloud_api::store::memory::MemoryStore::new())).await;
}

#[tokio::test]
async fn audited_changes_on_postgres() {
    let db = cloud_testkit::db::TestDb::new().await;
    audited_changes_are_atomic(Arc::new(cloud_api::store::postgres::PgStore::new(
        db.pool.clone(),
    )))
    .await;
}

#[tokio::test]
async fn audit_log_pages_in_memory() {
    audit_log_pages_newest_first(Arc::new(cloud_api::store::memory::MemoryStore::new())).await;
}

#[tokio::test]
async fn audit_log_pages_on_postgres() {
    let db = cloud_testkit::db::TestDb::new().await;
    audit_log_pages_newest_first(Arc::new(cloud_api::store::postgres::PgStore::new(
        db.pool.clone(),
    )))
    .await;
}

#[tokio::test]
async fn admin_directory_search_in_memory() {
    directory_search(Arc::new(cloud_api::store::memory::MemoryStore::new())).await;
}

#[tokio::test]
async fn admin_directory_search_on_postgres() {
    let db = cloud_testkit::db::TestDb::new().await;
    directory_search(Arc::new(cloud_api::store::postgres::PgStore::new(
        db.pool.clone(),
    )))
    .await;
}

fn event(actor: &UserId, action: &str, kind: &str, id: &str) -> AuditEvent {
    AuditEvent {
        actor: actor.clone(),
        action: action.into(),
        target_kind: kind.into(),
        target_id: id.into(),
        details: serde_json::json!({"n": 1, "text": "é \"quoted\""}),
        at: now(),
    }
}

async fn all(store: &DynStore) -> Vec<AuditEntry> {
    let page = PageReq::first(200);
    let log = store.audit_log(&AuditFilter::default(), &page).await;
    log.unwrap().items
}

async fn audited_changes_are_atomic(store: DynStore) {
    let admin = create(&store, "audit-admin@example.com").await.user;
    let mut target = create(&store, "audit-target@example.com").await.user;
    let uid = target.id.0.clone();

    // Entitlements: the change and its row, or neither.
    target.is_admin = true;
    let ev = event(&admin.id, "user.update", "user", &uid);
    let change = AdminChange::Entitlements(&target);
    store.audited(change, &ev).await.unwrap();
    assert!(store.user(&target.id).await.unwrap().unwrap().is_admin);
    let log = all(&store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event, ev, "read back as written (details included)");
    let ghost = User {
        id: UserId::from("user-ghost"),
        ..target.clone()
    };
    let ev = event(&admin.id, "user.update", "user", "user-ghost");
    let refused = store.audited(AdminChange::Entitlements(&ghost), &ev).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert_eq!(all(&store).await.len(), 1, "a failed change leaves no row");

    // Plans.
    let patch = PlanPatch {
        label: Some("Professional".into()),
        ..PlanPatch::default()
    };
    let ev = event(&admin.id, "plan.update", "plan", "pro");
    let change = AdminChange::Plan {
        id: "pro",
        patch: &patch,
    };
    store.audited(change, &ev).await.unwrap();
    let plans = store.plans().await.unwrap();
    assert_eq!(
        plans.iter().find(|p| p.id == "pro").unwrap().label,
        "Professional"
    );
    let change = AdminChange::Plan {
        id: "gold",
        patch: &patch,
    };
    let refused = store.audited(change, &ev).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert_eq!(all(&store).await.len(), 2);

    // Verification keeps an earlier time.
    let verified_at = target.email_verified_at;
    let change = AdminChange::VerifyEmail {
        user: &target.id,
        at: now() + Duration::hours(1),
    };
    store
        .audited(change, &event(&admin.id, "user.verify", "user", &uid))
        .await
        .unwrap();
    let u = store.user(&target.id).await.unwrap().unwrap();
    assert_eq!(u.email_verified_at, verified_at);

    // Disabling revokes every session of the user (and only theirs); enabling clears it.
    store
        .insert_session(&session(&target.id, "audit-a1", None, Duration::hours(1)))
        .await
        .unwrap();
    store
        .insert_session(&session(&admin.id, "audit-a2", None, Duration::hours(1)))
        .await
        .unwrap();
    let at = now();
    let change = AdminChange::Disabled {
        user: &target.id,
        at: Some(at),
    };
    store
        .audited(change, &event(&admin.id, "user.disable", "user", &uid))
        .await
        .unwrap();
    let u = store.user(&target.id).await.unwrap().unwrap();
    assert_eq!(u.disabled_at, Some(at));
    let live = |h: &'static str| {
        let store = store.clone();
        async move {
            store
                .session_by_access_hash(h, now())
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(
        !live("audit-a1").await,
        "the disabled user's session is revoked"
    );
    assert!(live("audit-a2").await, "other users keep theirs");
    let change = AdminChange::Disabled {
        user: &target.id,
        at: None,
    };
    store
        .audited(change, &event(&admin.id, "user.enable", "user", &uid))
        .await
        .unwrap();
    let u = store.user(&target.id).await.unwrap().unwrap();
    assert_eq!(u.disabled_at, None);
    let change = AdminChange::Disabled {
        user: &UserId::from("user-ghost"),
        at: Some(at),
    };
    let refused = store
        .audited(
            change,
            &event(&admin.id, "user.disable", "user", "user-ghost"),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");

    let actions: Vec<String> = all(&store)
        .await
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        [
            "user.enable",
            "user.disable",
            "user.verify",
            "plan.update",
            "user.update"
        ],
        "one row per change, newest first"
    );
}

async fn audit_log_pages_newest_first(store: DynStore) {
    let actor = UserId::from("user-actor");
    let mut ids = Vec::new();
    for i in 0..5 {
        let target = if i % 2 == 0 { "user-even" } else { "user-odd" };
        let id = store
            .append_audit(&event(&actor, "user.verify", "user", target))
            .await
            .unwrap();
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let mut seen = Vec::new();
    let mut page = PageReq::first(2);
    loop {
        let p = store
            .audit_log(&AuditFilter::default(), &page)
            .await
            .unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.iter().map(|e| e.id));
        match p.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);
    let even = AuditFilter {
        target: Some(("user".into(), "user-even".into())),
    };
    let p = store.audit_log(&even, &PageReq::first(10)).await.unwrap();
    let got: Vec<i64> = p.items.iter().map(|e| e.id).collect();
    assert_eq!(got, vec![ids[4], ids[2], ids[0]]);
    assert!(p.next.is_none());
}

async fn directory_search(store: DynStore) {
    let a = create(&store, "Alice.Search@Example.com").await;
    let b = create(&store, "bob_100%@example.com").await;
    let emails = |p: Page<User>| -> Vec<String> { p.items.into_iter().map(|u| u.email).collect() };
    let page = PageReq::first(10);
    let all = emails(store.search_users("", &page).await.unwrap());
    assert_eq!(all.len(), 2);
    let found = emails(store.search_users("  ALICE.s ", &page).await.unwrap());
    assert_eq!(found, vec![a.user.email.clone()]);
    // `%` and `_` are plain characters, not patterns.
    let found = emails(store.search_users("100%", &page).await.unwrap());
    assert_eq!(found, vec![b.user.email.clone()]);
    assert!(emails(store.search_users("bo_", &page).await.unwrap()).is_empty());
    assert!(emails(store.search_users("%", &page).await.unwrap()).len() == 1);
    // Display names are searched too (both are "Someone").
    assert_eq!(
        emails(store.search_users("someone", &page).await.unwrap()).len(),
        2
    );
    // Pages of one, in creation order, then the end.
    let first = store.search_users("", &PageReq::first(1)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let next = PageReq {
        limit: 1,
        after: first.next.clone(),
    };
    let second = store.search_users("", &next).await.unwrap();
    assert_eq!(second.items.len(), 1);
    assert_ne!(first.items[0].id, second.items[0].id);
    assert!(second.next.is_none());

    let slug = a.org.slug.clone();
    let orgs = store
        .search_organizations(&slug.to_uppercase(), &page)
        .await
        .unwrap();
    let ids: Vec<OrgId> = orgs.items.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, vec![a.org.id.clone()]);
    let every = store.search_organizations("org", &page).await.unwrap();
    assert_eq!(every.items.len(), 2, "both are named Org");
}
