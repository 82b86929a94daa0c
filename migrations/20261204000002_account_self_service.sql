-- Account self-service (issue 19): a change of address is confirmed from the NEW address. The
-- pending address travels with its token (stored as SHA-256 only, single use, expiring), so the
-- account keeps its current, verified address until the link is followed. One pending change a
-- user: asking again replaces the earlier link.
CREATE TABLE cloud_email_change_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    new_email  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_email_change_tokens_user_idx ON cloud_email_change_tokens (user_id);
CREATE INDEX cloud_email_change_tokens_expiry_idx ON cloud_email_change_tokens (expires_at);
