-- A transcript's segments are written one row at a time, and these triggers rebuilt the whole
-- conversation document for every row: quadratic in the transcript's length, inside the writer's
-- transaction. The store now rebuilds a conversation's document once, after all its segments are
-- written (sqlite::ingest::index_conversation).
DROP TRIGGER transcript_fts_insert;
DROP TRIGGER transcript_fts_delete;
