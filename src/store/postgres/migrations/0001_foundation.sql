-- Every per-user table is keyed by uid first (uid leads each primary and unique key), so each user's
-- rows can live on one shard: with Citus, `uid` is the distribution column of every table below.
-- Times are BIGINT microseconds since the Unix epoch (UTC), as in the SQLite backend, so data moves
-- between the two without conversion.

CREATE TABLE users (
    uid TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    -- The last audit sequence number handed out: bumping it locks the user's row, which orders every
    -- write of one user across instances (see postgres/accounts.rs, `lock_user`).
    audit_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT,
    PRIMARY KEY (uid, id),
    UNIQUE (uid, hash)
);
-- Authentication looks a key up by its hash alone, before the user is known (256 random bits: the
-- hash is unique without a constraint that would have to span shards).
CREATE INDEX api_keys_by_hash ON api_keys (hash);

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
    occurred_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    version BIGINT NOT NULL,
    PRIMARY KEY (uid, id)
);
-- One active memory per content: the database itself refuses duplicates, also across instances.
CREATE UNIQUE INDEX memories_active_content ON memories (uid, content_hash) WHERE deleted_at IS NULL;
CREATE INDEX memories_by_created ON memories (uid, created_at, id);
CREATE INDEX memories_by_deleted ON memories (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX memories_by_conversation ON memories (uid, conversation_id) WHERE conversation_id IS NOT NULL;

CREATE TABLE memory_tags (
    uid TEXT NOT NULL,
    tag TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    PRIMARY KEY (uid, tag, memory_id)
);
CREATE INDEX memory_tags_by_memory ON memory_tags (uid, memory_id);

CREATE TABLE memory_versions (
    uid TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    content TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL,
    visibility TEXT NOT NULL,
    conversation_id TEXT,
    metadata TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (uid, memory_id, version)
);

-- The audit trail never holds content: purge removes content everywhere and keeps these rows.
CREATE TABLE audit_events (
    uid TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
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
    body BYTEA,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (uid, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
