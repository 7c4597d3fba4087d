-- The inbox file (`<store file>.inbox`): Omi's raw webhook events, recorded before they are
-- acknowledged. Apart from the store so that acknowledgements have a writer, and a write-ahead log, of
-- their own: in the store's file they waited behind the processing of earlier events.

CREATE TABLE inbox_events (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- conversation | transcript | day_summary | audio
    dedupe_key TEXT,                  -- delivery header, else body hash
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

-- Bodies apart from the rows, written once: marking an event done changes its row's size, and SQLite
-- rewrites a row whole when it does.
CREATE TABLE inbox_bodies (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,               -- the raw bytes, so a better parser can reprocess them
    PRIMARY KEY (uid, id)
);
CREATE TRIGGER inbox_bodies_follow_events AFTER DELETE ON inbox_events BEGIN
    DELETE FROM inbox_bodies WHERE uid = old.uid AND id = old.id;
END;
