-- The admin area (issue 19): disabled accounts and the audit log of every admin action.

-- A disabled user signs in nowhere and none of their tokens authenticates; NULL = enabled.
ALTER TABLE cloud_users ADD COLUMN disabled_at TIMESTAMPTZ;

-- Who did what to which record, and when. The actor is kept as an id without a foreign key:
-- the trail must outlive the accounts it names (a deleted admin's actions stay on record).
-- `details` says what changed (never a secret).
CREATE TABLE cloud_audit_log (
    id            BIGSERIAL PRIMARY KEY,
    actor_user_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    target_kind   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    details       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_audit_log_target_idx ON cloud_audit_log (target_kind, target_id, id);
