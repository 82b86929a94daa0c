//! Outgoing mail: every message is written to an outbox first and delivered by a background
//! worker, so a slow or broken SMTP server never fails, slows or blocks a request.
//!
//! - [`MailOutbox`]: the queue (`cloud_mail_outbox` in Postgres, claimed with
//!   `FOR UPDATE SKIP LOCKED` so several replicas share it; or in memory).
//! - [`Mailer`]: what handlers use: renders a message and enqueues it, then wakes the worker.
//! - [`run_worker`]: claims due messages, sends them with lettre, retries failures with
//!   exponential backoff. Without SMTP configured, messages are logged at info level and marked
//!   sent: with their bodies (and links) in development, so a developer can open a verification
//!   link; without them in production, where a link in a log would be a credential in a log.

pub mod outbox;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cloud_common::server::Shutdown;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use crate::config::SmtpConfig;
pub use outbox::{MailOutbox, MemoryOutbox, PgOutbox, QueuedMail};

/// One message, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

/// First retry after this; doubled per attempt up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// After this many failed attempts a message is parked (kept with its last error).
pub const MAX_ATTEMPTS: i32 = 25;
/// How long a claimed message stays invisible to other workers while it is being sent.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_secs(2);
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Delay before attempt `attempts + 1` after `attempts` failures (1 → 2 s, 2 → 4 s, …).
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    BASE_BACKOFF
        .checked_mul(1u32 << exp.min(16))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// What handlers hold: the outbox plus a bell that wakes the worker.
#[derive(Clone)]
pub struct Mailer {
    pub outbox: Arc<dyn MailOutbox>,
    wake: Arc<Notify>,
}

impl Mailer {
    pub fn new(outbox: Arc<dyn MailOutbox>) -> Self {
        Self {
            outbox,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues `mail` for delivery. Failing to queue is logged, never returned: the caller's
    /// answer must not depend on mail.
    pub async fn send(&self, mail: Mail) {
        match self.outbox.enqueue(&mail).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => {
                tracing::error!(error = %e, subject = %mail.subject, "Could not queue a mail.")
            }
        }
    }
}

/// Starts the delivery worker; it stops when `shutdown` triggers.
pub fn spawn_worker(
    mailer: Mailer,
    smtp: Option<SmtpConfig>,
    log_bodies: bool,
    backlog: Gauge,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_worker(mailer, smtp, log_bodies, backlog, shutdown))
}

enum Transport {
    /// No SMTP: each mail is logged; its body only when `bodies` (development).
    Log {
        bodies: bool,
    },
    /// Settings that cannot work (bad host): every attempt fails and is retried, so a fixed
    /// configuration still delivers the queue.
    Broken(String),
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>, String),
}

fn transport(smtp: Option<&SmtpConfig>, log_bodies: bool) -> Transport {
    let Some(cfg) = smtp else {
        if log_bodies {
            tracing::info!("SMTP_HOST is not set: mails (and their links) are logged, not sent.");
        } else {
            tracing::warn!(
                "SMTP_HOST is not set: mails are dropped (only recipients and subjects are logged)."
            );
        }
        return Transport::Log { bodies: log_bodies };
    };
    let builder = if cfg.implicit_tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
    } else if is_local(&cfg.host) {
        Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &cfg.host,
        ))
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
    };
    let mut builder = match builder {
        Ok(b) => b.port(cfg.port).timeout(Some(SEND_TIMEOUT)),
        Err(e) => {
            tracing::error!(error = %e, "SMTP settings rejected; mails stay queued.");
            return Transport::Broken(format!("SMTP settings rejected: {e}"));
        }
    };
    if let (Some(user), Some(pass)) = (&cfg.user, &cfg.pass) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
    }
    Transport::Smtp(Box::new(builder.build()), cfg.from.clone())
}

/// A development relay on this machine speaks plain SMTP (no STARTTLS offered); any other host
/// must offer STARTTLS (or use implicit TLS with `SMTP_SECURE=true`).
fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

async fn deliver(t: &Transport, mail: &Mail) -> Result<(), String> {
    match t {
        Transport::Log { bodies: true } => {
            tracing::info!(
                to = %mail.recipient,
                subject = %mail.subject,
                body = %mail.text_body,
                "Mail (SMTP not configured; logged instead of sent)."
            );
            Ok(())
        }
        Transport::Log { bodies: false } => {
            tracing::warn!(
                to = %mail.recipient,
                subject = %mail.subject,
                "Mail not sent: SMTP is not configured."
            );
            Ok(())
        }
        Transport::Broken(e) => Err(e.clone()),
        Transport::Smtp(smtp, from) => {
            let from: Mailbox = from
                .parse()
                .map_err(|e| format!("SMTP_FROM is not a valid mailbox: {e}"))?;
            let to: Mailbox = mail
                .recipient
                .parse()
                .map_err(|e| format!("invalid recipient: {e}"))?;
            let message = Message::builder()
                .from(from)
                .to(to)
                .subject(mail.subject.clone())
                .multipart(MultiPart::alternative_plain_html(
                    mail.text_body.clone(),
                    mail.html_body.clone(),
                ))
                .map_err(|e| format!("building the message: {e}"))?;
            match tokio::time::timeout(SEND_TIMEOUT, smtp.send(message)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".into()),
            }
        }
    }
}

/// Delivers due messages until `shutdown`.
pub async fn run_worker(
    mailer: Mailer,
    smtp: Option<SmtpConfig>,
    log_bodies: bool,
    backlog: Gauge,
    shutdown: Shutdown,
) {
    let transport = transport(smtp.as_ref(), log_bodies);
    loop {
        if shutdown.is_triggered() {
            break;
        }
        match mailer.outbox.backlog().await {
            Ok(n) => {
                backlog.set(n);
            }
            Err(e) => tracing::debug!(error = %e, "Mail outbox backlog unavailable."),
        }
        let claimed = match mailer.outbox.claim_due(Utc::now(), 20, CLAIM_LEASE).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Mail outbox unavailable; retrying.");
                Vec::new()
            }
        };
        let busy = !claimed.is_empty();
        for item in claimed {
            match deliver(&transport, &item.mail).await {
                Ok(()) => {
                    if let Err(e) = mailer.outbox.mark_sent(item.id, Utc::now()).await {
                        tracing::warn!(error = %e, id = item.id, "Could not mark a mail sent.");
                    } else {
                        tracing::info!(id = item.id, subject = %item.mail.subject, "Mail delivered.");
                    }
                }
                Err(error) => {
                    let parked = item.attempts >= MAX_ATTEMPTS;
                    let delay = if parked {
                        Duration::from_secs(100 * 365 * 24 * 3600)
                    } else {
                        backoff(item.attempts)
                    };
                    let next = Utc::now()
                        + chrono::Duration::from_std(delay)
                            .unwrap_or(chrono::Duration::days(36500));
                    tracing::warn!(
                        id = item.id,
                        attempts = item.attempts,
                        retry_in_seconds = delay.as_secs(),
                        parked,
                        %error,
                        "Mail delivery failed; it stays in the outbox."
                    );
                    if let Err(e) = mailer.outbox.mark_failed(item.id, &error, next).await {
                        tracing::warn!(error = %e, id = item.id, "Could not record a mail failure.");
                    }
                }
            }
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = mailer.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    tracing::debug!("Mail worker stopped.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
        assert_eq!(backoff(0), Duration::from_secs(2));
    }
}
