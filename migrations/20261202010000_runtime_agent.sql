-- runtime-headless: the coding agent.
-- runtime_messages: every message of a session's agent runs (user, assistant with its text,
--   thinking and tool calls, tool results) in the desktop's shape, written after each step by
--   the lease owner, so get_messages and the snapshot survive a restart or a takeover.
-- runtime_turns.input_json: the user's input (text, images, attached files) as sent.
-- runtime_turns.merged_into: a steering or follow-up message delivered inside another turn's run.
-- runtime_turns token counts and steps: what the turn cost, summed over its steps.
-- runtime_sessions.preferences: steering/follow-up modes and the auto-compaction/-retry switches.
CREATE TABLE runtime_messages (
    session_id  TEXT NOT NULL REFERENCES runtime_sessions (id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL,
    seq         BIGSERIAL,
    turn_id     BIGINT REFERENCES runtime_turns (id) ON DELETE CASCADE,
    message     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, message_id)
);
CREATE INDEX runtime_messages_order_idx ON runtime_messages (session_id, seq);
CREATE INDEX runtime_messages_turn_idx ON runtime_messages (turn_id, seq);

ALTER TABLE runtime_turns ADD COLUMN input_json JSONB;
ALTER TABLE runtime_turns ADD COLUMN merged_into BIGINT;
ALTER TABLE runtime_turns ADD COLUMN input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runtime_turns ADD COLUMN output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runtime_turns ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;

ALTER TABLE runtime_sessions ADD COLUMN preferences JSONB NOT NULL DEFAULT '{}';
