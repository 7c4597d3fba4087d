-- Conversations' full-text index moves out of the store's file into one of its own, written by a
-- thread of its own (sqlite::conversation_index). FTS5 merges its segments inside whichever write
-- fills a level; in the store's file that write held the one write lock for up to half a second while
-- webhook acknowledgements waited behind it. The index is rebuilt from the store when its file is new.
DROP TRIGGER IF EXISTS conversations_fts_insert;
DROP TRIGGER IF EXISTS conversations_fts_update;
DROP TRIGGER IF EXISTS conversations_fts_delete;
DROP TABLE conversations_fts;
DROP TABLE conversation_fts_docs;

-- Conversations whose document the index must rewrite (or drop), in the order they changed. A
-- conversation is always written whole (INSERT OR REPLACE, then its segments), in one transaction:
-- the index reads it after that transaction commits.
CREATE TABLE conversation_index_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    conversation_id TEXT NOT NULL
);
CREATE TRIGGER conversation_index_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversation_index_queue (uid, conversation_id) VALUES (new.uid, new.id);
END;
CREATE TRIGGER conversation_index_update AFTER UPDATE OF title, overview ON conversations BEGIN
    INSERT INTO conversation_index_queue (uid, conversation_id) VALUES (new.uid, new.id);
END;
CREATE TRIGGER conversation_index_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO conversation_index_queue (uid, conversation_id) VALUES (old.uid, old.id);
END;
