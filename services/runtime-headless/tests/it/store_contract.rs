//! One contract suite, run against the in-memory store and the Postgres store.

use std::sync::Arc;
use std::time::Duration;

use cloud_testkit::db::TestDb;
use runtime_headless::domain::message::{AgentMessage, TokenUsage, UserMessage, UserPart};
use runtime_headless::domain::{
    AcquireOutcome, Lease, NewSession, Preferences, QueueMode, Recovery, Session, SessionStatus,
    TranscriptMessage, TurnKind, TurnStatus, UserInput,
};
use runtime_headless::store::memory::MemoryStore;
use runtime_headless::store::postgres::PgStore;
use runtime_headless::store::{MessageStore, MessageTally, SettingsUpdate, Store, TurnStats};

fn input(text: &str) -> UserInput {
    UserInput {
        text: text.into(),
        ..UserInput::default()
    }
}

const TTL: Duration = Duration::from_secs(30);

struct Harness {
    store: Arc<dyn Store>,
    messages: Arc<dyn MessageStore>,
    db: Option<TestDb>,
}

impl Harness {
    async fn memory() -> Self {
        let m = Arc::new(MemoryStore::new());
        Self {
            store: m.clone(),
            messages: m,
            db: None,
        }
    }

    async fn postgres() -> Self {
        let db = TestDb::new().await;
        let pg = Arc::new(PgStore::new(db.pool.clone()));
        Self {
            store: pg.clone(),
            messages: pg,
            db: Some(db),
        }
    }

    async fn user(&self) -> String {
        let id = format!("user-{}", uuid::Uuid::new_v4().simple());
        if let Some(db) = &self.db {
            sqlx::query("INSERT INTO cloud_users (id, email, display_name) VALUES ($1, $2, 'T')")
                .bind(&id)
                .bind(format!("{id}@example.test"))
                .execute(&db.pool)
                .await
                .unwrap();
        }
        id
    }

    /// Makes a session's lease expire now (what a dead owner leaves behind).
    async fn expire(&self, id: &str) {
        match &self.db {
            Some(db) => {
                sqlx::query("UPDATE runtime_sessions SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
                    .bind(id)
                    .execute(&db.pool)
                    .await
                    .unwrap();
            }
            None => {
                let s = self.store.get(id).await.unwrap().unwrap();
                self.store
                    .release(s.owner_id.as_deref().unwrap())
                    .await
                    .unwrap();
            }
        }
    }
}

fn new_session(user: &str, conversation: &str, limit: i32) -> NewSession {
    NewSession {
        user_id: user.to_owned(),
        organization_id: Some("org".into()),
        conversation_id: conversation.to_owned(),
        project_id: None,
        cloud_instance_id: "inst".into(),
        model_provider: None,
        model_id: None,
        thinking_level: None,
        subscription_plan: "plus".into(),
        subscription_label: "Plus".into(),
        parallel_sessions_limit: limit,
        context: vec![TranscriptMessage {
            id: "m0".into(),
            role: "user".into(),
            timestamp: 1,
            content: "earlier".into(),
        }],
    }
}

/// An acquire that must reuse the conversation's session: (session, taken over).
async fn reuse(
    h: &Harness,
    user: &str,
    conversation: &str,
    limit: i32,
    owner: &str,
) -> (Session, bool) {
    match h
        .store
        .acquire(new_session(user, conversation, limit), owner, TTL)
        .await
        .unwrap()
    {
        AcquireOutcome::Reused {
            session,
            taken_over,
            ..
        } => (session, taken_over),
        other => panic!("expected a reuse, got {other:?}"),
    }
}

async fn create(h: &Harness, user: &str, conversation: &str, owner: &str) -> Session {
    match h
        .store
        .acquire(new_session(user, conversation, 10), owner, TTL)
        .await
        .unwrap()
    {
        AcquireOutcome::Created { session, .. } => session,
        other => panic!("expected a creation, got {other:?}"),
    }
}

async fn acquire_creates_then_reuses_and_enforces_the_quota(h: Harness) {
    let user = h.user().await;
    let s = match h
        .store
        .acquire(new_session(&user, "c1", 2), "w1", TTL)
        .await
        .unwrap()
    {
        AcquireOutcome::Created { session, usage } => {
            assert_eq!(usage.active_parallel_sessions, 1);
            session
        }
        other => panic!("{other:?}"),
    };
    assert!(s.id.starts_with("runtime-session-"));
    assert_eq!(s.status, SessionStatus::Ready);
    assert_eq!(s.context.len(), 1);
    let (session, taken_over) = reuse(&h, &user, "c1", 2, "w2").await;
    assert_eq!(session.id, s.id);
    assert!(!taken_over, "a live lease is not stolen");
    assert_eq!(session.owner_id.as_deref(), Some("w1"));
    create_ok(&h, &user, "c2", 2).await;
    match h
        .store
        .acquire(new_session(&user, "c3", 2), "w1", TTL)
        .await
        .unwrap()
    {
        AcquireOutcome::QuotaExceeded { usage } => {
            assert_eq!(usage.active_parallel_sessions, 2);
            assert_eq!(usage.remaining_parallel_sessions, 0);
        }
        other => panic!("{other:?}"),
    }
    // Reuse is checked before the quota.
    assert!(matches!(
        h.store
            .acquire(new_session(&user, "c1", 2), "w1", TTL)
            .await
            .unwrap(),
        AcquireOutcome::Reused { .. }
    ));
    // Stopping frees a slot.
    assert!(h.store.stop(&s.id).await.unwrap());
    assert!(!h.store.stop(&s.id).await.unwrap());
    create_ok(&h, &user, "c3", 2).await;
    assert_eq!(
        h.store
            .usage(&user, 2)
            .await
            .unwrap()
            .active_parallel_sessions,
        2
    );
}

async fn create_ok(h: &Harness, user: &str, c: &str, limit: i32) {
    assert!(matches!(
        h.store
            .acquire(new_session(user, c, limit), "w1", TTL)
            .await
            .unwrap(),
        AcquireOutcome::Created { .. }
    ));
}

async fn expired_leases_are_taken_over_and_stale_writes_fenced(h: Harness) {
    let user = h.user().await;
    let s = create(&h, &user, "c", "w1").await;
    let old = s.lease().unwrap();
    assert!(
        h.store
            .set_status(&s.id, &old, SessionStatus::Streaming)
            .await
            .unwrap()
    );
    h.expire(&s.id).await;
    // An expired lease never blocks the conversation: acquire takes it over.
    let (taken, taken_over) = reuse(&h, &user, "c", 10, "w2").await;
    assert!(taken_over);
    assert_eq!(taken.id, s.id);
    assert_eq!(taken.owner_id.as_deref(), Some("w2"));
    assert_eq!(taken.lease_version, old.version + 1);
    // The old owner's writes are refused; the new owner's apply.
    assert!(
        !h.store
            .set_status(&s.id, &old, SessionStatus::Ready)
            .await
            .unwrap()
    );
    let new = taken.lease().unwrap();
    assert!(
        h.store
            .set_status(&s.id, &new, SessionStatus::Ready)
            .await
            .unwrap()
    );
    // Heartbeats only extend the current owner's leases.
    assert!(h.store.heartbeat("w1", TTL).await.unwrap().is_empty());
    assert_eq!(
        h.store.heartbeat("w2", TTL).await.unwrap(),
        vec![(s.id.clone(), new.version)]
    );
    assert!(
        h.store
            .claim_expired("w3", TTL, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Release hands the lease to the next sweeper at once.
    assert_eq!(h.store.release("w2").await.unwrap(), 1);
    let claimed = h.store.claim_expired("w3", TTL, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease_version, new.version + 1);
    assert!(h.store.take_over(&s.id, "w1", TTL).await.unwrap().is_none());
}

async fn turns_queue_run_once_in_order(h: Harness) {
    let user = h.user().await;
    let s = create(&h, &user, "c", "w1").await;
    let t1 = h
        .store
        .enqueue_turn(
            &s.id,
            TurnKind::Prompt,
            &input("one"),
            Some("r1".into()),
            vec![1],
        )
        .await
        .unwrap();
    let t2 = h
        .store
        .enqueue_turn(&s.id, TurnKind::FollowUp, &input("two"), None, vec![1])
        .await
        .unwrap();
    let t3 = h
        .store
        .enqueue_turn(&s.id, TurnKind::Steer, &input("steer"), None, vec![1])
        .await
        .unwrap();
    assert_eq!(h.store.queue_depth().await.unwrap(), 3);
    // Only the lease owner claims.
    assert!(h.store.claim_turn("w2").await.unwrap().is_none());
    let (first, lease) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert_eq!(first.id, t3.id, "steering goes first");
    assert_eq!(first.status, TurnStatus::Running);
    assert_eq!(first.attempts, 1);
    assert_eq!(lease, s.lease().unwrap());
    // One running turn per session.
    assert!(h.store.claim_turn("w1").await.unwrap().is_none());
    assert!(h.store.mark_output_started(first.id, &lease).await.unwrap());
    assert!(
        h.store
            .finish_turn(
                first.id,
                &lease,
                TurnStatus::Succeeded,
                "ok",
                None,
                TurnStats::default()
            )
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .finish_turn(
                first.id,
                &lease,
                TurnStatus::Failed,
                "",
                None,
                TurnStats::default()
            )
            .await
            .unwrap()
    );
    let (second, _) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert_eq!(second.id, t1.id);
    assert_eq!(second.request_id.as_deref(), Some("r1"));
    let stale = Lease {
        owner: "w1".into(),
        version: lease.version - 1,
    };
    assert!(
        !h.store
            .finish_turn(
                second.id,
                &stale,
                TurnStatus::Succeeded,
                "x",
                None,
                TurnStats::default()
            )
            .await
            .unwrap()
    );
    assert!(
        h.store
            .finish_turn(
                second.id,
                &lease,
                TurnStatus::Succeeded,
                "done",
                None,
                TurnStats::default()
            )
            .await
            .unwrap()
    );
    let turns = h.store.turns_of(&s.id).await.unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns.iter().find(|t| t.id == t1.id).unwrap().output, "done");
    let _ = t2;
    // Finished turns are handed to the transcript appender once.
    let pending = h.store.claim_transcripts(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|p| p.turn.id).collect::<Vec<_>>(),
        vec![t1.id, t3.id]
    );
    assert_eq!(pending[0].conversation_id, "c");
    assert!(h.store.claim_transcripts(10).await.unwrap().is_empty());
    h.store.unmark_synced(t1.id).await.unwrap();
    assert_eq!(h.store.claim_transcripts(10).await.unwrap().len(), 1);
}

async fn a_new_owner_retries_or_fails_interrupted_turns(h: Harness) {
    let user = h.user().await;
    let s = create(&h, &user, "c", "w1").await;
    let quiet = h
        .store
        .enqueue_turn(&s.id, TurnKind::Prompt, &input("quiet"), None, vec![1])
        .await
        .unwrap();
    let (t, lease) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert_eq!(t.id, quiet.id);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        h.store
            .running_claimed_by("w1", Duration::from_millis(1))
            .await
            .unwrap(),
        vec![(t.id, s.id.clone())]
    );
    assert!(
        h.store
            .running_claimed_by("w1", Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    h.expire(&s.id).await;
    let taken = h.store.claim_expired("w2", TTL, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    let new = taken[0].lease().unwrap();
    // The old owner can no longer record anything.
    assert!(!h.store.mark_output_started(t.id, &lease).await.unwrap());
    assert!(
        h.store
            .recover_turns(&s.id, &lease)
            .await
            .unwrap()
            .is_empty(),
        "stale lease"
    );
    let recovered = h.store.recover_turns(&s.id, &new).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].1, Recovery::Retry);
    // Re-run by the new owner, this time output starts, then the owner dies again.
    let (again, lease2) = h.store.claim_turn("w2").await.unwrap().unwrap();
    assert_eq!(again.id, quiet.id);
    assert_eq!(again.attempts, 2);
    assert!(
        h.store
            .mark_output_started(again.id, &lease2)
            .await
            .unwrap()
    );
    h.expire(&s.id).await;
    let taken = h.store.claim_expired("w3", TTL, 10).await.unwrap();
    let recovered = h
        .store
        .recover_turns(&s.id, &taken[0].lease().unwrap())
        .await
        .unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].1, Recovery::Fail);
    assert_eq!(recovered[0].0.status, TurnStatus::Failed);
    assert!(h.store.claim_turn("w3").await.unwrap().is_none());
}

async fn abort_stop_and_idle_expiry(h: Harness) {
    let user = h.user().await;
    let s = create(&h, &user, "c", "w1").await;
    let running = h
        .store
        .enqueue_turn(&s.id, TurnKind::Prompt, &input("a"), None, vec![1])
        .await
        .unwrap();
    let queued = h
        .store
        .enqueue_turn(&s.id, TurnKind::FollowUp, &input("b"), None, vec![1])
        .await
        .unwrap();
    let (_, lease) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert!(
        h.store
            .turns_to_cancel(&[running.id])
            .await
            .unwrap()
            .is_empty()
    );
    let result = h.store.request_abort(&s.id).await.unwrap();
    assert_eq!(result.running, vec![running.id]);
    assert_eq!(result.cancelled_queued, vec![queued.id]);
    assert_eq!(
        h.store.turns_to_cancel(&[running.id]).await.unwrap(),
        vec![running.id]
    );
    assert!(
        h.store
            .finish_turn(
                running.id,
                &lease,
                TurnStatus::Aborted,
                "partial",
                None,
                TurnStats::default()
            )
            .await
            .unwrap()
    );
    assert!(h.store.claim_turn("w1").await.unwrap().is_none());

    // Settings are not fenced; stop fences everyone out and aborts what is left.
    assert!(
        h.store
            .update_settings(
                &s.id,
                SettingsUpdate {
                    model: Some((Some("openai".into()), Some("m".into()))),
                    thinking_level: Some(Some("high".into())),
                    preferences: Some(Preferences {
                        steering_mode: QueueMode::OneAtATime,
                        ..Preferences::default()
                    }),
                }
            )
            .await
            .unwrap()
    );
    let got = h.store.get(&s.id).await.unwrap().unwrap();
    assert_eq!(got.model_id.as_deref(), Some("m"));
    assert_eq!(got.thinking_level.as_deref(), Some("high"));
    assert_eq!(got.preferences.steering_mode, QueueMode::OneAtATime);
    assert_eq!(got.preferences.follow_up_mode, QueueMode::All);
    let pending = h
        .store
        .enqueue_turn(&s.id, TurnKind::Prompt, &input("c"), None, vec![1])
        .await
        .unwrap();
    assert!(h.store.stop(&s.id).await.unwrap());
    assert!(
        !h.store
            .set_status(&s.id, &lease, SessionStatus::Ready)
            .await
            .unwrap()
    );
    let turns = h.store.turns_of(&s.id).await.unwrap();
    assert_eq!(
        turns.iter().find(|t| t.id == pending.id).unwrap().status,
        TurnStatus::Aborted
    );
    assert_eq!(
        h.store.get(&s.id).await.unwrap().unwrap().status,
        SessionStatus::Stopped
    );

    // Idle sessions expire (not while they have work), freeing quota.
    let idle = create(&h, &user, "idle", "w1").await;
    let busy = create(&h, &user, "busy", "w1").await;
    h.store
        .enqueue_turn(&busy.id, TurnKind::Prompt, &input("x"), None, vec![1])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let expired = h
        .store
        .expire_idle(Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![idle.id.clone()]
    );
    assert_eq!(
        h.store.get(&idle.id).await.unwrap().unwrap().status,
        SessionStatus::Stopped
    );
    assert_eq!(
        h.store
            .usage(&user, 10)
            .await
            .unwrap()
            .active_parallel_sessions,
        1
    );
    assert_eq!(h.store.count_active().await.unwrap(), 1);
}

fn user_message(id: &str, text: &str) -> AgentMessage {
    AgentMessage::User(UserMessage {
        id: id.into(),
        content: vec![UserPart::Text { text: text.into() }],
        timestamp: 1,
    })
}

async fn agent_messages_are_fenced_ordered_and_merged_turns_delivered(h: Harness) {
    let user = h.user().await;
    let s = create(&h, &user, "conv-msgs", "w1").await;
    let first = h
        .store
        .enqueue_turn(&s.id, TurnKind::Prompt, &input("go"), None, vec![1])
        .await
        .unwrap();
    assert_eq!(first.input.as_ref().map(|i| i.text.as_str()), Some("go"));
    let (running, lease) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert_eq!(running.id, first.id);
    // Steering and follow-up messages queued while the run is active.
    let steer_a = h
        .store
        .enqueue_turn(&s.id, TurnKind::Steer, &input("a"), None, vec![1])
        .await
        .unwrap();
    let follow = h
        .store
        .enqueue_turn(&s.id, TurnKind::FollowUp, &input("later"), None, vec![1])
        .await
        .unwrap();
    let steer_b = h
        .store
        .enqueue_turn(&s.id, TurnKind::Steer, &input("b"), None, vec![1])
        .await
        .unwrap();
    let one = h
        .store
        .take_queued(&s.id, &lease, running.id, TurnKind::Steer, 1)
        .await
        .unwrap();
    assert_eq!(
        one.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![steer_a.id]
    );
    assert_eq!(one[0].merged_into, Some(running.id));
    assert_eq!(one[0].status, TurnStatus::Succeeded);
    let rest = h
        .store
        .take_queued(&s.id, &lease, running.id, TurnKind::Steer, 100)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![steer_b.id]
    );
    // A stale lease takes nothing.
    let stale = Lease {
        owner: "w1".into(),
        version: lease.version - 1,
    };
    assert!(
        h.store
            .take_queued(&s.id, &stale, running.id, TurnKind::FollowUp, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // Messages: in order of first write, replaced by id, fenced.
    assert!(
        h.messages
            .append_messages(
                &s.id,
                &lease,
                running.id,
                &[user_message("m1", "go"), user_message("m2", "a")]
            )
            .await
            .unwrap()
    );
    assert!(
        h.messages
            .append_messages(
                &s.id,
                &lease,
                running.id,
                &[user_message("m1", "go (edited)")]
            )
            .await
            .unwrap()
    );
    assert!(
        !h.messages
            .append_messages(&s.id, &stale, running.id, &[user_message("m3", "x")])
            .await
            .unwrap()
    );
    let all = h.messages.session_messages(&s.id).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|m| m.message.id()).collect();
    assert_eq!(ids, vec!["m1", "m2"]);
    assert_eq!(
        all[0].message.transcript_text().as_deref(),
        Some("go (edited)")
    );
    assert_eq!(all[0].turn_id, Some(running.id));
    assert_eq!(h.messages.turn_messages(running.id).await.unwrap().len(), 2);
    assert!(
        h.messages
            .turn_messages(follow.id)
            .await
            .unwrap()
            .is_empty()
    );

    let stats = TurnStats {
        usage: TokenUsage::new(120, 30),
        steps: 3,
    };
    assert!(
        h.store
            .finish_turn(
                running.id,
                &lease,
                TurnStatus::Succeeded,
                "done",
                None,
                stats
            )
            .await
            .unwrap()
    );
    let turns = h.store.turns_of(&s.id).await.unwrap();
    let done = turns.iter().find(|t| t.id == running.id).unwrap();
    assert_eq!(
        (done.input_tokens, done.output_tokens, done.steps),
        (120, 30, 3)
    );
    // The merged steers do not reach the transcript on their own; the finished turn does.
    let pending = h.store.claim_transcripts(100).await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|p| p.turn.id).collect();
    assert!(ids.contains(&running.id), "{ids:?}");
    assert!(
        !ids.contains(&steer_a.id) && !ids.contains(&steer_b.id),
        "{ids:?}"
    );
    // The follow-up is still queued for its own run.
    let (next, _) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert_eq!(next.id, follow.id);
}

fn assistant_message(id: &str, input: u64, output: u64) -> AgentMessage {
    serde_json::from_value(serde_json::json!({
        "role": "assistant", "id": id, "content": [{"type": "text", "text": "ok"}],
        "api": "openai-completions", "provider": "openai", "model": "m",
        "usage": TokenUsage::new(input, output), "stopReason": "stop", "timestamp": 2,
    }))
    .unwrap()
}

/// `get_state`'s counts come from the store without decoding messages: they must agree with
/// the messages themselves.
async fn the_tally_and_queue_count_agree_with_the_messages_and_turns(h: Harness) {
    let user = h.user().await;
    let s = create(&h, &user, "conv-tally", "w1").await;
    assert_eq!(h.store.queued_turns(&s.id).await.unwrap(), 0);
    assert_eq!(
        h.messages.session_tally(&s.id).await.unwrap(),
        MessageTally::default()
    );
    for text in ["one", "two", "three"] {
        h.store
            .enqueue_turn(&s.id, TurnKind::Prompt, &input(text), None, vec![1])
            .await
            .unwrap();
    }
    assert_eq!(h.store.queued_turns(&s.id).await.unwrap(), 3);
    let (running, lease) = h.store.claim_turn("w1").await.unwrap().unwrap();
    assert_eq!(h.store.queued_turns(&s.id).await.unwrap(), 2);
    let written = [
        user_message("u1", "one"),
        assistant_message("a1", 100, 7),
        user_message("u2", "more"),
        assistant_message("a2", 40, 3),
    ];
    assert!(
        h.messages
            .append_messages(&s.id, &lease, running.id, &written)
            .await
            .unwrap()
    );
    // A replaced message counts once, with its new tokens.
    assert!(
        h.messages
            .append_messages(&s.id, &lease, running.id, &[assistant_message("a2", 50, 5)])
            .await
            .unwrap()
    );
    let tally = h.messages.session_tally(&s.id).await.unwrap();
    assert_eq!(tally.ids, vec!["u1", "a1", "u2", "a2"]);
    assert_eq!(tally.usage, TokenUsage::new(150, 12));
    // Another session's messages and turns are not counted.
    let other = create(&h, &user, "conv-tally-other", "w1").await;
    assert_eq!(h.store.queued_turns(&other.id).await.unwrap(), 0);
    assert!(
        h.messages
            .session_tally(&other.id)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $( #[tokio::test] async fn $name() { super::$name(super::Harness::memory().await).await } )*
        }
        mod postgres_store {
            $( #[tokio::test] async fn $name() { super::$name(super::Harness::postgres().await).await } )*
        }
    };
}

contract!(
    acquire_creates_then_reuses_and_enforces_the_quota,
    expired_leases_are_taken_over_and_stale_writes_fenced,
    turns_queue_run_once_in_order,
    a_new_owner_retries_or_fails_interrupted_turns,
    abort_stop_and_idle_expiry,
    agent_messages_are_fenced_ordered_and_merged_turns_delivered,
    the_tally_and_queue_count_agree_with_the_messages_and_turns,
);

/// Many replicas creating at once for one user: never more sessions than the limit.
#[tokio::test]
async fn postgres_quota_holds_under_concurrent_creates() {
    let h = Harness::postgres().await;
    let db = h.db.as_ref().unwrap();
    let user = h.user().await;
    let stores: Vec<Arc<dyn Store>> = (0..4)
        .map(|_| Arc::new(PgStore::new(db.pool.clone())) as Arc<dyn Store>)
        .collect();
    let calls = (0..24).map(|i| {
        let store = stores[i % 4].clone();
        let user = user.clone();
        async move {
            store
                .acquire(
                    new_session(&user, &format!("conv-{i}"), 5),
                    &format!("w{}", i % 4),
                    TTL,
                )
                .await
                .unwrap()
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let created = results
        .iter()
        .filter(|r| matches!(r, AcquireOutcome::Created { .. }))
        .count();
    assert_eq!(created, 5);
    assert_eq!(
        h.store
            .usage(&user, 5)
            .await
            .unwrap()
            .active_parallel_sessions,
        5
    );
}
