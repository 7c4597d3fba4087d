//! The conversations' full-text index, in a file of its own (`<store file>.search`) written by a
//! thread of its own.
//!
//! Why apart: FTS5 merges its segments inside whichever write fills a level, and such a merge grows
//! with the index (half a second at a few thousand transcripts). In the store's file that write holds
//! the single write lock, and every webhook acknowledgement waits behind it. Here only this thread
//! waits.
//!
//! How it follows the store: every change to a conversation is queued in the store's
//! `conversation_index_queue` (triggers, migration 10), in the transaction that makes it. This thread
//! reads what is queued past `progress.indexed_seq`, rewrites those documents from the store, and
//! moves `indexed_seq` in the same transaction of the index file; the store's writer later trims the
//! queue up to it ([`trim_queue`]). A crash at any moment loses nothing: what was not committed
//! here is read again. A new (or deleted) index file is rebuilt from the store.

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::watch;

use super::db_error;
use crate::store::StoreError;

/// The schema name the index file is attached under, on every store connection.
pub const SCHEMA: &str = "conversation_index";
/// Queued conversations rewritten per transaction of the index.
const BATCH: i64 = 256;
/// How often the thread looks at the queue when nobody wakes it.
const POLL: Duration = Duration::from_millis(100);
/// How long a search waits for the index to reach the writes before it.
const CATCH_UP: Duration = Duration::from_secs(5);

const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS conversation_docs (
        doc INTEGER PRIMARY KEY,
        uid TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        UNIQUE (uid, conversation_id)
    );
    CREATE VIRTUAL TABLE IF NOT EXISTS conversations_fts USING fts5(
        title, overview, transcript,
        tokenize = 'porter unicode61'
    );
    CREATE TABLE IF NOT EXISTS progress (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_seq INTEGER NOT NULL
    );";

/// Where the index of the store at `store` lives.
pub fn index_path(store: &Path) -> PathBuf {
    let mut path = store.as_os_str().to_owned();
    path.push(".search");
    PathBuf::from(path)
}

/// The running index thread: wake it, or wait until it has reached a point of the queue.
pub struct ConversationIndex {
    path: PathBuf,
    wake: mpsc::Sender<()>,
    indexed: watch::Receiver<i64>,
}

impl ConversationIndex {
    /// Opens (creating, then rebuilding from the store, if needed) the index of the store at `store`
    /// and starts its thread. The store's migrations must have run.
    pub fn open(store: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let path = index_path(store);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(busy_timeout).map_err(db_error)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -2000;",
        )
        .map_err(db_error)?;
        conn.execute_batch(TABLES).map_err(db_error)?;
        // The store is only read here: its writes go through the store's own writer.
        conn.execute("ATTACH DATABASE ?1 AS store", [store.to_string_lossy()])
            .map_err(db_error)?;
        let indexed = indexed_seq(&conn)?;
        let (indexed_tx, indexed_rx) = watch::channel(indexed.unwrap_or(0));
        let (wake, woken) = mpsc::channel();
        std::thread::Builder::new()
            .name("angel-sqlite-conversation-index".into())
            .spawn(move || run(conn, woken, indexed_tx))
            .map_err(|e| StoreError::Internal(format!("cannot start the index thread: {e}")))?;
        Ok(Self {
            path,
            wake,
            indexed: indexed_rx,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last queued change in the index, as its thread committed it.
    pub fn indexed(&self) -> watch::Receiver<i64> {
        self.indexed.clone()
    }

    /// Waits (up to a few seconds) until every change queued up to `seq` is in the index, so that a
    /// search sees the writes that came before it. After that it answers from the index as it is.
    pub async fn caught_up(&self, seq: i64) {
        if *self.indexed.borrow() >= seq {
            return;
        }
        let _ = self.wake.send(());
        let mut indexed = self.indexed.clone();
        let reached = tokio::time::timeout(CATCH_UP, indexed.wait_for(|&done| done >= seq)).await;
        if reached.is_err() {
            tracing::warn!(
                seq,
                "the conversation index is behind; searching what it holds"
            );
        }
    }
}

/// Rows of the queue forgotten at a time: the statement stays short under constant load.
const TRIM_BATCH: i64 = 5_000;

/// Forgets (on the store's writer) queued changes up to `indexed`, which the index holds.
pub fn trim_queue(conn: &Connection, indexed: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM conversation_index_queue
         WHERE seq <= MIN(?1, (SELECT MIN(seq) FROM conversation_index_queue) + ?2)",
    )
    .and_then(|mut s| s.execute(params![indexed, TRIM_BATCH]))
    .map(drop)
    .map_err(db_error)
}

/// The last change queued in the store (0 when none ever was), on a connection where the store is
/// the schema `store`: `main` on the pool's readers, `store` on this index's own connection.
pub fn last_queued(conn: &Connection, store: &str) -> Result<i64, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT COALESCE((SELECT seq FROM {store}.sqlite_sequence
                          WHERE name = 'conversation_index_queue'), 0)"
    ))
    .and_then(|mut s| s.query_row([], |r| r.get(0)))
    .map_err(db_error)
}

fn indexed_seq(conn: &Connection) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT indexed_seq FROM main.progress WHERE id = 1",
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_error)
}

fn run(conn: Connection, woken: mpsc::Receiver<()>, indexed: watch::Sender<i64>) {
    // Indexing (and FTS5's merges) can wait; acknowledgements and searches cannot.
    crate::threads::lower_priority_of_this_thread();
    loop {
        match catch_up(&conn) {
            Ok(seq) => {
                indexed.send_replace(seq);
            }
            Err(error) => tracing::warn!(%error, "conversation index update failed; retrying"),
        }
        match woken.recv_timeout(POLL) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Indexes everything queued so far; returns the last queued change now in the index.
fn catch_up(conn: &Connection) -> Result<i64, StoreError> {
    loop {
        let queued = last_queued(conn, "store")?;
        let done = match indexed_seq(conn)? {
            // A new index file, or a store older than its index (restored from a backup): the queue
            // no longer holds everything, so every conversation is indexed again.
            None => rebuild(conn, queued)?,
            Some(done) if done > queued => rebuild(conn, queued)?,
            Some(done) if done == queued => return Ok(done),
            Some(done) => index_queued(conn, done)?,
        };
        if done >= queued {
            return Ok(done);
        }
    }
}

/// Rewrites every conversation of the store; `queued` is the queue's end read before.
fn rebuild(conn: &Connection, queued: i64) -> Result<i64, StoreError> {
    let tx = conn.unchecked_transaction().map_err(db_error)?;
    tx.execute_batch(
        "DELETE FROM main.conversations_fts;
         DELETE FROM main.conversation_docs;",
    )
    .map_err(db_error)?;
    let conversations: Vec<(String, String)> = tx
        .prepare("SELECT uid, id FROM store.conversations")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(db_error)?;
    for (uid, id) in &conversations {
        let document = read_document(&tx, uid, id)?;
        write_document(&tx, uid, id, document.as_ref())?;
    }
    set_indexed(&tx, queued)?;
    tx.commit().map_err(db_error)?;
    tracing::info!(
        conversations = conversations.len(),
        "conversation index rebuilt from the store"
    );
    Ok(queued)
}

/// Rewrites the conversations queued after `done` (one batch); returns the new `done`.
///
/// Reads the store first, in a transaction of its own, then writes the index in another: a read
/// transaction open on the store pins its write-ahead log, which can then neither be copied past that
/// point nor start over (see `log_restart`). This thread runs at the lowest priority and FTS5's merges
/// are slow, so a write holding the store's snapshot held it for long. A conversation changed between
/// the two is queued again, and rewritten next time.
fn index_queued(conn: &Connection, done: i64) -> Result<i64, StoreError> {
    let read = conn.unchecked_transaction().map_err(db_error)?;
    let queued: Vec<(i64, String, String)> = read
        .prepare_cached(
            "SELECT seq, uid, conversation_id FROM store.conversation_index_queue
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![done, BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()
        })
        .map_err(db_error)?;
    let Some(&(last, _, _)) = queued.last() else {
        // Sequence numbers were taken by transactions that rolled back: nothing to read up to there.
        let queued = last_queued(&read, "store")?;
        read.commit().map_err(db_error)?;
        let write = conn.unchecked_transaction().map_err(db_error)?;
        set_indexed(&write, queued)?;
        write.commit().map_err(db_error)?;
        return Ok(queued);
    };
    let mut seen = std::collections::HashSet::new();
    let mut documents = Vec::new();
    for (_, uid, id) in queued {
        if seen.insert((uid.clone(), id.clone())) {
            let document = read_document(&read, &uid, &id)?;
            documents.push((uid, id, document));
        }
    }
    read.commit().map_err(db_error)?;

    let write = conn.unchecked_transaction().map_err(db_error)?;
    for (uid, id, document) in &documents {
        write_document(&write, uid, id, document.as_ref())?;
    }
    set_indexed(&write, last)?;
    write.commit().map_err(db_error)?;
    Ok(last)
}

fn set_indexed(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO main.progress (id, indexed_seq) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET indexed_seq = excluded.indexed_seq",
    )
    .and_then(|mut s| s.execute([seq]))
    .map(drop)
    .map_err(db_error)
}

/// What the index holds of a conversation.
struct Document {
    title: String,
    overview: String,
    transcript: String,
}

/// A conversation's document (title, overview, whole transcript) as the store holds it now; `None`
/// when the conversation is gone.
fn read_document(conn: &Connection, uid: &str, id: &str) -> Result<Option<Document>, StoreError> {
    conn.prepare_cached(
        "SELECT c.title, c.overview,
                COALESCE((SELECT group_concat(text, ' ') FROM (SELECT text FROM store.transcript_segments s
                          WHERE s.uid = c.uid AND s.conversation_id = c.id ORDER BY position)), '')
         FROM store.conversations c WHERE c.uid = ?1 AND c.id = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![uid, id], |r| {
            Ok(Document {
                title: r.get(0)?,
                overview: r.get(1)?,
                transcript: r.get(2)?,
            })
        })
        .optional()
    })
    .map_err(db_error)
}

/// Replaces a conversation's document in the index; removes it when the conversation is gone.
fn write_document(
    conn: &Connection,
    uid: &str,
    id: &str,
    document: Option<&Document>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM main.conversations_fts WHERE rowid =
             (SELECT doc FROM main.conversation_docs WHERE uid = ?1 AND conversation_id = ?2)",
    )
    .and_then(|mut s| s.execute(params![uid, id]))
    .map_err(db_error)?;
    let Some(document) = document else {
        conn.prepare_cached(
            "DELETE FROM main.conversation_docs WHERE uid = ?1 AND conversation_id = ?2",
        )
        .and_then(|mut s| s.execute(params![uid, id]))
        .map_err(db_error)?;
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT OR IGNORE INTO main.conversation_docs (uid, conversation_id) VALUES (?1, ?2)",
    )
    .and_then(|mut s| s.execute(params![uid, id]))
    .map_err(db_error)?;
    conn.prepare_cached(
        "INSERT INTO main.conversations_fts (rowid, title, overview, transcript)
         SELECT doc, ?3, ?4, ?5 FROM main.conversation_docs WHERE uid = ?1 AND conversation_id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid,
            id,
            document.title,
            document.overview,
            document.transcript
        ])
    })
    .map(drop)
    .map_err(db_error)
}
