//! Threads that own the SQLite connections.
//!
//! SQLite allows one writer at a time, and a transaction commit is the expensive part of a write.
//! So every write runs on a single writer thread that takes all jobs waiting in its queue, runs each
//! inside its own SAVEPOINT (so one job's failure rolls back only that job) and commits them together
//! in one transaction ("group commit"). Under load this turns hundreds of commits into a few, which
//! is what lets one SQLite file take thousands of writes per second. No crate offers this batching for
//! rusqlite (tokio-rusqlite runs closures on one thread but commits each separately), hence this file.
//! Reads run on a few reader threads, each with its own connection, in parallel with the writer (WAL).

use rusqlite::{Connection, OpenFlags};
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

use super::conversation_index::{self, ConversationIndex};
use super::schema;
use crate::store::StoreError;

/// Most jobs committed in one transaction; bounds how long a single commit holds the write lock.
const MAX_GROUP: usize = 256;
/// The writer maintains the indexes after this long without work…
const MAINTAIN_WHEN_IDLE: Duration = Duration::from_millis(250);
/// …and at least this often when it never runs out of work.
const MAINTAIN_UNDER_LOAD: Duration = Duration::from_secs(5);
/// Background jobs added to each group, after the foreground ones.
const BACKGROUND_PER_GROUP: usize = 2;
/// How often the background thread copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

type Completion = Box<dyn FnOnce(Option<StoreError>) + Send>;
type WriteJob = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Completion + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Durable across process crashes; a power loss may undo the last commits (never corrupts).
    Normal,
    /// Also durable across power loss, at the cost of an fsync per group commit.
    Full,
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub readers: usize,
    pub synchronous: Synchronous,
    pub busy_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            readers: 3,
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

pub struct Pool {
    writer: mpsc::Sender<(Lane, WriteJob)>,
    readers: mpsc::Sender<ReadJob>,
    /// Dropping the pool drops this, which stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    conversation_index: ConversationIndex,
    path: PathBuf,
}

impl Pool {
    /// Opens (creating if needed) the database file, applies migrations, and starts the threads.
    pub fn open(path: &Path, options: &PoolOptions) -> Result<Self, StoreError> {
        let mut writer_conn = open_connection(path, options, Role::Writer)?;
        schema::migrate(&mut writer_conn)?;
        // SQLite would otherwise checkpoint inside whichever commit crosses the threshold, stalling
        // every write waiting behind it; a separate thread does it without blocking the writer.
        writer_conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(super::db_error)?;
        let conversation_index = ConversationIndex::open(path, options.busy_timeout)?;
        let indexed = conversation_index.indexed();
        let (checkpointer, stop) = mpsc::channel::<()>();
        let checkpoint_conn = open_connection(path, options, Role::Checkpoint)?;
        spawn("angel-sqlite-checkpoint", move || {
            checkpoint_loop(checkpoint_conn, stop)
        })?;

        let (writer, writer_rx) = mpsc::channel::<(Lane, WriteJob)>();
        spawn("angel-sqlite-writer", move || {
            writer_loop(writer_conn, writer_rx, indexed)
        })?;

        let (readers, readers_rx) = mpsc::channel::<ReadJob>();
        let readers_rx = Arc::new(Mutex::new(readers_rx));
        for i in 0..options.readers.max(1) {
            let conn = open_connection(path, options, Role::Reader)?;
            attach_conversation_index(&conn, &conversation_index)?;
            let rx = Arc::clone(&readers_rx);
            spawn(&format!("angel-sqlite-reader-{i}"), move || {
                reader_loop(conn, rx)
            })?;
        }
        Ok(Self {
            writer,
            readers,
            _checkpointer: checkpointer,
            conversation_index,
            path: path.to_owned(),
        })
    }

    pub fn conversation_index(&self) -> &ConversationIndex {
        &self.conversation_index
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader connection.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Internal("a read panicked".into())));
            let _ = tx.send(result);
        });
        self.readers.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the writer connection inside a savepoint of the current group transaction. Its
    /// result is delivered only once the group has committed; an `Err` from `f` rolls back `f`'s
    /// changes alone. For work someone is waiting on (requests, acknowledgements).
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(Lane::Foreground, f).await
    }

    /// Like `write`, for background work (queue processing, embeddings, purges): it runs only a few
    /// jobs per group, after the foreground ones, so it never delays a request by much.
    pub async fn write_background<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(Lane::Background, f).await
    }

    async fn submit<T, F>(&self, lane: Lane, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let result = conn.and_then(|conn| in_savepoint(conn, f));
            Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    Some(error) => Err(error),
                    None => result,
                });
            })
        });
        self.writer.send((lane, job)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Internal("the database thread has stopped".into())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map(drop)
        .map_err(|e| StoreError::Internal(format!("cannot start a database thread: {e}")))
}

/// What a connection is for decides its page cache and whether it may write.
enum Role {
    Writer,
    Reader,
    Checkpoint,
}

fn open_connection(
    path: &Path,
    options: &PoolOptions,
    role: Role,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(super::db_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    let synchronous = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    // Small page caches keep the resident size low; the OS page cache holds the rest of the file.
    let (cache_kib, query_only) = match role {
        Role::Writer => (2_000, false),
        Role::Reader => (1_000, true),
        Role::Checkpoint => (128, false),
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{cache_kib};
         PRAGMA query_only = {};",
        u8::from(query_only)
    ))
    .map_err(super::db_error)?;
    Ok(conn)
}

/// Makes the conversations' full-text index readable from a reader connection. (Never the writer's:
/// BEGIN IMMEDIATE takes the write lock of every attached file.)
fn attach_conversation_index(
    conn: &Connection,
    index: &ConversationIndex,
) -> Result<(), StoreError> {
    conn.execute(
        &format!("ATTACH DATABASE ?1 AS {}", conversation_index::SCHEMA),
        [index.path().to_string_lossy()],
    )
    .map(drop)
    .map_err(super::db_error)
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")
        .map_err(super::db_error)?;
    let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Internal("a write panicked".into())));
    let finish = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(finish).map_err(super::db_error)?;
    result
}

/// Which queue a write waits in.
enum Lane {
    Foreground,
    Background,
}

fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<(Lane, WriteJob)>,
    indexed: watch::Receiver<i64>,
) {
    let mut background: VecDeque<WriteJob> = VecDeque::new();
    let mut maintained = Instant::now();
    loop {
        let mut group = Vec::new();
        // Wait only when there is nothing to do; an idle writer does its own maintenance.
        if background.is_empty() {
            match jobs.recv_timeout(MAINTAIN_WHEN_IDLE) {
                Ok((Lane::Foreground, job)) => group.push(job),
                Ok((Lane::Background, job)) => background.push_back(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    maintain(&conn, &indexed, &mut maintained);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok((Lane::Foreground, job)) => group.push(job),
                Ok((Lane::Background, job)) => background.push_back(job),
                Err(_) => break,
            }
        }
        let take = BACKGROUND_PER_GROUP.min(background.len());
        group.extend(background.drain(..take));
        commit_group(&conn, group);
        // Under constant load the writer is never idle; maintenance still runs, rarely.
        if maintained.elapsed() >= MAINTAIN_UNDER_LOAD {
            maintain(&conn, &indexed, &mut maintained);
        }
    }
}

/// Housekeeping on the writer itself, between groups, so that it never contends for the write lock:
/// forgets queued conversation changes the conversation index has taken in (`indexed`, as its thread
/// committed it; the writer never opens the index file, whose long merges would hold it up).
fn maintain(conn: &Connection, indexed: &watch::Receiver<i64>, maintained: &mut Instant) {
    if let Err(error) = conversation_index::trim_queue(conn, *indexed.borrow()) {
        tracing::warn!(%error, "trimming the conversation index queue failed");
    }
    *maintained = Instant::now();
}

fn commit_group(conn: &Connection, group: Vec<WriteJob>) {
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        let error = super::db_error(error);
        for job in group {
            job(Err(error.clone()))(None);
        }
        return;
    }
    let completions: Vec<Completion> = group.into_iter().map(|job| job(Ok(conn))).collect();
    let commit_error = conn.execute_batch("COMMIT").err().map(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        super::db_error(error)
    });
    for complete in completions {
        complete(commit_error.clone());
    }
}

fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        // PASSIVE never blocks readers or the writer; what it cannot copy now, it copies next time.
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
    }
    // A last full checkpoint leaves a tidy file behind when the service stops.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn reader_loop(conn: Connection, jobs: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        // The lock is held only while waiting for the next job, so readers take turns receiving.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}
