-- Browser sessions of the app home (/app), SQLite's 0008 in PostgreSQL terms. The cookie holds a
-- random token; only its SHA-256 is kept here, so reading this table does not let anyone sign in.
-- Rows go with their user and are revoked by deleting them (sign-out); expired rows are removed at
-- the user's next sign-in.
CREATE TABLE ui_sessions (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    method TEXT NOT NULL,          -- link | api_key
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (uid, token_hash)
);
-- A request finds its session by the token's hash alone, before the user is known (256 random bits:
-- unique without a constraint that would have to span shards, as with api_keys.hash).
CREATE INDEX ui_sessions_by_token ON ui_sessions (token_hash);
CREATE INDEX ui_sessions_by_user ON ui_sessions (uid, expires_at);
