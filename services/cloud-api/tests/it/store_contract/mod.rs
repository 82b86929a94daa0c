//! The store contract: every scenario runs against the in-memory store and against Postgres
//! (a fresh schema per test), and both must behave identically.

use chrono::Duration;
use cloud_api::domain::*;
use cloud_api::store::{
    DynStore, EmailToken, EmailTokenKind, NewAccount, PlanPatch, Rotation, StoreResult,
};

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

mod accounts;
mod audit;
mod content;
mod organizations;
mod self_service;

use accounts::*;
use content::*;
use organizations::*;

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
        disabled_at: None,
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
        kind: ProjectKind::ConversationOnly,
        workspace_capability: WorkspaceCapability::ChatOnly,
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
        status: ConversationStatus::Active,
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
        amr: "pwd otp mfa".into(),
    }
}

/// A successor session for `rotate_refresh` (the store copies the family, user, client and
/// how the user signed in).
fn successor(access: &str, refresh: &str) -> Session {
    Session {
        amr: String::new(),
        ..session(
            &UserId::default(),
            access,
            Some(refresh),
            Duration::hours(1),
        )
    }
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
    at: Timestamp,
    grace: std::time::Duration,
) -> RotateOutcome {
    let rotation = Rotation {
        refresh_hash: refresh,
        next,
        now: at,
        grace,
    };
    store.rotate_refresh(rotation).await.unwrap()
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
    expires_at: Timestamp,
) {
    let token = EmailToken {
        kind,
        hash: hash.to_owned(),
        user: user.clone(),
        expires_at,
    };
    store.insert_email_token(&token).await.unwrap();
}
