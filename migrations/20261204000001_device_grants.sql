-- RFC 8628 device authorization grants (issue 19). Both codes are stored as SHA-256 hashes
-- only: the device code is a bearer secret, and the user code, short enough to type, is only
-- ever looked up by its hash (rate limited), never listed.
CREATE TABLE cloud_oidc_device_grants (
    device_code_hash TEXT PRIMARY KEY,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    -- Seconds a client must wait between polls; raised by 5 on every `slow_down`.
    interval_secs    INTEGER NOT NULL CHECK (interval_secs BETWEEN 1 AND 60),
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'approved', 'denied', 'consumed')),
    -- Who approved or denied, and when they last authenticated (the id_token's auth_time).
    user_id          TEXT REFERENCES cloud_users (id) ON DELETE CASCADE,
    auth_time        TIMESTAMPTZ,
    last_polled_at   TIMESTAMPTZ,
    expires_at       TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((state = 'pending') = (user_id IS NULL))
);
CREATE INDEX cloud_oidc_device_grants_expiry_idx ON cloud_oidc_device_grants (expires_at);
