-- Every per-user table is keyed by uid first, so each user's rows sit together and the schema can be
-- partitioned by user later. Times are integer microseconds since the Unix epoch (UTC).

CREATE TABLE users (
    uid TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_keys (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER,
    PRIMARY KEY (uid, id)
) WITHOUT ROWID;
-- Authentication looks a key up by its hash alone, before the user is known.
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (hash);

CREATE TABLE memories (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL,            -- JSON array of normalised tags; memory_tags indexes them
    visibility TEXT NOT NULL,
    source TEXT NOT NULL,
    conversation_id TEXT,
    metadata TEXT NOT NULL,        -- JSON object
    occurred_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER,
    version INTEGER NOT NULL,
    UNIQUE (uid, id)
);
-- One active memory per content: the database itself refuses duplicates, also under races.
CREATE UNIQUE INDEX memories_active_content ON memories (uid, content_hash) WHERE deleted_at IS NULL;
CREATE INDEX memories_by_created ON memories (uid, created_at, id);
CREATE INDEX memories_by_deleted ON memories (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX memories_by_conversation ON memories (uid, conversation_id) WHERE conversation_id IS NOT NULL;

CREATE TABLE memory_tags (
    uid TEXT NOT NULL,
    tag TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    PRIMARY KEY (uid, tag, memory_id)
) WITHOUT ROWID;
CREATE INDEX memory_tags_by_memory ON memory_tags (uid, memory_id);

CREATE TABLE memory_versions (
    uid TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL,
    visibility TEXT NOT NULL,
    conversation_id TEXT,
    metadata TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (uid, memory_id, version)
);

-- The audit trail never holds content: purge removes content everywhere and keeps these rows.
CREATE TABLE audit_events (
    uid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    memory_id TEXT,
    actor TEXT NOT NULL,
    request_id TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (uid, seq)
);

CREATE TABLE idempotency_keys (
    uid TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,           -- in_flight | completed
    status INTEGER,
    content_type TEXT,
    location TEXT,
    body BLOB,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (uid, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
