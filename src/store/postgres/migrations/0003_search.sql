-- Search: PostgreSQL's own text search (tsvector + GIN, ranked with ts_rank_cd) over memories and
-- conversations, and sentence embeddings of memories stored as bytes.

-- Content weighs more than tags (weights A and B). Generated, so it can never drift from the row.
ALTER TABLE memories ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', content), 'A') || setweight(to_tsvector('english', tags), 'B')
) STORED;
CREATE INDEX memories_search ON memories USING GIN (search);

-- Conversations: title, overview and the whole transcript as one document. The transcript text is
-- written with the segments, in the same transaction (postgres/ingest.rs).
ALTER TABLE conversations ADD COLUMN transcript TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', overview), 'B')
        || setweight(to_tsvector('english', transcript), 'C')
) STORED;
CREATE INDEX conversations_search ON conversations USING GIN (search);

-- Embeddings: one row per memory, for the model that embedded it. Ready when the row matches the
-- current model, revision and content hash and has a vector; failed when it has an error instead;
-- pending otherwise (it then waits in embedding_queue).
CREATE TABLE memory_embeddings (
    uid TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    model TEXT NOT NULL,
    revision TEXT NOT NULL,
    dim BIGINT NOT NULL,
    content_hash TEXT NOT NULL,     -- of the content the vector was computed from
    vector BYTEA,                   -- dim little-endian f32, unit length; NULL when embedding failed
    error TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (uid, memory_id)
);

-- Memories waiting to be embedded, filled by triggers on every write that may need a new vector. A
-- worker takes a batch by moving next_attempt_at forward by a lease, so instances share the queue.
CREATE TABLE embedding_queue (
    uid TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    PRIMARY KEY (uid, memory_id)
);
CREATE INDEX embedding_queue_due ON embedding_queue (next_attempt_at);

-- Changes per user to what vector search sees; each instance's in-memory cache reloads when it moves.
CREATE TABLE search_generations (
    uid TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);

CREATE FUNCTION bump_search_generation(owner TEXT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO search_generations (uid, generation) VALUES (owner, 1)
        ON CONFLICT (uid) DO UPDATE SET generation = search_generations.generation + 1;
$$;

CREATE FUNCTION memories_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO embedding_queue (uid, memory_id, next_attempt_at) VALUES (NEW.uid, NEW.id, 0)
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER memories_after_insert AFTER INSERT ON memories
    FOR EACH ROW EXECUTE FUNCTION memories_after_insert();

-- An edit, or a restore of a memory whose vector no longer matches its content, queues it; a delete
-- takes it off the queue. Every update moves the user's search generation.
CREATE FUNCTION memories_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        DELETE FROM embedding_queue WHERE uid = NEW.uid AND memory_id = NEW.id;
    ELSIF (NEW.content IS DISTINCT FROM OLD.content OR OLD.deleted_at IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM memory_embeddings e
                          WHERE e.uid = NEW.uid AND e.memory_id = NEW.id AND e.content_hash = NEW.content_hash) THEN
        INSERT INTO embedding_queue (uid, memory_id, next_attempt_at) VALUES (NEW.uid, NEW.id, 0)
            ON CONFLICT DO NOTHING;
    END IF;
    PERFORM bump_search_generation(NEW.uid);
    RETURN NULL;
END $$;
CREATE TRIGGER memories_after_update AFTER UPDATE ON memories
    FOR EACH ROW EXECUTE FUNCTION memories_after_update();

CREATE FUNCTION memories_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM memory_embeddings WHERE uid = OLD.uid AND memory_id = OLD.id;
    DELETE FROM embedding_queue WHERE uid = OLD.uid AND memory_id = OLD.id;
    IF EXISTS (SELECT 1 FROM users WHERE uid = OLD.uid) THEN
        PERFORM bump_search_generation(OLD.uid);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER memories_after_delete AFTER DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION memories_after_delete();

CREATE FUNCTION memory_embeddings_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bump_search_generation(NEW.uid);
    RETURN NULL;
END $$;
CREATE TRIGGER memory_embeddings_after_write AFTER INSERT OR UPDATE ON memory_embeddings
    FOR EACH ROW EXECUTE FUNCTION memory_embeddings_after_write();

CREATE FUNCTION users_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_generations WHERE uid = OLD.uid;
    RETURN NULL;
END $$;
CREATE TRIGGER users_after_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_after_delete();
