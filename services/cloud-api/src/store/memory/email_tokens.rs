//! One-time email verification and password reset tokens.

use super::*;

#[async_trait]
impl EmailTokenStore for MemoryStore {
    async fn insert_email_token(
        &self,
        kind: EmailTokenKind,
        hash: &str,
        user: &UserId,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.with(|t| {
            t.email_tokens
                .push((kind, hash.to_owned(), user.clone(), expires_at))
        })
    }

    async fn verify_email_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        self.with(|t| {
            let pos = t
                .email_tokens
                .iter()
                .position(|(k, h, _, _)| *k == EmailTokenKind::Verification && h == hash)?;
            let (_, _, user, expires_at) = t.email_tokens.remove(pos);
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
        now: DateTime<Utc>,
    ) -> StoreResult<Option<UserId>> {
        self.with(|t| {
            let (_, _, user, expires_at) = t
                .email_tokens
                .iter()
                .find(|(k, h, _, _)| *k == EmailTokenKind::PasswordReset && h == hash)
                .cloned()?;
            if expires_at <= now {
                t.email_tokens.retain(|(_, h, _, _)| h != hash);
                return None;
            }
            t.email_tokens
                .retain(|(k, _, u, _)| !(*k == EmailTokenKind::PasswordReset && *u == user));
            let u = t.users.get_mut(&user)?;
            u.password_hash = Some(password_hash.to_owned());
            t.sessions.update_user(&user, |s| {
                s.revoked_at.get_or_insert(now);
            });
            Some(user)
        })
    }

    async fn purge_email_tokens(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.with(|t| {
            let total = t.email_tokens.len();
            t.email_tokens
                .retain(|(_, _, _, expires_at)| *expires_at >= before);
            (total - t.email_tokens.len()) as u64
        })
    }
}
