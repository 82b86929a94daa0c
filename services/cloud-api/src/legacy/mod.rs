//! `cloud-api import-legacy --from <postgres url>`: copies an existing deployment of the first
//! (TypeScript) system into this one. It reads the first system's tables (users, plans,
//! organizations, memberships, providers and their secrets, projects and repository secrets,
//! conversations, transcripts, memories, live sessions) and writes ours, keeping every id, so the
//! desktops' local caches (project and conversation ids) and their stored tokens keep working.
//!
//! - Idempotent: every row is inserted only if its id is not there yet, so a second run changes
//!   nothing (and says so in its summary).
//! - Transactional per organization: an organization with its members, providers, projects,
//!   conversations, transcripts and memories is written in one transaction, or not at all.
//! - Secrets (stored in plaintext by the first system) are sealed under our key; tokens are kept
//!   only as SHA-256; scrypt password hashes are kept as they are and replaced by argon2id at the
//!   user's first login (`crate::password`).
//! - Rows ours cannot hold are skipped and counted, never guessed (an email already used by an
//!   account of this deployment, a memory without organization, an orphaned project …).

mod orgs;
mod rows;

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use anyhow::Context;
use chrono::Utc;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::Config;
use crate::crypto::{SecretBox, token_hash};
use rows::*;

/// What happened to the rows of one kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

/// Per-kind tallies, printed at the end; `failed` lists organizations whose transaction failed.
#[derive(Debug, Default)]
pub struct Summary {
    pub kinds: BTreeMap<&'static str, Tally>,
    pub failed: Vec<String>,
}

impl Summary {
    pub(crate) fn created(&mut self, kind: &'static str) {
        self.kinds.entry(kind).or_default().created += 1;
    }
    pub(crate) fn unchanged(&mut self, kind: &'static str) {
        self.kinds.entry(kind).or_default().unchanged += 1;
    }
    /// Counts an idempotent insert: created when it wrote a row, unchanged otherwise.
    pub(crate) fn count(&mut self, kind: &'static str, done: sqlx::postgres::PgQueryResult) {
        if done.rows_affected() > 0 {
            self.created(kind);
        } else {
            self.unchanged(kind);
        }
    }
    pub(crate) fn skipped(&mut self, kind: &'static str, why: &str) {
        self.kinds.entry(kind).or_default().skipped += 1;
        println!("  skipped {kind}: {why}");
    }

    /// Rows written by this run (0 on a repeated run).
    pub fn total_created(&self) -> u64 {
        self.kinds.values().map(|t| t.created).sum()
    }

    fn merge(&mut self, other: Summary) {
        for (k, t) in other.kinds {
            let e = self.kinds.entry(k).or_default();
            e.created += t.created;
            e.unchanged += t.unchanged;
            e.skipped += t.skipped;
        }
    }

    fn print(&self) {
        println!("Summary (created / already there / skipped):");
        for (kind, t) in &self.kinds {
            println!(
                "  {kind:<24} {:>6} / {:>6} / {:>6}",
                t.created, t.unchanged, t.skipped
            );
        }
        println!(
            "{} rows written.{}",
            self.total_created(),
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(" Failed organizations: {}", self.failed.join(", "))
            }
        );
    }
}

/// The `import-legacy` command: `args` are the words after it (`--from <url>`).
pub async fn command(config: &Config, args: &[String]) -> anyhow::Result<()> {
    let from = match args {
        [flag, url] if flag == "--from" => url.clone(),
        [arg] if arg.starts_with("--from=") => arg["--from=".len()..].to_owned(),
        _ => anyhow::bail!(
            "usage: cloud-api import-legacy --from <postgres url of the first system>"
        ),
    };
    let target_url = config
        .database_url
        .as_ref()
        .context("DATABASE_URL (the new database) is required for `import-legacy`")?;
    let target = cloud_common::db::lazy_pool(target_url.expose(), 3).context("DATABASE_URL")?;
    cloud_common::db::MIGRATOR
        .run(&target)
        .await
        .context("applying migrations")?;
    let source = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(PgConnectOptions::from_str(&from).context("--from is not a Postgres URL")?)
        .await
        .context("connecting to the first system's database (--from)")?;
    let secrets = crate::state::secret_box(config)?;
    let summary = run(&source, &target, &secrets, &config.client_id).await;
    source.close().await;
    target.close().await;
    let summary = summary?;
    summary.print();
    if summary.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} organizations were not imported", summary.failed.len())
    }
}

/// Imports everything from `source` (the first system) into `target` (ours).
pub async fn run(
    source: &PgPool,
    target: &PgPool,
    secrets: &SecretBox,
    desktop_client: &str,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    println!("Importing plans…");
    plans(source, target, &mut summary).await?;
    println!("Importing users…");
    users(source, target, &mut summary).await?;
    let legacy_orgs: Vec<LegacyOrg> = sqlx::query_as(
        "SELECT id, owner_user_id, slug, name, created_at, updated_at \
         FROM cloud_organizations ORDER BY created_at, id",
    )
    .fetch_all(source)
    .await
    .context("reading cloud_organizations")?;
    let total = legacy_orgs.len();
    for (n, org) in legacy_orgs.iter().enumerate() {
        let mut part = Summary::default();
        match orgs::import(source, target, secrets, org, &mut part).await {
            Ok(()) => {
                println!(
                    "[{}/{total}] organization {} ({}): {} rows written",
                    n + 1,
                    org.id,
                    org.name,
                    part.total_created()
                );
                summary.merge(part);
            }
            Err(e) => {
                println!(
                    "[{}/{total}] organization {} FAILED, nothing of it written: {e:#}",
                    n + 1,
                    org.id
                );
                summary.failed.push(org.id.clone());
            }
        }
    }
    let orphans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM cloud_memories WHERE organization_id IS NULL")
            .fetch_one(source)
            .await
            .context("reading cloud_memories")?;
    for _ in 0..orphans {
        summary.skipped("memories", "no organization");
    }
    println!("Importing live sessions…");
    sessions(source, target, desktop_client, &mut summary).await?;
    Ok(summary)
}

async fn plans(source: &PgPool, target: &PgPool, summary: &mut Summary) -> anyhow::Result<()> {
    let rows: Vec<LegacyPlan> = sqlx::query_as(
        "SELECT id, label, parallel_sessions_limit, is_default FROM cloud_subscription_plans ORDER BY id",
    )
    .fetch_all(source)
    .await
    .context("reading cloud_subscription_plans")?;
    let mut tx = target.begin().await?;
    for p in &rows {
        let limit = p.parallel_sessions_limit.max(0);
        let done = sqlx::query(
            "INSERT INTO cloud_subscription_plans (id, label, parallel_sessions_limit) \
             VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE \
             SET label = EXCLUDED.label, parallel_sessions_limit = EXCLUDED.parallel_sessions_limit, \
                 updated_at = now() \
             WHERE (cloud_subscription_plans.label, cloud_subscription_plans.parallel_sessions_limit) \
                   IS DISTINCT FROM (EXCLUDED.label, EXCLUDED.parallel_sessions_limit)",
        )
        .bind(&p.id)
        .bind(&p.label)
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        summary.count("plans", done);
    }
    if let Some(default) = rows.iter().find(|p| p.is_default) {
        let moved = sqlx::query(
            "UPDATE cloud_subscription_plans SET is_default = false WHERE is_default AND id <> $1",
        )
        .bind(&default.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE cloud_subscription_plans SET is_default = true WHERE id = $1 AND NOT is_default",
        )
        .bind(&default.id)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() > 0 {
            println!("  default plan is now {}", default.id);
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn users(source: &PgPool, target: &PgPool, summary: &mut Summary) -> anyhow::Result<()> {
    let rows: Vec<LegacyUser> = sqlx::query_as(
        "SELECT id, email, display_name, is_admin, created_at, subscription_plan, password_hash, \
                email_verified_at, complimentary_plan_id, complimentary_granted_at, \
                complimentary_expires_at \
         FROM cloud_users ORDER BY created_at, id",
    )
    .fetch_all(source)
    .await
    .context("reading cloud_users")?;
    let plans: HashSet<String> = sqlx::query_scalar("SELECT id FROM cloud_subscription_plans")
        .fetch_all(target)
        .await?
        .into_iter()
        .collect();
    let known = |p: &Option<String>| p.clone().filter(|p| plans.contains(p));
    let mut tx = target.begin().await?;
    for u in &rows {
        let email = u.email.trim().to_lowercase();
        // A complimentary grant needs its plan and start time.
        let (grant_plan, granted_at, grant_expires) =
            match (known(&u.complimentary_plan_id), u.complimentary_granted_at) {
                (Some(p), Some(at)) => (Some(p), Some(at), u.complimentary_expires_at),
                _ => (None, None, None),
            };
        let done = sqlx::query(
            "INSERT INTO cloud_users (id, email, display_name, is_admin, subscription_plan, \
               password_hash, email_verified_at, complimentary_plan_id, complimentary_granted_at, \
               complimentary_expires_at, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$11) ON CONFLICT DO NOTHING",
        )
        .bind(&u.id)
        .bind(&email)
        .bind(&u.display_name)
        .bind(u.is_admin)
        .bind(known(&u.subscription_plan))
        .bind(u.password_hash.as_deref().filter(|h| !h.is_empty()))
        .bind(u.email_verified_at)
        .bind(grant_plan)
        .bind(granted_at)
        .bind(grant_expires)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            summary.created("users");
            continue;
        }
        let same: Option<String> = sqlx::query_scalar("SELECT id FROM cloud_users WHERE id = $1")
            .bind(&u.id)
            .fetch_optional(&mut *tx)
            .await?;
        if same.is_some() {
            summary.unchanged("users");
        } else {
            summary.skipped(
                "users",
                &format!("{}: email already used by another account here", u.id),
            );
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Live sessions keep the desktops signed in: the first system stored tokens in plaintext, ours
/// stores their SHA-256, so the same tokens keep working (and refresh into our rotation).
async fn sessions(
    source: &PgPool,
    target: &PgPool,
    desktop_client: &str,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let rows: Vec<LegacySession> = sqlx::query_as(
        "SELECT access_token, refresh_token, user_id, active_organization_id, expires_at, created_at \
         FROM cloud_sessions WHERE expires_at > $1 ORDER BY created_at",
    )
    .bind(Utc::now())
    .fetch_all(source)
    .await
    .context("reading cloud_sessions")?;
    let mut tx = target.begin().await?;
    for s in &rows {
        let access = token_hash(&s.access_token);
        let key = &access[..32];
        let user: Option<String> = sqlx::query_scalar("SELECT id FROM cloud_users WHERE id = $1")
            .bind(&s.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_none() {
            summary.skipped("sessions", "its user was not imported");
            continue;
        }
        let org: Option<String> = match &s.active_organization_id {
            Some(o) => {
                sqlx::query_scalar("SELECT id FROM cloud_organizations WHERE id = $1")
                    .bind(o)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        let refresh = Some(s.refresh_token.as_str())
            .filter(|r| !r.is_empty())
            .map(token_hash);
        let done = sqlx::query(
            "INSERT INTO cloud_sessions (id, family_id, user_id, client_id, scope, access_token_hash, \
               refresh_token_hash, active_organization_id, auth_time, expires_at, refresh_expires_at, \
               created_at) \
             VALUES ($1,$2,$3,$4,'openid profile email offline_access',$5,$6,$7,$8,$9,$9,$8) \
             ON CONFLICT DO NOTHING",
        )
        .bind(format!("session-legacy-{key}"))
        .bind(format!("family-legacy-{key}"))
        .bind(&s.user_id)
        .bind(desktop_client)
        .bind(&access)
        .bind(refresh)
        .bind(org)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        summary.count("sessions", done);
    }
    tx.commit().await?;
    Ok(())
}
