-- FTS5 merges its index segments inside whichever write fills a level, stalling every write queued
-- behind it for tens of milliseconds. The writer merges instead when it is idle (small incremental
-- merges, see schema::MAINTENANCE).
INSERT INTO memories_fts (memories_fts, rank) VALUES ('automerge', 0);
INSERT INTO conversations_fts (conversations_fts, rank) VALUES ('automerge', 0);
