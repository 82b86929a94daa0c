-- Chatons Cloud schema. Table names follow the first system where a table plays the same part,
-- so operators recognise them; everything it stored in plaintext (tokens, secrets) is stored
-- here as a SHA-256 hash (tokens) or AES-256-GCM ciphertext (secrets that must be read back).

-- Plans --------------------------------------------------------------------------------------
CREATE TABLE cloud_subscription_plans (
    id                      TEXT PRIMARY KEY,
    label                   TEXT NOT NULL,
    parallel_sessions_limit INTEGER NOT NULL CHECK (parallel_sessions_limit >= 0),
    is_default              BOOLEAN NOT NULL DEFAULT false,
    is_hidden               BOOLEAN NOT NULL DEFAULT false,
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- At most one default plan.
CREATE UNIQUE INDEX cloud_subscription_plans_default_uidx ON cloud_subscription_plans (is_default) WHERE is_default;

INSERT INTO cloud_subscription_plans (id, label, parallel_sessions_limit, is_default) VALUES
    ('plus', 'Plus', 3, true),
    ('pro', 'Pro', 10, false),
    ('max', 'Max', 30, false);

-- Users --------------------------------------------------------------------------------------
CREATE TABLE cloud_users (
    id                       TEXT PRIMARY KEY,
    email                    TEXT NOT NULL,
    display_name             TEXT NOT NULL,
    is_admin                 BOOLEAN NOT NULL DEFAULT false,
    subscription_plan        TEXT REFERENCES cloud_subscription_plans (id),
    password_hash            TEXT,
    email_verified_at        TIMESTAMPTZ,
    complimentary_plan_id    TEXT REFERENCES cloud_subscription_plans (id),
    complimentary_granted_at TIMESTAMPTZ,
    complimentary_expires_at TIMESTAMPTZ,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cloud_users_email_uidx ON cloud_users (lower(email));
CREATE INDEX cloud_users_created_at_idx ON cloud_users (created_at, id);

-- Organizations ------------------------------------------------------------------------------
CREATE TABLE cloud_organizations (
    id            TEXT PRIMARY KEY,
    owner_user_id TEXT REFERENCES cloud_users (id) ON DELETE SET NULL,
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    is_personal   BOOLEAN NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX cloud_organizations_slug_uidx ON cloud_organizations (slug);
CREATE INDEX cloud_organizations_owner_idx ON cloud_organizations (owner_user_id);

CREATE TABLE cloud_organization_memberships (
    organization_id TEXT NOT NULL REFERENCES cloud_organizations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'billing_viewer')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX cloud_organization_memberships_user_idx ON cloud_organization_memberships (user_id);

CREATE TABLE cloud_organization_invites (
    id              TEXT PRIMARY KEY,
    token_hash      TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL REFERENCES cloud_organizations (id) ON DELETE CASCADE,
    invited_email   TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member', 'billing_viewer')),
    inviter_user_id TEXT REFERENCES cloud_users (id) ON DELETE SET NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    accepted_at     TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_organization_invites_org_idx ON cloud_organization_invites (organization_id, created_at);

-- Sessions and tokens ------------------------------------------------------------------------
-- One row per issued access/refresh pair. A refresh rotates: the old row keeps its refresh hash
-- with rotated_at set, so presenting it again is detected and revokes the whole family.
CREATE TABLE cloud_sessions (
    id                     TEXT PRIMARY KEY,
    family_id              TEXT NOT NULL,
    user_id                TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    client_id              TEXT NOT NULL,
    scope                  TEXT NOT NULL DEFAULT '',
    access_token_hash      TEXT NOT NULL UNIQUE,
    refresh_token_hash     TEXT UNIQUE,
    active_organization_id TEXT REFERENCES cloud_organizations (id) ON DELETE SET NULL,
    auth_time              TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at             TIMESTAMPTZ NOT NULL,
    refresh_expires_at     TIMESTAMPTZ,
    rotated_at             TIMESTAMPTZ,
    revoked_at             TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_sessions_user_idx ON cloud_sessions (user_id, created_at DESC);
CREATE INDEX cloud_sessions_family_idx ON cloud_sessions (family_id);
CREATE INDEX cloud_sessions_expiry_idx ON cloud_sessions (expires_at);

CREATE TABLE cloud_oidc_authorization_codes (
    code_hash             TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    user_id               TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    scope                 TEXT NOT NULL,
    nonce                 TEXT,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL CHECK (code_challenge_method = 'S256'),
    auth_time             TIMESTAMPTZ NOT NULL,
    -- The session family the code was exchanged for, revoked if the code is replayed.
    family_id             TEXT,
    expires_at            TIMESTAMPTZ NOT NULL,
    consumed_at           TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_oidc_authorization_codes_expiry_idx ON cloud_oidc_authorization_codes (expires_at);

CREATE TABLE cloud_email_verification_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_email_verification_tokens_user_idx ON cloud_email_verification_tokens (user_id);

CREATE TABLE cloud_password_reset_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_password_reset_tokens_user_idx ON cloud_password_reset_tokens (user_id);

-- Outgoing mail, delivered by a background worker with retries so SMTP never blocks a request.
CREATE TABLE cloud_mail_outbox (
    id              BIGSERIAL PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_mail_outbox_pending_idx ON cloud_mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Providers ----------------------------------------------------------------------------------
CREATE TABLE cloud_organization_providers (
    id                     TEXT PRIMARY KEY,
    organization_id        TEXT NOT NULL REFERENCES cloud_organizations (id) ON DELETE CASCADE,
    kind                   TEXT NOT NULL,
    label                  TEXT NOT NULL,
    base_url               TEXT NOT NULL,
    credential_type        TEXT NOT NULL CHECK (credential_type IN ('api_key', 'oauth')),
    models_json            JSONB NOT NULL DEFAULT '[]',
    default_model          TEXT,
    supports_cloud_runtime BOOLEAN NOT NULL DEFAULT true,
    secret_ciphertext      BYTEA,
    secret_nonce           BYTEA,
    secret_key_id          TEXT,
    created_by             TEXT REFERENCES cloud_users (id) ON DELETE SET NULL,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_organization_providers_org_idx ON cloud_organization_providers (organization_id, created_at);

-- Projects, conversations, transcripts -------------------------------------------------------
CREATE TABLE cloud_projects (
    id                          TEXT PRIMARY KEY,
    organization_id             TEXT NOT NULL REFERENCES cloud_organizations (id) ON DELETE CASCADE,
    created_by                  TEXT REFERENCES cloud_users (id) ON DELETE SET NULL,
    name                        TEXT NOT NULL,
    repo_name                   TEXT NOT NULL,
    project_kind                TEXT NOT NULL CHECK (project_kind IN ('repository', 'conversation_only')),
    workspace_capability        TEXT NOT NULL CHECK (workspace_capability IN ('full_tools', 'chat_only')),
    repository_clone_url        TEXT,
    repository_default_branch   TEXT,
    repository_auth_mode        TEXT CHECK (repository_auth_mode IN ('none', 'token')),
    repository_token_ciphertext BYTEA,
    repository_token_nonce      BYTEA,
    repository_token_key_id     TEXT,
    cloud_status                TEXT NOT NULL DEFAULT 'connected',
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_projects_org_idx ON cloud_projects (organization_id, name, id);

CREATE TABLE cloud_conversations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES cloud_organizations (id) ON DELETE CASCADE,
    project_id      TEXT NOT NULL REFERENCES cloud_projects (id) ON DELETE CASCADE,
    created_by      TEXT REFERENCES cloud_users (id) ON DELETE SET NULL,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'done', 'archived')),
    model_provider  TEXT,
    model_id        TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_conversations_project_idx ON cloud_conversations (project_id, title, id);
CREATE INDEX cloud_conversations_org_idx ON cloud_conversations (organization_id, title, id);

-- Append-only transcript: one row per message, never rewritten wholesale.
CREATE TABLE cloud_conversation_messages (
    conversation_id TEXT NOT NULL REFERENCES cloud_conversations (id) ON DELETE CASCADE,
    position        BIGINT NOT NULL,
    id              TEXT NOT NULL,
    role            TEXT NOT NULL,
    timestamp_ms    BIGINT NOT NULL,
    content         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, position),
    UNIQUE (conversation_id, id)
);

-- Memories -----------------------------------------------------------------------------------
CREATE TABLE cloud_memories (
    id                     TEXT PRIMARY KEY,
    organization_id        TEXT NOT NULL REFERENCES cloud_organizations (id) ON DELETE CASCADE,
    user_id                TEXT REFERENCES cloud_users (id) ON DELETE CASCADE,
    project_id             TEXT REFERENCES cloud_projects (id) ON DELETE CASCADE,
    scope                  TEXT NOT NULL CHECK (scope IN ('global', 'project')),
    kind                   TEXT NOT NULL,
    title                  TEXT,
    content                TEXT NOT NULL,
    tags_json              JSONB NOT NULL DEFAULT '[]',
    topic_key              TEXT NOT NULL,
    confidence             DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    schema_version         INTEGER NOT NULL DEFAULT 1,
    reinforced_at          TIMESTAMPTZ,
    last_used_at           TIMESTAMPTZ,
    times_used             INTEGER NOT NULL DEFAULT 0,
    source_conversation_id TEXT REFERENCES cloud_conversations (id) ON DELETE SET NULL,
    origin_type            TEXT NOT NULL DEFAULT 'manual',
    status                 TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded')),
    visibility             TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'shared')),
    fingerprint            TEXT NOT NULL,
    archived               BOOLEAN NOT NULL DEFAULT false,
    source                 TEXT NOT NULL DEFAULT 'manual',
    search_document        TSVECTOR,
    last_seen_at           TIMESTAMPTZ,
    created_by             TEXT REFERENCES cloud_users (id) ON DELETE SET NULL,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cloud_memories_org_idx ON cloud_memories (organization_id, scope, status, archived, updated_at DESC);
CREATE INDEX cloud_memories_user_idx ON cloud_memories (user_id, scope, archived, updated_at DESC);
CREATE INDEX cloud_memories_project_idx ON cloud_memories (project_id, scope, archived, updated_at DESC);
CREATE INDEX cloud_memories_fingerprint_idx ON cloud_memories (fingerprint);
CREATE INDEX cloud_memories_source_conversation_idx ON cloud_memories (source_conversation_id);
CREATE INDEX cloud_memories_search_idx ON cloud_memories USING GIN (search_document);

-- Cloud instances (one per desktop install, registered by its user) ---------------------------
CREATE TABLE cloud_instances (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ
);
CREATE INDEX cloud_instances_user_idx ON cloud_instances (user_id, created_at);

-- Runtime sessions and turns (owned by runtime-headless; cloud-api counts active sessions) ----
CREATE TABLE runtime_sessions (
    id                      TEXT PRIMARY KEY,
    user_id                 TEXT NOT NULL REFERENCES cloud_users (id) ON DELETE CASCADE,
    organization_id         TEXT,
    conversation_id         TEXT NOT NULL,
    project_id              TEXT,
    cloud_instance_id       TEXT NOT NULL,
    owner_id                TEXT,
    lease_expires_at        TIMESTAMPTZ NOT NULL,
    -- Fencing token: bumped on every change of owner; writes carrying an older value are refused.
    lease_version           BIGINT NOT NULL DEFAULT 1,
    status                  TEXT NOT NULL CHECK (status IN ('starting', 'ready', 'streaming', 'stopped', 'error')),
    model_provider          TEXT,
    model_id                TEXT,
    thinking_level          TEXT,
    subscription_plan       TEXT NOT NULL,
    subscription_label      TEXT NOT NULL,
    parallel_sessions_limit INTEGER NOT NULL,
    last_activity_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One live session per user and conversation; stopped/error rows do not count.
CREATE UNIQUE INDEX runtime_sessions_active_conversation_uidx
    ON runtime_sessions (user_id, conversation_id) WHERE status NOT IN ('stopped', 'error');
CREATE INDEX runtime_sessions_user_active_idx ON runtime_sessions (user_id) WHERE status NOT IN ('stopped', 'error');
CREATE INDEX runtime_sessions_owner_idx ON runtime_sessions (owner_id) WHERE status NOT IN ('stopped', 'error');
CREATE INDEX runtime_sessions_lease_idx ON runtime_sessions (lease_expires_at) WHERE status NOT IN ('stopped', 'error');

CREATE TABLE runtime_turns (
    id             BIGSERIAL PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES runtime_sessions (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('prompt', 'follow_up', 'steer')),
    message        TEXT NOT NULL,
    request_id     TEXT,
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'aborted')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    lease_version  BIGINT,
    output_started BOOLEAN NOT NULL DEFAULT false,
    error          TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ
);
CREATE INDEX runtime_turns_queue_idx ON runtime_turns (session_id, id) WHERE status IN ('queued', 'running');
