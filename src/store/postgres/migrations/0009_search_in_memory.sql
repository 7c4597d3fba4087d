-- Memories are searched in memory (search::index holds each user's words and vectors) instead of
-- through the tsvector column: ranking a question against 100,000 memories scored every matching row
-- there. That index follows each user's changes through a log, numbered by the user's search
-- generation (moved under the same row lock, so a user's numbers follow commit order).

ALTER TABLE memories DROP COLUMN search;

-- One row per memory per change; the newest 10,000 generations of a user are kept (a cache further
-- behind loads the user again).
CREATE TABLE search_changes (
    uid TEXT NOT NULL,
    generation BIGINT NOT NULL,
    memory_id TEXT NOT NULL,
    PRIMARY KEY (uid, generation, memory_id)
);

-- Moves the user's generation and logs which memory changed.
CREATE FUNCTION log_search_change(owner TEXT, memory TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    current BIGINT;
BEGIN
    INSERT INTO search_generations (uid, generation) VALUES (owner, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = search_generations.generation + 1
        RETURNING generation INTO current;
    INSERT INTO search_changes (uid, generation, memory_id) VALUES (owner, current, memory)
        ON CONFLICT DO NOTHING;
    DELETE FROM search_changes WHERE uid = owner AND generation <= current - 10000;
END $$;

CREATE OR REPLACE FUNCTION memories_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO embedding_queue (uid, memory_id, next_attempt_at) VALUES (NEW.uid, NEW.id, 0)
            ON CONFLICT DO NOTHING;
    END IF;
    PERFORM log_search_change(NEW.uid, NEW.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION memories_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        DELETE FROM embedding_queue WHERE uid = NEW.uid AND memory_id = NEW.id;
    ELSIF (NEW.content IS DISTINCT FROM OLD.content OR OLD.deleted_at IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM memory_embeddings e
                          WHERE e.uid = NEW.uid AND e.memory_id = NEW.id AND e.content_hash = NEW.content_hash) THEN
        INSERT INTO embedding_queue (uid, memory_id, next_attempt_at) VALUES (NEW.uid, NEW.id, 0)
            ON CONFLICT DO NOTHING;
    END IF;
    PERFORM log_search_change(NEW.uid, NEW.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION memories_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memory_embeddings WHERE uid = OLD.uid AND memory_id = OLD.id;
    DELETE FROM embedding_queue WHERE uid = OLD.uid AND memory_id = OLD.id;
    IF EXISTS (SELECT 1 FROM users WHERE uid = OLD.uid) THEN
        PERFORM log_search_change(OLD.uid, OLD.id);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION memory_embeddings_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM log_search_change(NEW.uid, NEW.memory_id);
    RETURN NULL;
END $$;

-- The generation itself stays: a user created again under the same uid must never repeat a
-- generation an instance has cached for the old one.
CREATE OR REPLACE FUNCTION users_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_changes WHERE uid = OLD.uid;
    RETURN NULL;
END $$;
