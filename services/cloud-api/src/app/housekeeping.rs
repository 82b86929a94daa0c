//! Housekeeping: rows that are dead for good are deleted on a schedule (the first system kept
//! them forever): sessions whose access and refresh tokens both expired, expired authorization
//! codes, device logins, WebAuthn ceremonies and email tokens, and mails delivered more than [`SENT_MAIL_RETENTION_DAYS`] ago.
//! `chatons_housekeeping_purged_total{kind}` counts what was removed.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::AppState;
use crate::domain::Timestamp;
use crate::domain::now;

/// Delivered mails are kept this long (to answer "did it go out?"), then deleted.
pub const SENT_MAIL_RETENTION_DAYS: i64 = 7;

/// How many rows of each kind one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub authorization_codes: u64,
    pub device_grants: u64,
    pub webauthn_ceremonies: u64,
    pub email_tokens: u64,
    pub sent_mails: u64,
}

/// One pass at `now`. A failing kind is logged and skipped; the others still run.
pub async fn purge_once(state: &AppState, now: Timestamp) -> Purged {
    fn report<E: std::fmt::Display>(kind: &str, r: Result<u64, E>) -> u64 {
        r.unwrap_or_else(|e| {
            tracing::warn!(kind, error = %e, "Housekeeping failed for one kind of row.");
            0
        })
    }
    let sent_before = now - chrono::Duration::days(SENT_MAIL_RETENTION_DAYS);
    Purged {
        sessions: report("sessions", state.store.purge_sessions(now).await),
        authorization_codes: report(
            "authorization_codes",
            state.oidc.codes.purge_expired(now).await,
        ),
        device_grants: report("device_grants", state.oidc.devices.purge_expired(now).await),
        webauthn_ceremonies: report(
            "webauthn_ceremonies",
            state.factors.purge_ceremonies(now).await,
        ),
        email_tokens: report("email_tokens", state.store.purge_email_tokens(now).await),
        sent_mails: report(
            "sent_mails",
            state.mailer.outbox.purge_sent(sent_before).await,
        ),
    }
}

/// Runs [`purge_once`] every `interval` until shutdown, counting into the metric.
pub fn spawn(state: AppState, interval: Duration) {
    let purged = Family::<Vec<(String, String)>, Counter>::default();
    state.metrics.register(
        "housekeeping_purged",
        "Rows deleted by housekeeping, by kind",
        purged.clone(),
    );
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let p = purge_once(&state, now()).await;
            for (kind, n) in [
                ("sessions", p.sessions),
                ("authorization_codes", p.authorization_codes),
                ("device_grants", p.device_grants),
                ("webauthn_ceremonies", p.webauthn_ceremonies),
                ("email_tokens", p.email_tokens),
                ("sent_mails", p.sent_mails),
            ] {
                purged
                    .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
                    .inc_by(n);
            }
            if p != Purged::default() {
                tracing::info!(?p, "Housekeeping removed dead rows.");
            }
        }
    });
}
