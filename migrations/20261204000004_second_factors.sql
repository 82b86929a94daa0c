-- Second factors and passkeys (issue 19), and how each session's user authenticated (OIDC
-- `amr`), carried from the sign-in through codes and device grants to the tokens.
ALTER TABLE cloud_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE cloud_oidc_authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE cloud_oidc_device_grants ADD COLUMN amr TEXT;

-- One TOTP secret per user (RFC 6238), sealed like provider secrets. Unconfirmed until the
-- user typed a code from it; `last_step` is the last time step accepted, so a code works once.
CREATE TABLE cloud_user_totp (
    user_id      TEXT PRIMARY KEY REFERENCES cloud_users (id) ON DELETE CASCADE,
    ciphertext   BYTEA NOT NULL,
    nonce        BYTEA NOT NULL,
    key_id       TEXT NOT NULL,
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Recovery codes, shown once at enrolment: SHA-256 only, each good for one sign-in.
CREATE TABLE cloud_user_recovery_codes (
    user_id   TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

-- WebAuthn credentials (passkeys). `credential` is webauthn-rs's serialized passkey (public key,
-- counter, backup state); the id is the credential id, unique across users.
CREATE TABLE cloud_user_passkeys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    credential   JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);
CREATE INDEX cloud_user_passkeys_user_idx ON cloud_user_passkeys (user_id, created_at);

-- The server's half of a WebAuthn ceremony between its two requests (the challenge and what to
-- check), taken once: a replayed answer finds nothing. `user_id` is the registering user (none
-- for a sign-in). Expired rows are purged by housekeeping.
CREATE TABLE cloud_webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES cloud_users (id) ON DELETE CASCADE,
    state      JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX cloud_webauthn_ceremonies_expiry_idx ON cloud_webauthn_ceremonies (expires_at);
