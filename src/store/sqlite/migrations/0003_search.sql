-- Search: full text (FTS5, BM25) over memories and conversations, and sentence embeddings of memories.

-- Memories: an external-content index over the memories table, kept in step by triggers. Soft-deleted
-- rows stay indexed (they can be restored); every search joins back to memories and keeps
-- `deleted_at IS NULL` rows of the caller's uid only.
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, tags,
    content = 'memories', content_rowid = 'rowid',
    tokenize = 'porter unicode61'
);
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, content, tags) VALUES (new.rowid, new.content, new.tags);
END;
CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, tags) VALUES ('delete', old.rowid, old.content, old.tags);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content, tags ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, content, tags) VALUES ('delete', old.rowid, old.content, old.tags);
    INSERT INTO memories_fts (rowid, content, tags) VALUES (new.rowid, new.content, new.tags);
END;
INSERT INTO memories_fts (memories_fts) VALUES ('rebuild');

-- Conversations: title, overview and the whole transcript as one document. Conversations are written
-- with INSERT OR REPLACE (which changes their rowid), so documents get their own stable number.
CREATE TABLE conversation_fts_docs (
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    doc INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (uid, conversation_id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE conversations_fts USING fts5(
    title, overview, transcript,
    tokenize = 'porter unicode61'
);

CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
    DELETE FROM conversations_fts WHERE rowid =
        (SELECT doc FROM conversation_fts_docs WHERE uid = new.uid AND conversation_id = new.id);
    INSERT OR IGNORE INTO conversation_fts_docs (uid, conversation_id, doc)
        VALUES (new.uid, new.id, (SELECT COALESCE(MAX(doc), 0) + 1 FROM conversation_fts_docs));
    INSERT INTO conversations_fts (rowid, title, overview, transcript)
        SELECT d.doc, new.title, new.overview,
               COALESCE((SELECT group_concat(text, ' ') FROM (SELECT text FROM transcript_segments s
                         WHERE s.uid = new.uid AND s.conversation_id = new.id ORDER BY position)), '')
        FROM conversation_fts_docs d WHERE d.uid = new.uid AND d.conversation_id = new.id;
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title, overview ON conversations BEGIN
    DELETE FROM conversations_fts WHERE rowid =
        (SELECT doc FROM conversation_fts_docs WHERE uid = new.uid AND conversation_id = new.id);
    INSERT INTO conversations_fts (rowid, title, overview, transcript)
        SELECT d.doc, new.title, new.overview,
               COALESCE((SELECT group_concat(text, ' ') FROM (SELECT text FROM transcript_segments s
                         WHERE s.uid = new.uid AND s.conversation_id = new.id ORDER BY position)), '')
        FROM conversation_fts_docs d WHERE d.uid = new.uid AND d.conversation_id = new.id;
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
    DELETE FROM conversations_fts WHERE rowid =
        (SELECT doc FROM conversation_fts_docs WHERE uid = old.uid AND conversation_id = old.id);
    DELETE FROM conversation_fts_docs WHERE uid = old.uid AND conversation_id = old.id;
END;

-- A transcript change rewrites its conversation's document (if the conversation exists yet).
CREATE TRIGGER transcript_fts_insert AFTER INSERT ON transcript_segments BEGIN
    DELETE FROM conversations_fts WHERE rowid =
        (SELECT doc FROM conversation_fts_docs WHERE uid = new.uid AND conversation_id = new.conversation_id);
    INSERT INTO conversations_fts (rowid, title, overview, transcript)
        SELECT d.doc, c.title, c.overview,
               COALESCE((SELECT group_concat(text, ' ') FROM (SELECT text FROM transcript_segments s
                         WHERE s.uid = c.uid AND s.conversation_id = c.id ORDER BY position)), '')
        FROM conversations c JOIN conversation_fts_docs d ON d.uid = c.uid AND d.conversation_id = c.id
        WHERE c.uid = new.uid AND c.id = new.conversation_id;
END;
CREATE TRIGGER transcript_fts_delete AFTER DELETE ON transcript_segments BEGIN
    DELETE FROM conversations_fts WHERE rowid =
        (SELECT doc FROM conversation_fts_docs WHERE uid = old.uid AND conversation_id = old.conversation_id);
    INSERT INTO conversations_fts (rowid, title, overview, transcript)
        SELECT d.doc, c.title, c.overview,
               COALESCE((SELECT group_concat(text, ' ') FROM (SELECT text FROM transcript_segments s
                         WHERE s.uid = c.uid AND s.conversation_id = c.id ORDER BY position)), '')
        FROM conversations c JOIN conversation_fts_docs d ON d.uid = c.uid AND d.conversation_id = c.id
        WHERE c.uid = old.uid AND c.id = old.conversation_id;
END;

INSERT INTO conversation_fts_docs (uid, conversation_id, doc)
    SELECT uid, id, ROW_NUMBER() OVER (ORDER BY uid, id) FROM conversations;
INSERT INTO conversations_fts (rowid, title, overview, transcript)
    SELECT d.doc, c.title, c.overview,
           COALESCE((SELECT group_concat(text, ' ') FROM (SELECT text FROM transcript_segments s
                     WHERE s.uid = c.uid AND s.conversation_id = c.id ORDER BY position)), '')
    FROM conversations c JOIN conversation_fts_docs d ON d.uid = c.uid AND d.conversation_id = c.id;

-- Embeddings: one row per memory, for the model that embedded it. A memory's embedding status is
-- ready when its row matches the current model, revision and content hash and has a vector; failed
-- when that row has an error instead; pending otherwise (it then waits in embedding_queue).
CREATE TABLE memory_embeddings (
    uid TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    model TEXT NOT NULL,
    revision TEXT NOT NULL,
    dim INTEGER NOT NULL,
    content_hash TEXT NOT NULL,     -- of the content the vector was computed from
    vector BLOB,                    -- dim little-endian f32, unit length; NULL when embedding failed
    error TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (uid, memory_id)
) WITHOUT ROWID;

-- Memories waiting to be embedded: filled by triggers on every write that may need a new vector.
CREATE TABLE embedding_queue (
    uid TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    PRIMARY KEY (uid, memory_id)
) WITHOUT ROWID;
CREATE INDEX embedding_queue_due ON embedding_queue (next_attempt_at);

-- Changes per user to what vector search sees; its in-memory cache reloads when this moves.
CREATE TABLE search_generations (
    uid TEXT PRIMARY KEY,
    generation INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER embedding_enqueue_insert AFTER INSERT ON memories WHEN new.deleted_at IS NULL BEGIN
    INSERT OR IGNORE INTO embedding_queue (uid, memory_id, next_attempt_at) VALUES (new.uid, new.id, 0);
END;
-- An edit, or a restore of a memory whose vector no longer matches its content.
CREATE TRIGGER embedding_enqueue_update AFTER UPDATE OF content, deleted_at ON memories
WHEN new.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM memory_embeddings e
    WHERE e.uid = new.uid AND e.memory_id = new.id AND e.content_hash = new.content_hash) BEGIN
    INSERT OR IGNORE INTO embedding_queue (uid, memory_id, next_attempt_at) VALUES (new.uid, new.id, 0);
END;
CREATE TRIGGER embedding_dequeue_deleted AFTER UPDATE OF deleted_at ON memories
WHEN new.deleted_at IS NOT NULL BEGIN
    DELETE FROM embedding_queue WHERE uid = new.uid AND memory_id = new.id;
END;
CREATE TRIGGER search_generation_memory_update AFTER UPDATE ON memories BEGIN
    INSERT INTO search_generations (uid, generation) VALUES (new.uid, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER embedding_forget_memory AFTER DELETE ON memories BEGIN
    DELETE FROM memory_embeddings WHERE uid = old.uid AND memory_id = old.id;
    DELETE FROM embedding_queue WHERE uid = old.uid AND memory_id = old.id;
    INSERT INTO search_generations (uid, generation) VALUES (old.uid, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER search_generation_embedding_insert AFTER INSERT ON memory_embeddings BEGIN
    INSERT INTO search_generations (uid, generation) VALUES (new.uid, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER search_generation_embedding_update AFTER UPDATE ON memory_embeddings BEGIN
    INSERT INTO search_generations (uid, generation) VALUES (new.uid, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = generation + 1;
END;
CREATE TRIGGER search_generation_forget_user AFTER DELETE ON users BEGIN
    DELETE FROM search_generations WHERE uid = old.uid;
END;

INSERT INTO embedding_queue (uid, memory_id, next_attempt_at)
    SELECT uid, id, 0 FROM memories WHERE deleted_at IS NULL;
