//! The inbox file (`<store file>.inbox`): every Omi event as it arrived, recorded before it is
//! acknowledged, then processed by the inbox worker.
//!
//! Why a file of its own: SQLite has one writer per file, and the store's writer also applies what
//! every event derives (conversations, memories, tasks), several milliseconds per group under load.
//! Acknowledgements waited behind that work, and its write-ahead log, which never restarts while
//! writes go on; here they wait only for each other.
//!
//! How an event is processed exactly once across two files: its effects commit in the store together
//! with its mark in `applied_events` (`ingest::apply_event`), and only then is it marked done here. A
//! crash between the two leaves it pending; the worker takes it again, the store finds the mark, and
//! it is marked done without being applied twice.

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{db_error, stored};
use crate::domain::{Cursor, Timestamp, Uid};
use crate::store::{
    DueEvent, EventKind, InboxEntry, InboxState, Ingested, NewInboxEvent, Page, PageRequest,
    StoreError,
};

/// Where the inbox of the store at `store` lives.
pub fn path(store: &Path) -> PathBuf {
    let mut path = store.as_os_str().to_owned();
    path.push(".inbox");
    PathBuf::from(path)
}

/// The earlier copy of an event, answered as the first time.
pub fn find_repeat(
    conn: &Connection,
    uid: &Uid,
    kind: EventKind,
    dedupe_key: &str,
) -> Result<Option<Ingested>, StoreError> {
    let earlier: Option<(String, String)> = conn
        .prepare_cached("SELECT id, response FROM inbox_events WHERE uid = ?1 AND kind = ?2 AND dedupe_key = ?3")
        .and_then(|mut s| {
            s.query_row(params![uid.as_str(), kind.as_str(), dedupe_key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db_error)?;
    Ok(earlier.map(|(event_id, response)| Ingested::Repeat {
        event_id,
        response: serde_json::from_str(&response).unwrap_or_else(|_| json!({})),
    }))
}

/// Records an event, unless an earlier copy is here (then it answers as that one did). `processed` is
/// the answer to an event already processed (a transcript batch); any other waits for the worker.
pub fn record(
    conn: &Connection,
    uid: &Uid,
    event_id: String,
    event: NewInboxEvent,
    processed: Option<serde_json::Value>,
) -> Result<Ingested, StoreError> {
    if let Some(key) = &event.dedupe_key
        && let Some(repeat) = find_repeat(conn, uid, event.kind, key)?
    {
        return Ok(repeat);
    }
    let now = Timestamp::now().as_micros();
    let done = processed.is_some();
    let response = processed.unwrap_or_else(|| json!({}));
    conn.prepare_cached(
        "INSERT INTO inbox_events (uid, id, kind, dedupe_key, state, attempts, next_attempt_at, response,
                                   received_at, processed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        let state = if done { InboxState::Done } else { InboxState::Pending };
        s.execute(params![
            uid.as_str(),
            event_id,
            event.kind.as_str(),
            event.dedupe_key,
            state.as_str(),
            (!done).then_some(now),
            response.to_string(),
            now,
            done.then_some(now),
        ])
    })
    .map_err(db_error)?;
    conn.prepare_cached("INSERT INTO inbox_bodies (uid, id, body) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![uid.as_str(), event_id, event.body]))
        .map_err(db_error)?;
    Ok(Ingested::New { event_id, response })
}

/// An event still waiting to be processed: its kind and dedupe key (which the store's mark keeps).
pub fn pending(
    conn: &Connection,
    uid: &Uid,
    id: &str,
) -> Result<Option<(EventKind, Option<String>)>, StoreError> {
    conn.prepare_cached(
        "SELECT kind, dedupe_key FROM inbox_events WHERE uid = ?1 AND id = ?2 AND state = 'pending'",
    )
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), id], |r| {
            let kind: String = r.get(0)?;
            Ok((
                EventKind::parse(&kind).unwrap_or(EventKind::Conversation),
                r.get(1)?,
            ))
        })
        .optional()
    })
    .map_err(db_error)
}

/// Marks a processed event done (its effects have committed in the store).
pub fn mark_done(conn: &Connection, uid: &Uid, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE inbox_events SET state = 'done', processed_at = ?3, attempts = attempts + 1, next_attempt_at = NULL,
                last_error = NULL
         WHERE uid = ?1 AND id = ?2 AND state = 'pending'",
    )
    .and_then(|mut s| s.execute(params![uid.as_str(), id, Timestamp::now().as_micros()]))
    .map_err(db_error)?;
    Ok(())
}

pub fn due(conn: &Connection, now: Timestamp, limit: u32) -> Result<Vec<DueEvent>, StoreError> {
    conn.prepare_cached(
        "SELECT e.uid, e.id, e.kind, e.attempts, e.received_at, b.body
         FROM inbox_events e JOIN inbox_bodies b ON b.uid = e.uid AND b.id = e.id
         WHERE e.state = 'pending' AND e.next_attempt_at <= ?1 ORDER BY e.next_attempt_at LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![now.as_micros(), limit], |r| {
            let uid: String = r.get(0)?;
            let kind: String = r.get(2)?;
            Ok(DueEvent {
                uid: stored(Uid::parse(uid))?,
                id: r.get(1)?,
                kind: EventKind::parse(&kind).unwrap_or(EventKind::Conversation),
                attempts: r.get(3)?,
                received_at: Timestamp::from_micros(r.get(4)?),
                body: r.get(5)?,
            })
        })?
        .collect()
    })
    .map_err(db_error)
}

/// Records a failed attempt: retried at `retry_at`, or dead when there is none.
pub fn fail(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    error: &str,
    retry_at: Option<Timestamp>,
) -> Result<(), StoreError> {
    let state = if retry_at.is_some() {
        "pending"
    } else {
        "dead"
    };
    conn.prepare_cached(
        "UPDATE inbox_events SET state = ?3, attempts = attempts + 1, next_attempt_at = ?4, last_error = ?5
         WHERE uid = ?1 AND id = ?2 AND state = 'pending'",
    )
    .and_then(|mut s| s.execute(params![uid.as_str(), id, state, retry_at.map(Timestamp::as_micros), error]))
    .map_err(db_error)?;
    Ok(())
}

const INBOX_COLUMNS: &str = "id, uid, kind, state, attempts, received_at, next_attempt_at, processed_at, last_error,
    (SELECT LENGTH(b.body) FROM inbox_bodies b WHERE b.uid = inbox_events.uid AND b.id = inbox_events.id)";

fn inbox_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboxEntry> {
    let uid: String = r.get(1)?;
    let kind: String = r.get(2)?;
    let state: String = r.get(3)?;
    Ok(InboxEntry {
        id: r.get(0)?,
        uid: stored(Uid::parse(uid))?,
        kind: EventKind::parse(&kind).unwrap_or(EventKind::Conversation),
        state: InboxState::parse(&state).unwrap_or(InboxState::Pending),
        attempts: r.get(4)?,
        received_at: Timestamp::from_micros(r.get(5)?),
        next_attempt_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
        processed_at: r.get::<_, Option<i64>>(7)?.map(Timestamp::from_micros),
        last_error: r.get(8)?,
        body_bytes: r.get(9)?,
    })
}

/// Oldest first, across users (an operator's view).
pub fn list(
    conn: &Connection,
    state: InboxState,
    page: &PageRequest,
) -> Result<Page<InboxEntry>, StoreError> {
    let (after_at, after_id) = page.position_or(i64::MIN);
    let mut items = conn
        .prepare_cached(&format!(
            "SELECT {INBOX_COLUMNS} FROM inbox_events WHERE state = ?1 AND (received_at, id) > (?2, ?3)
             ORDER BY received_at, id LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(params![state.as_str(), after_at, after_id, i64::from(page.limit) + 1], inbox_entry)?.collect()
        })
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, page.limit, |e: &InboxEntry| {
        Cursor::new(e.received_at.as_micros(), e.id.clone())
    }))
}

pub fn retry(conn: &Connection, id: &str) -> Result<InboxEntry, StoreError> {
    let changed = conn
        .execute(
            "UPDATE inbox_events SET state = 'pending', next_attempt_at = ?2, last_error = NULL
             WHERE id = ?1 AND state = 'dead'",
            params![id, Timestamp::now().as_micros()],
        )
        .map_err(db_error)?;
    let entry = conn
        .query_row(
            &format!("SELECT {INBOX_COLUMNS} FROM inbox_events WHERE id = ?1"),
            [id],
            inbox_entry,
        )
        .optional()
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
    if changed == 0 && entry.state != InboxState::Pending {
        return Err(StoreError::Conflict(format!(
            "the event is {}, not dead",
            entry.state.as_str()
        )));
    }
    Ok(entry)
}

/// Deletes processed events received before the cutoff (the dedupe window ends there).
pub fn forget_done(conn: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM inbox_events WHERE state = 'done' AND received_at < ?1",
        [before.as_micros()],
    )
    .map(|n| n as u64)
    .map_err(db_error)
}

pub fn seen(conn: &Connection, uid: &Uid, kind: EventKind, key: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT 1 FROM inbox_events WHERE uid = ?1 AND kind = ?2 AND dedupe_key = ?3",
    )
    .and_then(|mut s| s.exists(params![uid.as_str(), kind.as_str(), key]))
    .map_err(db_error)
}

/// Forgets a deleted user's events.
pub fn delete_user(conn: &Connection, uid: &Uid) -> Result<(), StoreError> {
    conn.execute("DELETE FROM inbox_events WHERE uid = ?1", [uid.as_str()])
        .map(drop)
        .map_err(db_error)
}

/// Brings the two files into agreement on start, before any event is taken:
/// - an inbox that a build before migration 12 kept in the store's file moves here, and is dropped
///   there. Two transactions, copy first, because a transaction over two files in WAL mode is atomic
///   in each file only: a crash between them copies again (the copy skips what is there).
/// - an event whose effects the store holds but which a crash left pending is marked done, so that
///   whoever reads the inbox next (the worker, `migrate-data`) sees it as it is.
pub fn settle(store: &Path, inbox: &Path, busy_timeout: Duration) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", store.display())))?;
    conn.busy_timeout(busy_timeout).map_err(db_error)?;
    conn.execute(
        "ATTACH DATABASE ?1 AS inbox_file",
        [inbox.to_string_lossy()],
    )
    .map_err(db_error)?;
    let in_store = conn
        .prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'inbox_events'")
        .and_then(|mut s| s.exists([]))
        .map_err(db_error)?;
    if in_store {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             INSERT OR IGNORE INTO inbox_file.inbox_events (uid, id, kind, dedupe_key, state, attempts,
                 next_attempt_at, last_error, response, received_at, processed_at)
             SELECT uid, id, kind, dedupe_key, state, attempts, next_attempt_at, last_error, response,
                    received_at, processed_at
             FROM main.inbox_events;
             INSERT OR IGNORE INTO inbox_file.inbox_bodies (uid, id, body)
             SELECT uid, id, body FROM main.inbox_bodies;
             COMMIT;
             BEGIN IMMEDIATE;
             DROP TABLE main.inbox_events;
             DROP TABLE main.inbox_bodies;
             COMMIT;",
        )
        .map_err(db_error)?;
    }
    conn.execute(
        "UPDATE inbox_file.inbox_events SET state = 'done', next_attempt_at = NULL,
                processed_at = (SELECT a.applied_at FROM main.applied_events a
                                WHERE a.uid = inbox_events.uid AND a.id = inbox_events.id)
         WHERE state = 'pending'
           AND EXISTS (SELECT 1 FROM main.applied_events a WHERE a.uid = inbox_events.uid AND a.id = inbox_events.id)",
        [],
    )
    .map_err(db_error)?;
    conn.execute_batch("DETACH DATABASE inbox_file")
        .map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::super::{PoolOptions, SqliteStore, schema};
    use super::*;
    use crate::store::{Context, EventWork, Store};

    fn uid() -> Uid {
        Uid::parse("u1").unwrap()
    }

    fn open(path: &Path) -> SqliteStore {
        SqliteStore::open(path, &PoolOptions::default()).unwrap()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    async fn ids(store: &SqliteStore, state: InboxState) -> Vec<String> {
        let page = store.inbox(state, PageRequest::first(50)).await.unwrap();
        page.items.into_iter().map(|e| e.id).collect()
    }

    /// An upgrade from a build that kept the inbox in the store's file loses no event, body or
    /// dedupe key, and processes nothing twice.
    #[tokio::test]
    async fn an_inbox_kept_in_the_store_moves_to_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            schema::migrate_to(&conn, 11);
            conn.execute_batch(
                "INSERT INTO users (uid, created_at) VALUES ('u1', 0);
                 INSERT INTO inbox_events (uid, id, kind, dedupe_key, state, attempts, next_attempt_at, response,
                                           received_at, processed_at)
                 VALUES ('u1', 'e1', 'conversation', 'omi-pull:c1', 'done', 1, NULL, '{}', 1, 2),
                        ('u1', 'e2', 'conversation', 'k2', 'pending', 0, 3, '{}', 3, NULL);
                 INSERT INTO inbox_bodies (uid, id, body) VALUES ('u1', 'e1', X'7B7D'), ('u1', 'e2', X'5B5D');",
            )
            .unwrap();
        }
        let store = open(&path);

        let due = store.due_events(Timestamp::now(), 10).await.unwrap();
        let due: Vec<(&str, &[u8])> = due.iter().map(|e| (e.id.as_str(), &e.body[..])).collect();
        assert_eq!(
            due,
            [("e2", &b"[]"[..])],
            "the pending event waits, body and all"
        );
        assert_eq!(ids(&store, InboxState::Done).await, ["e1"]);
        assert!(
            store
                .seen_event(&uid(), EventKind::Conversation, "omi-pull:c1")
                .await
                .unwrap(),
            "dedupe keys came along"
        );
        let conn = Connection::open(&path).unwrap();
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('inbox_events', 'inbox_bodies')"
            ),
            0,
            "the store's file no longer holds the inbox"
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM applied_events"), 1);
        drop(store);

        // Opening again (as after a crash between the copy and the drop) changes nothing.
        let store = open(&path);
        assert_eq!(ids(&store, InboxState::Pending).await, ["e2"]);
        assert_eq!(ids(&store, InboxState::Done).await, ["e1"]);
    }

    /// A crash after the store committed an event's effects, before the inbox marked it done: the
    /// event is marked done on the next start, and a worker that takes it anyway applies nothing.
    #[tokio::test]
    async fn an_event_applied_before_a_crash_is_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = open(&path);
        let event = |key: &str| NewInboxEvent {
            kind: EventKind::DaySummary,
            dedupe_key: Some(key.to_owned()),
            body: b"{}".to_vec(),
        };
        let mut ids_of = Vec::new();
        for key in ["first", "second"] {
            let recorded = store
                .ingest(&uid(), true, event(key), None, &Context::cli())
                .await
                .unwrap();
            let Ingested::New { event_id, .. } = recorded else {
                panic!("a new event: {recorded:?}")
            };
            ids_of.push(event_id);
        }
        // The store's half of processing both, as if the process stopped before the inbox's half.
        for id in &ids_of {
            let (uid, id) = (uid(), id.clone());
            let applied = store
                .pool
                .write(move |c| {
                    crate::store::sqlite::ingest::apply_event(
                        c,
                        &uid,
                        &id,
                        (EventKind::DaySummary, None),
                        EventWork::Nothing,
                        &Context::cli(),
                    )
                })
                .await
                .unwrap();
            assert!(applied);
        }

        // A worker that takes the first anyway: nothing applied, and it is done.
        let applied = store
            .complete_event(&uid(), &ids_of[0], EventWork::Nothing, &Context::cli())
            .await
            .unwrap();
        assert!(!applied, "applied once only");
        assert_eq!(ids(&store, InboxState::Done).await, [ids_of[0].clone()]);
        drop(store);

        // The next start marks the second done.
        let store = open(&path);
        assert!(ids(&store, InboxState::Pending).await.is_empty());
        assert_eq!(ids(&store, InboxState::Done).await.len(), 2);
        assert!(
            store
                .due_events(Timestamp::now(), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
