//! One-time email verification and password reset tokens.

use super::*;

#[async_trait]
impl EmailTokenStore for MemoryStore {
    async fn insert_email_token(&self, token: &EmailToken) -> StoreResult<()> {
        self.with(|t| t.email_tokens.push(token.clone()))
    }

    async fn verify_email_token(&self, hash: &str, now: Timestamp) -> StoreResult<Option<UserId>> {
        self.with(|t| {
            let pos = t
                .email_tokens
                .iter()
                .position(|e| e.kind == EmailTokenKind::Verification && e.hash == hash)?;
            let EmailToken {
                user, expires_at, ..
            } = t.email_tokens.remove(pos);
            if expires_at <= now {
                return None;
            }
            let u = t.users.get_mut(&user)?;
            u.email_verified_at.get_or_insert(now);
            Some(user)
        })
    }

    async fn reset_password_with_token(
        &self,
        hash: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> StoreResult<Option<UserId>> {
        self.with(|t| {
            let EmailToken {
                user, expires_at, ..
            } = t
                .email_tokens
                .iter()
                .find(|e| e.kind == EmailTokenKind::PasswordReset && e.hash == hash)
                .cloned()?;
            if expires_at <= now {
                t.email_tokens.retain(|e| e.hash != hash);
                return None;
            }
            t.email_tokens
                .retain(|e| !(e.kind == EmailTokenKind::PasswordReset && e.user == user));
            let u = t.users.get_mut(&user)?;
            u.password_hash = Some(password_hash.to_owned());
            t.sessions.update_user(&user, |s| {
                s.revoked_at.get_or_insert(now);
            });
            Some(user)
        })
    }

    async fn purge_email_tokens(&self, before: Timestamp) -> StoreResult<u64> {
        self.with(|t| {
            let total = t.email_tokens.len();
            t.email_tokens.retain(|e| e.expires_at >= before);
            let changes = t.email_changes.len();
            t.email_changes.retain(|c| c.expires_at >= before);
            (total - t.email_tokens.len() + changes - t.email_changes.len()) as u64
        })
    }

    async fn insert_email_change(&self, change: &EmailChange) -> StoreResult<()> {
        self.with(|t| t.insert_email_change(change))
    }

    async fn confirm_email_change(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> StoreResult<EmailChangeOutcome> {
        self.with(|t| t.confirm_email_change(hash, now))
    }
}
