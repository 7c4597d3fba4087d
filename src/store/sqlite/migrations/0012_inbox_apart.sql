-- The inbox moves to a file of its own (`<store file>.inbox`, sqlite::inbox), with its own writer, so
-- that acknowledging a webhook never waits behind the processing of earlier ones. Its rows are copied
-- there, and these tables dropped, right after this migration (sqlite::inbox::move_out_of_store): a copy
-- between two files cannot be one SQL transaction.
--
-- What stays here is the mark of every event whose effects this file holds, written in the same
-- transaction as those effects: an event is applied at most once, whatever becomes of the inbox's
-- own "done" mark in the other file.
CREATE TABLE applied_events (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedupe_key TEXT,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE INDEX applied_events_by_key ON applied_events (uid, kind, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX applied_events_by_time ON applied_events (applied_at);
INSERT INTO applied_events (uid, id, kind, dedupe_key, applied_at)
SELECT uid, id, kind, dedupe_key, COALESCE(processed_at, received_at) FROM inbox_events WHERE state = 'done';

-- What `omi pull` brought is recognised by its applied event now (`omi-pull:<conversation id>`).
DROP TRIGGER omi_outbox_push_memory;
CREATE TRIGGER omi_outbox_push_memory AFTER INSERT ON memories
WHEN new.deleted_at IS NULL AND json_extract(new.metadata, '$.omi_id') IS NULL
 AND (new.conversation_id IS NULL OR NOT EXISTS (SELECT 1 FROM applied_events i WHERE i.uid = new.uid
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

DROP TRIGGER omi_outbox_notify_conversation;
CREATE TRIGGER omi_outbox_notify_conversation AFTER INSERT ON conversations
WHEN new.discarded = 0 AND new.imported_by_this_app = 0
 AND NOT EXISTS (SELECT 1 FROM applied_events i WHERE i.uid = new.uid AND i.kind = 'conversation'
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
