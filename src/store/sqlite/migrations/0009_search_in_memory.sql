-- Memories are searched in memory (search::index holds each user's words and vectors) instead of
-- through FTS5: ranking a question against 100,000 memories scored every matching row there. That
-- index follows each user's changes through a log, numbered by the user's search generation.

DROP TRIGGER memories_fts_insert;
DROP TRIGGER memories_fts_delete;
DROP TRIGGER memories_fts_update;
DROP TABLE memories_fts;

-- One row per memory per change; the newest 10,000 generations of a user are kept (a cache further
-- behind loads the user again).
CREATE TABLE search_changes (
    uid TEXT NOT NULL,
    generation INTEGER NOT NULL,
    memory_id TEXT NOT NULL,
    PRIMARY KEY (uid, generation, memory_id)
) WITHOUT ROWID;

-- Every trigger that moved the generation now also logs which memory changed, through one place:
-- a row inserted into this view moves the user's generation, logs the memory under it and trims the
-- log (SQLite's form of PostgreSQL's log_search_change function). A write of a new memory moves it
-- too (text search sees a memory as soon as it is written).
CREATE VIEW search_change_requests (uid, memory_id) AS SELECT uid, memory_id FROM search_changes;
CREATE TRIGGER search_change_log INSTEAD OF INSERT ON search_change_requests BEGIN
    INSERT INTO search_generations (uid, generation) VALUES (new.uid, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = generation + 1;
    INSERT OR IGNORE INTO search_changes (uid, generation, memory_id)
        SELECT uid, generation, new.memory_id FROM search_generations WHERE uid = new.uid;
    DELETE FROM search_changes WHERE uid = new.uid
        AND generation <= (SELECT generation FROM search_generations WHERE uid = new.uid) - 10000;
END;

DROP TRIGGER search_generation_memory_update;
DROP TRIGGER embedding_forget_memory;
DROP TRIGGER search_generation_embedding_insert;
DROP TRIGGER search_generation_embedding_update;
DROP TRIGGER search_generation_forget_user;

CREATE TRIGGER search_change_memory_insert AFTER INSERT ON memories BEGIN
    INSERT INTO search_change_requests VALUES (new.uid, new.id);
END;
CREATE TRIGGER search_change_memory_update AFTER UPDATE ON memories BEGIN
    INSERT INTO search_change_requests VALUES (new.uid, new.id);
END;
CREATE TRIGGER embedding_forget_memory AFTER DELETE ON memories BEGIN
    DELETE FROM memory_embeddings WHERE uid = old.uid AND memory_id = old.id;
    DELETE FROM embedding_queue WHERE uid = old.uid AND memory_id = old.id;
    INSERT INTO search_change_requests VALUES (old.uid, old.id);
END;
CREATE TRIGGER search_change_embedding_insert AFTER INSERT ON memory_embeddings BEGIN
    INSERT INTO search_change_requests VALUES (new.uid, new.memory_id);
END;
CREATE TRIGGER search_change_embedding_update AFTER UPDATE ON memory_embeddings BEGIN
    INSERT INTO search_change_requests VALUES (new.uid, new.memory_id);
END;
-- A user's memories are deleted before the user (store::sqlite::accounts). The generation itself
-- stays: a user created again under the same uid must never repeat a generation an instance has
-- cached for the old one.
CREATE TRIGGER search_generation_forget_user AFTER DELETE ON users BEGIN
    DELETE FROM search_changes WHERE uid = old.uid;
END;
