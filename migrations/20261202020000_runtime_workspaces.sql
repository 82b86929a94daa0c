-- runtime-headless: the durable state of each conversation's workspace, written by the lease
-- owner after every turn so another worker (after a takeover, a restart or idle eviction)
-- restores it before the next turn.
-- kind 'scratch': snapshot = a gzip'ed tar of the workspace.
-- kind 'repository': snapshot = a git bundle of the conversation branch and of a commit of the
--   uncommitted changes (refs/chatons/wip), relative to base_commit; empty when nothing changed.
-- generation: bumped by every save; a worker whose local copy has an older one restores.
CREATE TABLE runtime_workspaces (
    conversation_id TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('scratch', 'repository')),
    generation      BIGINT NOT NULL,
    snapshot        BYTEA NOT NULL,
    size_bytes      BIGINT NOT NULL,
    base_commit     TEXT,
    branch          TEXT,
    saved_by        TEXT,
    turn_id         BIGINT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
