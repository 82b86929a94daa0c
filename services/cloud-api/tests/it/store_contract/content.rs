//! Projects, conversations with their transcripts, and memories.

use super::*;

pub(super) async fn projects_and_conversations_page_and_cascade(store: DynStore) {
    let a = create(&store, "c@example.com").await;
    let mut repo = project_in(&a.org, &a.user, "Alpha");
    repo.kind = ProjectKind::Repository;
    repo.workspace_capability = WorkspaceCapability::FullTools;
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
    upd.status = ConversationStatus::Done;
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

pub(super) async fn transcripts_append_idempotently(store: DynStore) {
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
        scope: MemoryScope::parse(scope).unwrap(),
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
        status: MemoryStatus::Active,
        visibility: "private".into(),
        fingerprint: format!("{scope}::{}::{topic}", org.0),
        archived: false,
        source: "manual".into(),
        created_by: user.cloned(),
        created_at: t,
        updated_at: t,
    }
}

pub(super) async fn memories_visibility_search_and_supersede(store: DynStore) {
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
        scope: MemoryScope::parse(scope),
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
        MemoryStatus::Superseded
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
