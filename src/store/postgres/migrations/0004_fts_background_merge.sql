-- SQLite's 0004 turns off FTS5's in-write index merging. PostgreSQL's GIN indexes merge their pending
-- list in autovacuum already; the fast-update pending list is kept small so a flush inside one write
-- stays short (the same concern, in PostgreSQL terms).
ALTER INDEX memories_search SET (gin_pending_list_limit = 512);
ALTER INDEX conversations_search SET (gin_pending_list_limit = 512);
