//! The mail queue: Postgres (`cloud_mail_outbox`) or in memory.

use std::sync::Mutex;
use std::time::Duration;

use crate::domain::Timestamp;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{PgPool, Row};

use super::Mail;

/// A message claimed for delivery; `attempts` counts this one.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: i64,
    pub mail: Mail,
    pub attempts: i32,
}

pub type OutboxResult<T> = Result<T, String>;

#[async_trait]
pub trait MailOutbox: Send + Sync + 'static {
    async fn enqueue(&self, mail: &Mail) -> OutboxResult<()>;
    /// Up to `limit` unsent messages due at `now`, each made invisible to other workers for
    /// `lease` and its attempt counted. Rows locked by another worker are skipped.
    async fn claim_due(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> OutboxResult<Vec<QueuedMail>>;
    async fn mark_sent(&self, id: i64, now: Timestamp) -> OutboxResult<()>;
    async fn mark_failed(&self, id: i64, error: &str, next: Timestamp) -> OutboxResult<()>;
    /// Messages not yet sent.
    async fn backlog(&self) -> OutboxResult<i64>;
    /// Deletes messages delivered before `before` (housekeeping).
    async fn purge_sent(&self, before: Timestamp) -> OutboxResult<u64>;
}

fn lease_until(now: Timestamp, lease: Duration) -> Timestamp {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1))
}

pub struct PgOutbox {
    pool: PgPool,
}

impl PgOutbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl MailOutbox for PgOutbox {
    async fn enqueue(&self, mail: &Mail) -> OutboxResult<()> {
        sqlx::query(
            "INSERT INTO cloud_mail_outbox (recipient, subject, text_body, html_body) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&mail.recipient)
        .bind(&mail.subject)
        .bind(&mail.text_body)
        .bind(&mail.html_body)
        .execute(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> OutboxResult<Vec<QueuedMail>> {
        let rows = sqlx::query(
            "UPDATE cloud_mail_outbox SET attempts = attempts + 1, next_attempt_at = $3 \
             WHERE id IN (SELECT id FROM cloud_mail_outbox \
                          WHERE sent_at IS NULL AND next_attempt_at <= $1 \
                          ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, recipient, subject, text_body, html_body, attempts",
        )
        .bind(now)
        .bind(limit)
        .bind(lease_until(now, lease))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(QueuedMail {
                    id: r.try_get("id")?,
                    attempts: r.try_get("attempts")?,
                    mail: Mail {
                        recipient: r.try_get("recipient")?,
                        subject: r.try_get("subject")?,
                        text_body: r.try_get("text_body")?,
                        html_body: r.try_get("html_body")?,
                    },
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| e.to_string())?;
        out.sort_by_key(|q| q.id);
        Ok(out)
    }

    async fn mark_sent(&self, id: i64, now: Timestamp) -> OutboxResult<()> {
        sqlx::query("UPDATE cloud_mail_outbox SET sent_at = $2, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn mark_failed(&self, id: i64, error: &str, next: Timestamp) -> OutboxResult<()> {
        let error: String = error.chars().take(2000).collect();
        sqlx::query(
            "UPDATE cloud_mail_outbox SET last_error = $2, next_attempt_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(next)
        .execute(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn backlog(&self) -> OutboxResult<i64> {
        sqlx::query_scalar("SELECT count(*) FROM cloud_mail_outbox WHERE sent_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())
    }

    async fn purge_sent(&self, before: Timestamp) -> OutboxResult<u64> {
        sqlx::query("DELETE FROM cloud_mail_outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|d| d.rows_affected())
            .map_err(|e| e.to_string())
    }
}

struct Row_ {
    id: i64,
    mail: Mail,
    attempts: i32,
    next_attempt_at: Timestamp,
    sent_at: Option<Timestamp>,
    last_error: Option<String>,
}

/// In-process queue (no `DATABASE_URL`, and tests).
#[derive(Default)]
pub struct MemoryOutbox {
    rows: Mutex<Vec<Row_>>,
}

impl MemoryOutbox {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<Row_>) -> R) -> OutboxResult<R> {
        let mut g = self
            .rows
            .lock()
            .map_err(|_| "mail outbox lock poisoned".to_owned())?;
        Ok(f(&mut g))
    }

    /// Every message ever queued with whether it was sent and its last error (tests).
    pub fn snapshot(&self) -> Vec<(Mail, bool, Option<String>)> {
        self.with(|rows| {
            rows.iter()
                .map(|r| (r.mail.clone(), r.sent_at.is_some(), r.last_error.clone()))
                .collect()
        })
        .unwrap_or_default()
    }
}

#[async_trait]
impl MailOutbox for MemoryOutbox {
    async fn enqueue(&self, mail: &Mail) -> OutboxResult<()> {
        self.with(|rows| {
            let id = rows.len() as i64 + 1;
            rows.push(Row_ {
                id,
                mail: mail.clone(),
                attempts: 0,
                next_attempt_at: Utc::now(),
                sent_at: None,
                last_error: None,
            });
        })
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: i64,
        lease: Duration,
    ) -> OutboxResult<Vec<QueuedMail>> {
        self.with(|rows| {
            rows.iter_mut()
                .filter(|r| r.sent_at.is_none() && r.next_attempt_at <= now)
                .take(limit.max(0) as usize)
                .map(|r| {
                    r.attempts += 1;
                    r.next_attempt_at = lease_until(now, lease);
                    QueuedMail {
                        id: r.id,
                        mail: r.mail.clone(),
                        attempts: r.attempts,
                    }
                })
                .collect()
        })
    }

    async fn mark_sent(&self, id: i64, now: Timestamp) -> OutboxResult<()> {
        self.with(|rows| {
            if let Some(r) = rows.iter_mut().find(|r| r.id == id) {
                r.sent_at = Some(now);
                r.last_error = None;
            }
        })
    }

    async fn mark_failed(&self, id: i64, error: &str, next: Timestamp) -> OutboxResult<()> {
        self.with(|rows| {
            if let Some(r) = rows.iter_mut().find(|r| r.id == id) {
                r.last_error = Some(error.to_owned());
                r.next_attempt_at = next;
            }
        })
    }

    async fn backlog(&self) -> OutboxResult<i64> {
        self.with(|rows| rows.iter().filter(|r| r.sent_at.is_none()).count() as i64)
    }

    async fn purge_sent(&self, before: Timestamp) -> OutboxResult<u64> {
        self.with(|rows| {
            let total = rows.len();
            rows.retain(|r| r.sent_at.is_none_or(|at| at >= before));
            (total - rows.len()) as u64
        })
    }
}
