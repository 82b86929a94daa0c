-- runtime-headless: what a lease owner needs to run (and re-run) a queued turn on any replica.
-- context_json: the conversation's transcript when the session was created (prior messages
--   sent to the provider as context; later turns of the session are read from runtime_turns).
-- spec_sealed: the provider to call (kind, base URL, model, secret) sealed with AES-256-GCM
--   under a key derived from the internal service token; never stored in plaintext.
ALTER TABLE runtime_sessions ADD COLUMN context_json JSONB NOT NULL DEFAULT '[]';
ALTER TABLE runtime_turns ADD COLUMN output TEXT NOT NULL DEFAULT '';
ALTER TABLE runtime_turns ADD COLUMN spec_sealed BYTEA;
ALTER TABLE runtime_turns ADD COLUMN abort_requested BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE runtime_turns ADD COLUMN transcript_synced BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX runtime_turns_running_idx ON runtime_turns (claimed_by) WHERE status = 'running';
CREATE INDEX runtime_turns_unsynced_idx ON runtime_turns (session_id)
    WHERE NOT transcript_synced AND status IN ('succeeded', 'failed', 'aborted');
