//! Migrations for the SQLite backend's two files, embedded in the binary and applied in order on
//! start.

use rusqlite::Connection;

use super::pool::File;
use crate::store::StoreError;

type Migration = (i64, &'static str, &'static str);

const STORE: &[Migration] = &[
    (
        1,
        "foundation",
        include_str!("migrations/0001_foundation.sql"),
    ),
    (
        2,
        "omi_ingest",
        include_str!("migrations/0002_omi_ingest.sql"),
    ),
    (3, "search", include_str!("migrations/0003_search.sql")),
    (
        4,
        "fts_background_merge",
        include_str!("migrations/0004_fts_background_merge.sql"),
    ),
    (
        5,
        "conversation_index_once",
        include_str!("migrations/0005_conversation_index_once.sql"),
    ),
    (
        6,
        "omi_outbox",
        include_str!("migrations/0006_omi_outbox.sql"),
    ),
    (
        7,
        "omi_dialect",
        include_str!("migrations/0007_omi_dialect.sql"),
    ),
    (8, "app_home", include_str!("migrations/0008_app_home.sql")),
    (
        9,
        "search_in_memory",
        include_str!("migrations/0009_search_in_memory.sql"),
    ),
    (
        10,
        "conversation_index_apart",
        include_str!("migrations/0010_conversation_index_apart.sql"),
    ),
    (
        11,
        "inbox_bodies_apart",
        include_str!("migrations/0011_inbox_bodies_apart.sql"),
    ),
    (
        12,
        "inbox_apart",
        include_str!("migrations/0012_inbox_apart.sql"),
    ),
];

const INBOX: &[Migration] = &[(1, "inbox", include_str!("migrations/inbox/0001_inbox.sql"))];

/// Applies every migration the database has not seen yet, each in its own transaction. Refuses to run
/// against a database migrated by a newer build.
pub fn migrate(conn: &mut Connection, file: File) -> Result<usize, StoreError> {
    let migrations = match file {
        File::Store => STORE,
        File::Inbox => INBOX,
    };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .map_err(super::db_error)?;
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(super::db_error)?;
    let newest = migrations.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::Unavailable(format!(
            "the database is at schema version {current}, newer than this build knows ({newest}); upgrade angel-memory"
        )));
    }
    // Every migration not recorded yet, not only those above the newest recorded: branches that
    // add migrations in parallel may land in any order.
    let recorded: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(super::db_error)?;
    let mut applied = 0;
    for (version, name, sql) in migrations.iter().filter(|m| !recorded.contains(&m.0)) {
        let tx = conn.transaction().map_err(super::db_error)?;
        tx.execute_batch(sql).map_err(super::db_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, crate::domain::Timestamp::now().as_micros()],
        )
        .map_err(super::db_error)?;
        tx.commit().map_err(super::db_error)?;
        applied += 1;
    }
    Ok(applied)
}

/// A database as the build that knew migrations up to `version` left it.
#[cfg(test)]
pub(super) fn migrate_to(conn: &Connection, version: i64) {
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                         applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    for (version, name, sql) in STORE.iter().filter(|m| m.0 <= version) {
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, 0)",
            rusqlite::params![version, name],
        )
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_a_missing_migration_below_the_newest() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, File::Store).unwrap(), STORE.len());
        assert_eq!(migrate(&mut conn, File::Store).unwrap(), 0);
        // As if migration 5 had landed after 6–8 were applied: its trigger still there, unrecorded.
        conn.execute_batch(
            "DELETE FROM schema_migrations WHERE version = 5;
             CREATE TRIGGER transcript_fts_insert AFTER INSERT ON transcript_segments BEGIN SELECT 1; END;
             CREATE TRIGGER transcript_fts_delete AFTER DELETE ON transcript_segments BEGIN SELECT 1; END;",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, File::Store).unwrap(), 1);
        let triggers: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'transcript_fts_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(triggers, 0);
    }

    /// An inbox written before migration 11 keeps every body, now in `inbox_bodies`, which follows
    /// its event when the event is deleted.
    #[test]
    fn inbox_bodies_move_apart_with_their_events() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&conn, 10);
        conn.execute_batch(
            "INSERT INTO users (uid, created_at) VALUES ('u1', 0);
             INSERT INTO inbox_events (uid, id, kind, dedupe_key, body, state, response, received_at)
             VALUES ('u1', 'e1', 'conversation', 'k1', X'7B7D', 'done', '{}', 1),
                    ('u1', 'e2', 'conversation', 'k2', X'5B5D', 'pending', '{}', 2);",
        )
        .unwrap();

        // Migrations 11 and 12 (which marks the done event applied; `inbox::settle` then
        // moves the inbox to its own file, tested there).
        assert_eq!(migrate(&mut conn, File::Store).unwrap(), 2);
        let applied: Vec<String> = conn
            .prepare("SELECT id FROM applied_events")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(applied, ["e1"], "only the done event was applied");
        let bodies = |conn: &Connection| -> Vec<(String, Vec<u8>)> {
            conn.prepare("SELECT id, body FROM inbox_bodies ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            bodies(&conn),
            [
                ("e1".to_owned(), b"{}".to_vec()),
                ("e2".to_owned(), b"[]".to_vec())
            ]
        );
        let body_columns: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('inbox_events') WHERE name = 'body'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(body_columns, 0, "the inbox rows no longer carry the body");

        conn.execute("DELETE FROM inbox_events WHERE id = 'e1'", [])
            .unwrap();
        assert_eq!(bodies(&conn), [("e2".to_owned(), b"[]".to_vec())]);
    }
}
