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
use super::log_restart::LogRestart;
use super::schema;
use crate::store::StoreError;

/// Most jobs committed in one transaction; bounds how long a single commit holds the write lock.
const MAX_GROUP: usize = 256;
/// The writer maintains the indexes after this long without work…
const MAINTAIN_WHEN_IDLE: Duration = Duration::from_millis(250);
/// …and at least this often when it never runs out of work.
const MAINTAIN_UNDER_LOAD: Duration = Duration::from_secs(5);
/// Background jobs join a group after its foreground ones until the group has run this long (at
/// least one joins each group). Queue processing submits many jobs at once; committing them together
/// writes each shared page to the write-ahead log once instead of once per job, and the log's growth
/// is what the store's writer spends most of its time on. A request arriving meanwhile waits at most
/// this. The inbox's background jobs (marking events done) are small, and acknowledgements wait on
/// them, so its groups take them for less long.
const BACKGROUND_BUDGET: Duration = Duration::from_millis(4);
const INBOX_BACKGROUND_BUDGET: Duration = Duration::from_millis(1);
/// How often the background thread copies the write-ahead log into the database file…
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// …and the store's, when its log starts over (see `log_restart`): the writer's own pass then finds
/// less left to copy, and the log is shorter when it does. (Back to back, every 2 ms, made the
/// acknowledgement tail worse: p99 22, 55 and 29 ms in three of six runs, against one such run in
/// nine at 100 ms.)
const CHECKPOINT_RESTARTING_EVERY: Duration = Duration::from_millis(100);
/// The inbox's log is cut back to this size when it starts over.
const INBOX_LOG_LIMIT_BYTES: i64 = 64 << 20;

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
    /// Start the store's write-ahead log over once it holds this many frames, even under constant
    /// writes (see `log_restart`); `None` leaves it to SQLite, which starts it over only when writes
    /// pause.
    pub restart_log_after_frames: Option<i64>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            readers: 3,
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            restart_log_after_frames: None,
        }
    }
}

/// What a pool's file holds, which decides its migrations and the threads beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    /// The store: everything but the inbox; its conversations' full-text index lives beside it.
    Store,
    /// Omi's raw events, written by acknowledgements on a writer of its own (see `inbox`).
    Inbox,
}

impl File {
    /// How its threads are named.
    fn thread_prefix(self) -> &'static str {
        match self {
            Self::Store => "angel-sqlite",
            Self::Inbox => "angel-inbox",
        }
    }

    fn background_budget(self) -> Duration {
        match self {
            Self::Store => BACKGROUND_BUDGET,
            Self::Inbox => INBOX_BACKGROUND_BUDGET,
        }
    }
}

pub struct Pool {
    writer: mpsc::Sender<(Lane, WriteJob)>,
    readers: mpsc::Sender<ReadJob>,
    /// Dropping the pool drops this, which stops the checkpoint thread.
    _checkpointer: mpsc::Sender<()>,
    /// The store's only; the inbox file has none.
    conversation_index: Option<ConversationIndex>,
    path: PathBuf,
}

impl Pool {
    /// Opens (creating if needed) the database file, applies migrations, and starts the threads.
    pub fn open(path: &Path, options: &PoolOptions, file: File) -> Result<Self, StoreError> {
        let mut writer_conn = open_connection(path, options, Role::Writer)?;
        schema::migrate(&mut writer_conn, file)?;
        // SQLite would otherwise checkpoint inside whichever commit crosses the threshold, stalling
        // every write waiting behind it; a separate thread does it without blocking the writer.
        writer_conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(super::db_error)?;
        if file == File::Inbox {
            // The inbox's log starts over on its own between acknowledgements and is then overwritten
            // in place. A page of it the kernel has dropped meanwhile (the development machine's
            // kernel reclaims cold page cache proactively) must be read back from disk before a
            // frame, which never fills whole pages, is written over it: synchronous reads inside
            // acknowledgements, after a burst had grown the log to a gigabyte. Cut back to this size
            // when it starts over, the log stays in use, and so in memory, and small on disk. The
            // cut itself, after such a burst, holds the writer once for 0.2–0.3 s (measured).
            writer_conn
                .execute_batch(&format!(
                    "PRAGMA journal_size_limit = {INBOX_LOG_LIMIT_BYTES}"
                ))
                .map_err(super::db_error)?;
        }
        let conversation_index = match file {
            File::Store => Some(ConversationIndex::open(path, options.busy_timeout)?),
            File::Inbox => None,
        };
        let indexed = conversation_index.as_ref().map(ConversationIndex::indexed);
        // Never in the inbox's file, where the writer's pause would fall on acknowledgements.
        let restart_log = options
            .restart_log_after_frames
            .filter(|_| file == File::Store)
            .map(|frames| Arc::new(LogRestart::new(frames)));
        let (checkpointer, stop) = mpsc::channel::<()>();
        let checkpoint_conn = open_connection(path, options, Role::Checkpoint)?;
        let name = file.thread_prefix();
        let checkpoint_restart = restart_log.clone();
        spawn(&format!("{name}-checkpoint"), move || {
            checkpoint_loop(checkpoint_conn, stop, checkpoint_restart)
        })?;

        let (writer, writer_rx) = mpsc::channel::<(Lane, WriteJob)>();
        spawn(&format!("{name}-writer"), move || {
            writer_loop(
                writer_conn,
                writer_rx,
                indexed,
                file.background_budget(),
                restart_log,
            )
        })?;

        let (readers, readers_rx) = mpsc::channel::<ReadJob>();
        let readers_rx = Arc::new(Mutex::new(readers_rx));
        for i in 0..options.readers.max(1) {
            let conn = open_connection(path, options, Role::Reader)?;
            if let Some(index) = &conversation_index {
                attach_conversation_index(&conn, index)?;
            }
            let rx = Arc::clone(&readers_rx);
            spawn(&format!("{name}-reader-{i}"), move || reader_loop(conn, rx))?;
        }
        Ok(Self {
            writer,
            readers,
            _checkpointer: checkpointer,
            conversation_index,
            path: path.to_owned(),
        })
    }

    pub fn conversation_index(&self) -> Option<&ConversationIndex> {
        self.conversation_index.as_ref()
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

    /// Like `write`, for background work (queue processing, embeddings, purges): it joins a group
    /// after the foreground jobs, for a few milliseconds at most, so it never delays a request by much.
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
#[derive(Clone, Copy)]
enum Lane {
    Foreground,
    Background,
}

fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<(Lane, WriteJob)>,
    indexed: Option<watch::Receiver<i64>>,
    background_budget: Duration,
    restart_log: Option<Arc<LogRestart>>,
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
                    maintain(&conn, indexed.as_ref(), &mut maintained);
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
        let requests_wrote = !group.is_empty();
        commit_group(&conn, group, &mut background, background_budget);
        if let Some(restart) = &restart_log {
            if requests_wrote {
                restart.request_wrote();
            }
            if restart.due() && finish_checkpoint(&conn) {
                restart.finished();
            }
        }
        // Under constant load the writer is never idle; maintenance still runs, rarely.
        if maintained.elapsed() >= MAINTAIN_UNDER_LOAD {
            maintain(&conn, indexed.as_ref(), &mut maintained);
        }
    }
}

/// Housekeeping on the writer itself, between groups, so that it never contends for the write lock:
/// forgets queued conversation changes the conversation index has taken in (`indexed`, as its thread
/// committed it; the writer never opens the index file, whose long merges would hold it up).
fn maintain(conn: &Connection, indexed: Option<&watch::Receiver<i64>>, maintained: &mut Instant) {
    if let Some(indexed) = indexed
        && let Err(error) = conversation_index::trim_queue(conn, *indexed.borrow())
    {
        tracing::warn!(%error, "trimming the conversation index queue failed");
    }
    *maintained = Instant::now();
}

/// Runs the foreground jobs, then background ones within `budget`, in one transaction.
fn commit_group(
    conn: &Connection,
    foreground: Vec<WriteJob>,
    background: &mut VecDeque<WriteJob>,
    budget: Duration,
) {
    let started = Instant::now();
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        // The file cannot be written now: every waiting job hears so, and may try again.
        let error = super::db_error(error);
        for job in foreground.into_iter().chain(background.drain(..)) {
            job(Err(error.clone()))(None);
        }
        return;
    }
    let mut completions: Vec<Completion> =
        foreground.into_iter().map(|job| job(Ok(conn))).collect();
    let mut ran_background = false;
    // At least one, even after a full group of foreground jobs: background work never starves.
    while (!ran_background || (completions.len() < MAX_GROUP && started.elapsed() < budget))
        && let Some(job) = background.pop_front()
    {
        completions.push(job(Ok(conn)));
        ran_background = true;
    }
    let commit_error = conn.execute_batch("COMMIT").err().map(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        super::db_error(error)
    });
    for complete in completions {
        complete(commit_error.clone());
    }
}

/// Copies what is left of the store's log into the database file, between groups, so that the next
/// group starts the log over (SQLite does so when a transaction begins with every frame copied). The
/// writer waits for two fsyncs meanwhile; `log_restart` decides when that is worth it.
///
/// Returns whether every frame is now copied. Not when the checkpoint thread was in the middle of a
/// pass (SQLite then answers busy at once), nor when a reader still holds an old snapshot: the writer
/// tries again after its next group.
fn finish_checkpoint(conn: &Connection) -> bool {
    let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match pass {
        Ok((busy, frames, copied)) => busy == 0 && frames == copied,
        Err(error) => {
            tracing::warn!(%error, "finishing a WAL checkpoint failed");
            false
        }
    }
}

/// Copies the write-ahead log into the database file in the background, and reports to
/// `restart_log`, if any, how long the log is.
fn checkpoint_loop(
    conn: Connection,
    stop: mpsc::Receiver<()>,
    restart_log: Option<Arc<LogRestart>>,
) {
    let every = match restart_log {
        Some(_) => CHECKPOINT_RESTARTING_EVERY,
        None => CHECKPOINT_EVERY,
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        // PASSIVE never blocks readers or the writer; what it cannot copy now, it copies next time.
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match pass {
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
            Ok((frames, copied)) => {
                if let Some(restart) = &restart_log {
                    restart.passed(frames, copied);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_connection(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0")
            .unwrap();
        conn
    }

    /// Frames in the log now, as a checkpoint reports them.
    fn logged_frames(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    /// After the writer finishes a checkpoint, its next transaction starts the log over: the log
    /// holds that transaction's frames only, not everything written before.
    #[test]
    fn a_finished_checkpoint_lets_the_next_write_start_the_log_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let writer = wal_connection(&path);
        let checkpointer = wal_connection(&path);
        writer.execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        let write = |n: usize| {
            for _ in 0..n {
                writer
                    .execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])
                    .unwrap();
            }
        };
        write(200);
        let before = logged_frames(&checkpointer);
        // The background pass left the last writes uncopied.
        write(20);
        assert!(finish_checkpoint(&writer), "every frame is copied");
        write(1);
        let after = logged_frames(&checkpointer);
        assert!(before >= 200, "the log held every write: {before}");
        assert!(after < 10, "the log started over: {after} frames");
    }

    /// Bytes of row data written, and the store's log file length, after `seconds` of constant
    /// writes in `lane` (32 always queued, so the writer never runs out of work).
    async fn constant_writes(options: PoolOptions, lane: Lane, seconds: u64) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let pool = Arc::new(Pool::open(&path, &options, File::Store).unwrap());
        pool.write(|c| {
            c.execute_batch("CREATE TABLE load (v BLOB)")
                .map_err(super::super::db_error)
        })
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let writers: Vec<_> = (0..32)
            .map(|_| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    let mut rows = 0u64;
                    while Instant::now() < deadline {
                        pool.submit(lane, |c| {
                            c.execute("INSERT INTO load (v) VALUES (zeroblob(4000))", [])
                                .map_err(super::super::db_error)
                        })
                        .await
                        .unwrap();
                        rows += 1;
                    }
                    rows
                })
            })
            .collect();
        let mut rows = 0;
        for writer in writers {
            rows += writer.await.unwrap();
        }
        let mut log = path.into_os_string();
        log.push("-wal");
        (rows * 4000, std::fs::metadata(log).unwrap().len())
    }

    /// SQLite alone never starts the log over while the writer is never idle; with a start-over
    /// length, the writer does, between groups, once no request has written for a moment.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn constant_background_writes_start_the_store_log_over() {
        let left_to_sqlite = PoolOptions::default();
        let (written, log) = constant_writes(left_to_sqlite, Lane::Background, 2).await;
        assert!(
            log >= written,
            "the log holds every write: {log} of {written} bytes"
        );

        let restarting = PoolOptions {
            restart_log_after_frames: Some(256),
            ..PoolOptions::default()
        };
        // Long enough that the log's longest stretch (a few passes' worth) is a small part of it.
        let (written, log) = constant_writes(restarting, Lane::Background, 6).await;
        assert!(
            log < written / 2,
            "the log started over: {log} bytes long after {written} written"
        );
    }

    /// Requests always waiting keep the writer from pausing, until the log is 16 times the
    /// start-over length: then it starts over anyway, so the file stays bounded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn constant_request_writes_start_the_store_log_over_when_far_too_long() {
        let restarting = PoolOptions {
            // Forced at 16 times this: 256 frames, 1 MiB.
            restart_log_after_frames: Some(16),
            ..PoolOptions::default()
        };
        let (written, log) = constant_writes(restarting, Lane::Foreground, 6).await;
        assert!(
            log < written / 2,
            "the log started over: {log} bytes long after {written} written"
        );
    }
}
