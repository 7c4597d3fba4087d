-- Browser sessions of the app home (/app). The cookie holds a random token; only its SHA-256 is kept
-- here, so reading this table does not let anyone sign in. Rows go with their user (ON DELETE CASCADE)
-- and are revoked by deleting them (sign-out); expired rows are removed at the user's next sign-in.
CREATE TABLE ui_sessions (
    token_hash TEXT PRIMARY KEY,
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    method TEXT NOT NULL,          -- link | api_key
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX ui_sessions_by_user ON ui_sessions (uid, expires_at);
