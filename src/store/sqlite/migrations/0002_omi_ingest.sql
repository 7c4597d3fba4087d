-- Omi ingest: the inbox of raw webhook events, and what is derived from them.

CREATE TABLE inbox_events (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- conversation | transcript | day_summary | audio
    dedupe_key TEXT,                  -- delivery header, else body hash
    body BLOB NOT NULL,               -- the raw bytes, so a better parser can reprocess them
    state TEXT NOT NULL,              -- pending | done | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error TEXT,
    response TEXT NOT NULL,           -- what Omi was answered; repeats get the same
    received_at INTEGER NOT NULL,
    processed_at INTEGER,
    PRIMARY KEY (uid, id)
);
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
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    discarded INTEGER NOT NULL,
    imported_by_this_app INTEGER NOT NULL,
    geolocation TEXT,
    folder_name TEXT,
    apps_results TEXT NOT NULL,
    memory_id TEXT,
    deliveries INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE INDEX conversations_by_created ON conversations (uid, created_at, id);

CREATE TABLE transcript_segments (
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    speaker TEXT,
    speaker_id INTEGER,
    speaker_name TEXT,
    is_user INTEGER NOT NULL,
    person_id TEXT,
    start_seconds REAL NOT NULL,
    end_seconds REAL NOT NULL,
    PRIMARY KEY (uid, conversation_id, position)
);

CREATE TABLE conversation_events (
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    start INTEGER,
    duration_minutes REAL NOT NULL,
    PRIMARY KEY (uid, conversation_id, position)
);

CREATE TABLE tasks (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    origin TEXT NOT NULL,             -- identity across re-deliveries
    description TEXT NOT NULL,
    completed INTEGER NOT NULL,
    due_at INTEGER,
    completed_at INTEGER,
    conversation_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
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
    speaker_id INTEGER,
    is_user INTEGER NOT NULL,
    person_id TEXT,
    start_seconds REAL NOT NULL,
    end_seconds REAL NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (uid, id)
);

CREATE TABLE day_summaries (
    uid TEXT NOT NULL,
    key TEXT NOT NULL,
    date TEXT NOT NULL,
    summary TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (uid, key)
);

CREATE TABLE recordings (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    sample_rate INTEGER NOT NULL,
    file TEXT NOT NULL,               -- relative to the data directory
    bytes INTEGER NOT NULL,           -- PCM bytes (without the 44-byte WAV header)
    started_at INTEGER NOT NULL,
    last_chunk_at INTEGER NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE INDEX recordings_by_last_chunk ON recordings (uid, last_chunk_at);
