-- Webhook bodies move out of the inbox's rows into a table of their own, written once. SQLite rewrites
-- a row whole when an update changes its size, as marking an event done (pending → done, processed_at)
-- does: every processed event wrote its ~10 KB body again, three more overflow pages in the
-- write-ahead log of the one writer that webhook acknowledgements wait for.
CREATE TABLE inbox_bodies (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,               -- the raw bytes, so a better parser can reprocess them
    PRIMARY KEY (uid, id)
);
INSERT INTO inbox_bodies (uid, id, body) SELECT uid, id, body FROM inbox_events;
ALTER TABLE inbox_events DROP COLUMN body;

-- An event's body goes with it (purges of processed events, a user's deletion).
CREATE TRIGGER inbox_bodies_follow_events AFTER DELETE ON inbox_events BEGIN
    DELETE FROM inbox_bodies WHERE uid = old.uid AND id = old.id;
END;
