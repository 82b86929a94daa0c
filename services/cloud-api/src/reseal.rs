//! `cloud-api reseal-secrets`: the second half of a secrets-key rotation.
//!
//! After `CHATONS_SECRETS_ENCRYPTION_KEY` is replaced (the old key moved to
//! `CHATONS_SECRETS_PREVIOUS_KEYS`), every replica already opens old rows and seals new ones
//! under the new key. This command re-seals the remaining rows under the current key, in
//! batches and without a long transaction, so the previous keys can then be dropped. It is
//! idempotent and safe to run while cloud-api serves: a row edited meanwhile is skipped (its
//! new ciphertext is already under the current key). Provider secrets first, then the users'
//! TOTP secrets (a TOTP secret left under a dropped key would lock its owner out).

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::domain::{ProviderId, UserId};
use crate::mfa::{FactorStore, PgFactors};
use crate::store::Store;
use crate::store::postgres::PgStore;

const BATCH: usize = 100;

/// What one pass did; `Id` names the rows (providers, or users for TOTP secrets).
#[derive(Debug, PartialEq, Eq)]
pub struct ResealReport<Id = ProviderId> {
    pub resealed: usize,
    /// Edited by someone else between read and write; already under the current key.
    pub changed_meanwhile: usize,
    /// Sealed under a key that is not configured, or corrupt: left as they are.
    pub unreadable: Vec<Id>,
}

impl<Id> Default for ResealReport<Id> {
    fn default() -> Self {
        Self {
            resealed: 0,
            changed_meanwhile: 0,
            unreadable: Vec::new(),
        }
    }
}

/// Re-seals every provider secret not under `secrets`' current key.
pub async fn reseal_all(
    store: &dyn Store,
    secrets: &SecretBox,
    mut progress: impl FnMut(&ResealReport),
) -> anyhow::Result<ResealReport> {
    let mut report = ResealReport::default();
    let mut after: Option<ProviderId> = None;
    loop {
        let batch = store
            .providers_sealed_with_other_key(secrets.key_id(), after.as_ref(), BATCH)
            .await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = Some(last.id.clone());
        for provider in &batch {
            let Some(sealed) = &provider.secret else {
                continue;
            };
            let plain = match secrets.open(sealed, provider.id.as_str()) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::warn!(provider = %provider.id.as_str(), error = %e, "Cannot re-seal this provider secret.");
                    report.unreadable.push(provider.id.clone());
                    continue;
                }
            };
            let resealed = secrets.seal(&plain, provider.id.as_str())?;
            if store
                .reseal_provider_secret(&provider.id, &sealed.nonce, &resealed)
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        progress(&report);
    }
    Ok(report)
}

/// Re-seals every TOTP secret not under `secrets`' current key (bound to its user, like
/// enrolment seals it).
pub async fn reseal_totp_secrets(
    factors: &dyn FactorStore,
    secrets: &SecretBox,
    mut progress: impl FnMut(&ResealReport<UserId>),
) -> anyhow::Result<ResealReport<UserId>> {
    let mut report = ResealReport::default();
    let mut after: Option<UserId> = None;
    loop {
        let batch = factors
            .totp_sealed_with_other_key(secrets.key_id(), after.as_ref(), BATCH)
            .await?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        after = Some(last.clone());
        for (user, sealed) in &batch {
            let bound_to = format!("totp:{user}");
            let plain = match secrets.open(sealed, &bound_to) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "Cannot re-seal this TOTP secret.");
                    report.unreadable.push(user.clone());
                    continue;
                }
            };
            let resealed = secrets.seal(&plain, &bound_to)?;
            if factors.reseal_totp(user, &sealed.nonce, &resealed).await? {
                report.resealed += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        progress(&report);
    }
    Ok(report)
}

/// The command: Postgres only (the in-memory store lives and dies with one process).
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let url = config
        .database_url
        .as_ref()
        .context("DATABASE_URL is required for `reseal-secrets`")?;
    if config.secrets_key.is_none() {
        anyhow::bail!("CHATONS_SECRETS_ENCRYPTION_KEY is required for `reseal-secrets`");
    }
    let secrets = crate::state::secret_box(config)?;
    let pool = cloud_common::db::lazy_pool(url.expose(), 2).context("DATABASE_URL")?;
    let store: Arc<dyn Store> = Arc::new(PgStore::new(pool.clone()));
    println!("re-sealing provider secrets under key {}", secrets.key_id());
    let report = reseal_all(store.as_ref(), &secrets, |r| {
        println!("  {} re-sealed so far", r.resealed);
    })
    .await;
    println!("re-sealing TOTP secrets");
    let totp = match &report {
        Ok(_) => Some(
            reseal_totp_secrets(&PgFactors(pool.clone()), &secrets, |r| {
                println!("  {} re-sealed so far", r.resealed);
            })
            .await,
        ),
        Err(_) => None,
    };
    pool.close().await;
    let report = report?;
    if let Some(totp) = totp {
        let totp = totp?;
        println!(
            "TOTP secrets: {} re-sealed, {} changed meanwhile, {} unreadable",
            totp.resealed,
            totp.changed_meanwhile,
            totp.unreadable.len()
        );
        if !totp.unreadable.is_empty() {
            let ids: Vec<&str> = totp.unreadable.iter().map(|u| u.as_str()).collect();
            anyhow::bail!(
                "{} TOTP secret(s) are sealed under a key that is neither current nor in \
                 CHATONS_SECRETS_PREVIOUS_KEYS, or are corrupt (users: {})",
                ids.len(),
                ids.join(", ")
            );
        }
    }
    println!(
        "done: {} re-sealed, {} edited meanwhile (already current), {} unreadable",
        report.resealed,
        report.changed_meanwhile,
        report.unreadable.len()
    );
    if !report.unreadable.is_empty() {
        let ids: Vec<&str> = report.unreadable.iter().map(|p| p.as_str()).collect();
        anyhow::bail!(
            "{} provider secret(s) are sealed under a key that is neither current nor in \
             CHATONS_SECRETS_PREVIOUS_KEYS, or are corrupt: {}",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(())
}
