-- Writes to Omi: a durable outbox, filled in the same transaction as the change that causes it (by the
-- triggers below), drained by the outbox worker. Per-user sync settings decide what is pushed, and
-- checkpoints let `omi pull` resume. Mirrors the SQLite migration 6; JSON lists stay TEXT, as there,
-- so rows move between the backends unchanged.

CREATE TABLE omi_sync_settings (
    uid TEXT PRIMARY KEY REFERENCES users (uid) ON DELETE CASCADE,
    push_memories BOOLEAN NOT NULL DEFAULT FALSE,
    push_tags TEXT NOT NULL DEFAULT '[]',        -- JSON array; empty = any tag (or none)
    push_categories TEXT NOT NULL DEFAULT '[]',  -- JSON array; empty = any category
    push_sources TEXT NOT NULL DEFAULT '[]',     -- JSON array; empty = any source
    notify_events TEXT NOT NULL DEFAULT '[]',    -- JSON array of memory_created, conversation_processed
    updated_at BIGINT NOT NULL
);

CREATE TABLE omi_outbox (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- memory | notification
    dedupe_key TEXT NOT NULL,         -- memory:<id>, conversation:<id>: one item per cause
    memory_id TEXT,
    request_id TEXT,                  -- the request that caused it, sent on as X-Request-Id
    payload TEXT NOT NULL,            -- JSON: what to send (memory content is copied: Omi gets what was written)
    state TEXT NOT NULL,              -- pending | done | dead
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    -- A worker's lease: until then no other instance delivers the item; after it (the worker died) any may.
    claimed_until BIGINT,
    -- The instance whose worker claimed the item last.
    claimed_by TEXT,
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
CREATE FUNCTION omi_outbox_push_memory() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.conversation_id IS NOT NULL AND EXISTS (SELECT 1 FROM inbox_events i WHERE i.uid = NEW.uid
        AND i.kind = 'conversation' AND i.dedupe_key = 'omi-pull:' || NEW.conversation_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO omi_outbox (uid, id, kind, dedupe_key, memory_id, payload, state, next_attempt_at, created_at)
    SELECT NEW.uid,
           replace(gen_random_uuid()::text, '-', ''),
           'memory',
           'memory:' || NEW.id,
           NEW.id,
           jsonb_build_object('content', NEW.content, 'tags', NEW.tags::jsonb)::text,
           'pending',
           NEW.created_at,
           NEW.created_at
    FROM omi_sync_settings s
    WHERE s.uid = NEW.uid AND s.push_memories
      AND (s.push_tags::jsonb = '[]'::jsonb
           OR NEW.tags::jsonb ?| ARRAY(SELECT jsonb_array_elements_text(s.push_tags::jsonb)))
      AND (s.push_categories::jsonb = '[]'::jsonb OR s.push_categories::jsonb ? NEW.category)
      AND (s.push_sources::jsonb = '[]'::jsonb OR s.push_sources::jsonb ? NEW.source)
    ON CONFLICT DO NOTHING;
    INSERT INTO omi_outbox (uid, id, kind, dedupe_key, memory_id, payload, state, next_attempt_at, created_at)
    SELECT NEW.uid,
           replace(gen_random_uuid()::text, '-', ''),
           'notification',
           'memory:' || NEW.id,
           NEW.id,
           jsonb_build_object('message', 'Remembered: ' || substr(NEW.content, 1, 200))::text,
           'pending',
           NEW.created_at,
           NEW.created_at
    FROM omi_sync_settings s
    WHERE s.uid = NEW.uid AND s.notify_events::jsonb ? 'memory_created'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER omi_outbox_push_memory AFTER INSERT ON memories
FOR EACH ROW WHEN (NEW.deleted_at IS NULL AND (NEW.metadata::jsonb ->> 'omi_id') IS NULL)
EXECUTE FUNCTION omi_outbox_push_memory();

-- The memory's audit record (same transaction, written just after it) knows the causing request.
CREATE FUNCTION omi_outbox_request_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE omi_outbox SET request_id = NEW.request_id
    WHERE uid = NEW.uid AND memory_id = NEW.memory_id AND request_id IS NULL;
    RETURN NULL;
END;
$$;
CREATE TRIGGER omi_outbox_request_id AFTER INSERT ON audit_events
FOR EACH ROW WHEN (NEW.action = 'memory.create' AND NEW.request_id IS NOT NULL)
EXECUTE FUNCTION omi_outbox_request_id();

-- A memory deleted before it was sent is not sent.
CREATE FUNCTION omi_outbox_cancel_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM omi_outbox WHERE uid = NEW.uid AND memory_id = NEW.id AND state <> 'done';
    RETURN NULL;
END;
$$;
CREATE TRIGGER omi_outbox_cancel_deleted AFTER UPDATE OF deleted_at ON memories
FOR EACH ROW WHEN (NEW.deleted_at IS NOT NULL)
EXECUTE FUNCTION omi_outbox_cancel_deleted();

-- A conversation processed for the first time. SQLite replaces the row on each re-delivery (firing its
-- insert trigger again); here a re-delivery updates it, always bumping `deliveries`, hence the update
-- trigger on that column. The dedupe key keeps one item either way.
CREATE FUNCTION omi_outbox_notify_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inbox_events i WHERE i.uid = NEW.uid AND i.kind = 'conversation'
               AND i.dedupe_key = 'omi-pull:' || NEW.id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO omi_outbox (uid, id, kind, dedupe_key, payload, state, next_attempt_at, created_at)
    SELECT NEW.uid,
           replace(gen_random_uuid()::text, '-', ''),
           'notification',
           'conversation:' || NEW.id,
           jsonb_build_object('message', 'Saved: ' || substr(CASE WHEN NEW.title = '' THEN 'a conversation' ELSE NEW.title END, 1, 200))::text,
           'pending',
           NEW.updated_at,
           NEW.updated_at
    FROM omi_sync_settings s
    WHERE s.uid = NEW.uid AND s.notify_events::jsonb ? 'conversation_processed'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER omi_outbox_notify_conversation AFTER INSERT OR UPDATE OF deliveries ON conversations
FOR EACH ROW WHEN (NOT NEW.discarded AND NOT NEW.imported_by_this_app)
EXECUTE FUNCTION omi_outbox_notify_conversation();

-- Where `omi pull` stopped, per user and resource (memories, conversations, tasks).
CREATE TABLE omi_pull_checkpoints (
    uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (uid, resource)
);

-- What the running server last saw of each Omi upstream (breaker state, last error), so that the CLI,
-- which has no breaker of its own, can show it.
CREATE TABLE omi_upstream_status (
    upstream TEXT PRIMARY KEY,
    status TEXT NOT NULL,             -- JSON
    updated_at BIGINT NOT NULL
);
