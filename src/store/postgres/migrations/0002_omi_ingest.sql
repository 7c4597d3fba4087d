-- Omi ingest: the inbox of raw webhook events, and what is derived from them.

CREATE TABLE inbox_events (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- conversation | transcript | day_summary | audio
    dedupe_key TEXT,                  -- delivery header, else body hash
    body BYTEA NOT NULL,              -- the raw bytes, so a better parser can reprocess them
    state TEXT NOT NULL,              -- pending | done | dead
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error TEXT,
    response TEXT NOT NULL,           -- what Omi was answered; repeats get the same
    received_at BIGINT NOT NULL,
    processed_at BIGINT,
    -- A worker's lease: until then no other instance takes the event; after it (the worker died) any may.
    claimed_until BIGINT,
    -- The instance whose worker claimed the event last (after processing: the one that processed it).
    claimed_by TEXT,
    PRIMARY KEY (uid, id)
);
-- Webhook dedupe across instances: a second delivery of the same event cannot be recorded twice.
CREATE UNIQUE INDEX inbox_events_dedupe ON inbox_events (uid, kind, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX inbox_events_due ON inbox_events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX inbox_events_by_state ON inbox_events (state, received_at, id);
CREATE INDEX inbox_events_by_id ON inbox_events (id);

CREATE TABLE conversations (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    overview TEXT NOT NULL,
    emoji TEXT NOT NULL,
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    language TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    discarded BOOLEAN NOT NULL,
    imported_by_this_app BOOLEAN NOT NULL,
    geolocation TEXT,
    folder_name TEXT,
    apps_results TEXT NOT NULL,
    memory_id TEXT,
    deliveries BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE INDEX conversations_by_created ON conversations (uid, created_at, id);

CREATE TABLE transcript_segments (
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    speaker TEXT,
    speaker_id BIGINT,
    speaker_name TEXT,
    is_user BOOLEAN NOT NULL,
    person_id TEXT,
    start_seconds DOUBLE PRECISION NOT NULL,
    end_seconds DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (uid, conversation_id, position)
);

CREATE TABLE conversation_events (
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    start BIGINT,
    duration_minutes DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (uid, conversation_id, position)
);

CREATE TABLE tasks (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    origin TEXT NOT NULL,             -- identity across re-deliveries
    description TEXT NOT NULL,
    completed BOOLEAN NOT NULL,
    due_at BIGINT,
    completed_at BIGINT,
    conversation_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (uid, id),
    UNIQUE (uid, origin)
);
CREATE INDEX tasks_by_created ON tasks (uid, created_at, id);

-- The user's live transcript, one row per segment id.
CREATE TABLE live_segments (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    session_id TEXT,
    text TEXT NOT NULL,
    speaker TEXT,
    speaker_id BIGINT,
    is_user BOOLEAN NOT NULL,
    person_id TEXT,
    start_seconds DOUBLE PRECISION NOT NULL,
    end_seconds DOUBLE PRECISION NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (uid, id)
);

CREATE TABLE day_summaries (
    uid TEXT NOT NULL,
    key TEXT NOT NULL,
    date TEXT NOT NULL,
    summary TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (uid, key)
);

CREATE TABLE recordings (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    sample_rate BIGINT NOT NULL,
    file TEXT NOT NULL,               -- relative to the data directory
    bytes BIGINT NOT NULL,            -- PCM bytes (without the 44-byte WAV header)
    started_at BIGINT NOT NULL,
    last_chunk_at BIGINT NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE INDEX recordings_by_last_chunk ON recordings (uid, last_chunk_at);
