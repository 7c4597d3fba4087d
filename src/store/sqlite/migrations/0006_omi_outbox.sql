-- Writes to Omi: a durable outbox, filled in the same transaction as the change that causes it (by the
-- triggers below), drained by the outbox worker. Per-user sync settings decide what is pushed, and
-- checkpoints let `omi pull` resume.

CREATE TABLE omi_sync_settings (
    uid TEXT PRIMARY KEY REFERENCES users (uid) ON DELETE CASCADE,
    push_memories INTEGER NOT NULL DEFAULT 0,
    push_tags TEXT NOT NULL DEFAULT '[]',        -- JSON array; empty = any tag (or none)
    push_categories TEXT NOT NULL DEFAULT '[]',  -- JSON array; empty = any category
    push_sources TEXT NOT NULL DEFAULT '[]',     -- JSON array; empty = any source
    notify_events TEXT NOT NULL DEFAULT '[]',    -- JSON array of memory_created, conversation_processed
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE omi_outbox (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- memory | notification
    dedupe_key TEXT NOT NULL,         -- memory:<id>, conversation:<id>: one item per cause
    memory_id TEXT,
    request_id TEXT,                  -- the request that caused it, sent on as X-Request-Id
    payload TEXT NOT NULL,            -- JSON: what to send (memory content is copied: Omi gets what was written)
    state TEXT NOT NULL,              -- pending | done | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    PRIMARY KEY (uid, id)
);
CREATE UNIQUE INDEX omi_outbox_dedupe ON omi_outbox (uid, kind, dedupe_key);
CREATE INDEX omi_outbox_due ON omi_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX omi_outbox_by_state ON omi_outbox (state, created_at, id);
CREATE INDEX omi_outbox_by_id ON omi_outbox (id);
CREATE INDEX omi_outbox_by_memory ON omi_outbox (uid, memory_id) WHERE memory_id IS NOT NULL;

-- A new memory goes to Omi when its user asked for it and it passes their filters. What `omi pull`
-- brought from Omi is never sent back nor announced: its memories carry metadata.omi_id, its
-- conversations arrive as inbox events keyed `omi-pull:<conversation id>`.
CREATE TRIGGER omi_outbox_push_memory AFTER INSERT ON memories
WHEN new.deleted_at IS NULL AND json_extract(new.metadata, '$.omi_id') IS NULL
 AND (new.conversation_id IS NULL OR NOT EXISTS (SELECT 1 FROM inbox_events i WHERE i.uid = new.uid
      AND i.kind = 'conversation' AND i.dedupe_key = 'omi-pull:' || new.conversation_id))
BEGIN
    INSERT OR IGNORE INTO omi_outbox (uid, id, kind, dedupe_key, memory_id, payload, state, next_attempt_at, created_at)
    SELECT new.uid,
           lower(hex(randomblob(16))),
           'memory',
           'memory:' || new.id,
           new.id,
           json_object('content', new.content, 'tags', json(new.tags)),
           'pending',
           new.created_at,
           new.created_at
    FROM omi_sync_settings s
    WHERE s.uid = new.uid AND s.push_memories = 1
      AND (s.push_tags = '[]' OR EXISTS (SELECT 1 FROM json_each(new.tags) t, json_each(s.push_tags) w WHERE t.value = w.value))
      AND (s.push_categories = '[]' OR EXISTS (SELECT 1 FROM json_each(s.push_categories) c WHERE c.value = new.category))
      AND (s.push_sources = '[]' OR EXISTS (SELECT 1 FROM json_each(s.push_sources) c WHERE c.value = new.source));
    INSERT OR IGNORE INTO omi_outbox (uid, id, kind, dedupe_key, memory_id, payload, state, next_attempt_at, created_at)
    SELECT new.uid,
           lower(hex(randomblob(16))),
           'notification',
           'memory:' || new.id,
           new.id,
           json_object('message', 'Remembered: ' || substr(new.content, 1, 200)),
           'pending',
           new.created_at,
           new.created_at
    FROM omi_sync_settings s
    WHERE s.uid = new.uid AND EXISTS (SELECT 1 FROM json_each(s.notify_events) e WHERE e.value = 'memory_created');
END;

-- The memory's audit record (same transaction, written just after it) knows the causing request.
CREATE TRIGGER omi_outbox_request_id AFTER INSERT ON audit_events
WHEN new.action = 'memory.create' AND new.request_id IS NOT NULL
BEGIN
    UPDATE omi_outbox SET request_id = new.request_id
    WHERE uid = new.uid AND memory_id = new.memory_id AND request_id IS NULL;
END;

-- A memory deleted before it was sent is not sent.
CREATE TRIGGER omi_outbox_cancel_deleted AFTER UPDATE OF deleted_at ON memories
WHEN new.deleted_at IS NOT NULL
BEGIN
    DELETE FROM omi_outbox WHERE uid = new.uid AND memory_id = new.id AND state <> 'done';
END;

-- A conversation processed for the first time (re-deliveries replace the row; the dedupe key keeps one).
CREATE TRIGGER omi_outbox_notify_conversation AFTER INSERT ON conversations
WHEN new.discarded = 0 AND new.imported_by_this_app = 0
 AND NOT EXISTS (SELECT 1 FROM inbox_events i WHERE i.uid = new.uid AND i.kind = 'conversation'
                 AND i.dedupe_key = 'omi-pull:' || new.id)
BEGIN
    INSERT OR IGNORE INTO omi_outbox (uid, id, kind, dedupe_key, payload, state, next_attempt_at, created_at)
    SELECT new.uid,
           lower(hex(randomblob(16))),
           'notification',
           'conversation:' || new.id,
           json_object('message', 'Saved: ' || substr(CASE WHEN new.title = '' THEN 'a conversation' ELSE new.title END, 1, 200)),
           'pending',
           new.updated_at,
           new.updated_at
    FROM omi_sync_settings s
    WHERE s.uid = new.uid AND EXISTS (SELECT 1 FROM json_each(s.notify_events) e WHERE e.value = 'conversation_processed');
END;

-- Where `omi pull` stopped, per user and resource (memories, conversations, tasks).
CREATE TABLE omi_pull_checkpoints (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (uid, resource)
) WITHOUT ROWID;

-- What the running server last saw of each Omi upstream (breaker state, last error), so that the CLI,
-- which has no breaker of its own, can show it.
CREATE TABLE omi_upstream_status (
    upstream TEXT PRIMARY KEY,
    status TEXT NOT NULL,             -- JSON
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
