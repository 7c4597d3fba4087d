//! Moves a deployment from the embedded SQLite file to PostgreSQL: every table row for row, in one
//! PostgreSQL transaction that commits only when each table's row count and content hash match the
//! source. Nothing is left behind — versions, audit trail, embeddings and both queues move too.

use futures_util::TryStreamExt;
use rusqlite::OpenFlags;
use rusqlite::types::Value;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use std::path::Path;

use crate::store::StoreError;
use crate::store::postgres::{PgOptions, PostgresStore, db_error};

/// How a column is stored in PostgreSQL (SQLite keeps booleans as integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Int32,
    Real,
    Bool,
    Bytes,
}

use Kind::{Bool, Bytes, Int, Int32, Real, Text};

/// Every table, in an order that satisfies foreign keys, with its columns. Columns PostgreSQL derives
/// itself (text-search vectors, a conversation's transcript text, a user's audit counter) are not
/// copied but recomputed. SQLite's FTS5 tables have no counterpart to copy.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("users", &[("uid", Text), ("created_at", Int)]),
    (
        "api_keys",
        &[
            ("uid", Text),
            ("id", Text),
            ("name", Text),
            ("prefix", Text),
            ("hash", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
        ],
    ),
    (
        "memories",
        &[
            ("uid", Text),
            ("id", Text),
            ("content", Text),
            ("content_hash", Text),
            ("category", Text),
            ("tags", Text),
            ("visibility", Text),
            ("source", Text),
            ("conversation_id", Text),
            ("metadata", Text),
            ("occurred_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("deleted_at", Int),
            ("version", Int),
        ],
    ),
    (
        "memory_tags",
        &[("uid", Text), ("tag", Text), ("memory_id", Text)],
    ),
    (
        "memory_versions",
        &[
            ("uid", Text),
            ("memory_id", Text),
            ("version", Int),
            ("content", Text),
            ("content_hash", Text),
            ("category", Text),
            ("tags", Text),
            ("visibility", Text),
            ("conversation_id", Text),
            ("metadata", Text),
            ("occurred_at", Int),
            ("created_at", Int),
        ],
    ),
    (
        "audit_events",
        &[
            ("uid", Text),
            ("seq", Int),
            ("at", Int),
            ("action", Text),
            ("memory_id", Text),
            ("actor", Text),
            ("request_id", Text),
            ("details", Text),
        ],
    ),
    (
        "idempotency_keys",
        &[
            ("uid", Text),
            ("key", Text),
            ("fingerprint", Text),
            ("state", Text),
            ("status", Int32),
            ("content_type", Text),
            ("location", Text),
            ("body", Bytes),
            ("created_at", Int),
        ],
    ),
    (
        "inbox_events",
        &[
            ("uid", Text),
            ("id", Text),
            ("kind", Text),
            ("dedupe_key", Text),
            ("body", Bytes),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("response", Text),
            ("received_at", Int),
            ("processed_at", Int),
        ],
    ),
    (
        "conversations",
        &[
            ("uid", Text),
            ("id", Text),
            ("title", Text),
            ("overview", Text),
            ("emoji", Text),
            ("category", Text),
            ("source", Text),
            ("language", Text),
            ("created_at", Int),
            ("started_at", Int),
            ("finished_at", Int),
            ("discarded", Bool),
            ("imported_by_this_app", Bool),
            ("geolocation", Text),
            ("folder_name", Text),
            ("apps_results", Text),
            ("memory_id", Text),
            ("deliveries", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "transcript_segments",
        &[
            ("uid", Text),
            ("conversation_id", Text),
            ("position", Int),
            ("id", Text),
            ("text", Text),
            ("speaker", Text),
            ("speaker_id", Int),
            ("speaker_name", Text),
            ("is_user", Bool),
            ("person_id", Text),
            ("start_seconds", Real),
            ("end_seconds", Real),
        ],
    ),
    (
        "conversation_events",
        &[
            ("uid", Text),
            ("conversation_id", Text),
            ("position", Int),
            ("title", Text),
            ("description", Text),
            ("start", Int),
            ("duration_minutes", Real),
        ],
    ),
    (
        "tasks",
        &[
            ("uid", Text),
            ("id", Text),
            ("origin", Text),
            ("description", Text),
            ("completed", Bool),
            ("due_at", Int),
            ("completed_at", Int),
            ("conversation_id", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "conversation_source_texts",
        &[
            ("uid", Text),
            ("conversation_id", Text),
            ("text", Text),
            ("text_source", Text),
            ("text_source_spec", Text),
        ],
    ),
    (
        "conversation_client_sessions",
        &[
            ("uid", Text),
            ("client_session_id", Text),
            ("conversation_id", Text),
            ("deleted_at", Int),
            ("created_at", Int),
        ],
    ),
    (
        "live_segments",
        &[
            ("uid", Text),
            ("id", Text),
            ("session_id", Text),
            ("text", Text),
            ("speaker", Text),
            ("speaker_id", Int),
            ("is_user", Bool),
            ("person_id", Text),
            ("start_seconds", Real),
            ("end_seconds", Real),
            ("received_at", Int),
        ],
    ),
    (
        "day_summaries",
        &[
            ("uid", Text),
            ("key", Text),
            ("date", Text),
            ("summary", Text),
            ("received_at", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "recordings",
        &[
            ("uid", Text),
            ("id", Text),
            ("sample_rate", Int),
            ("file", Text),
            ("bytes", Int),
            ("started_at", Int),
            ("last_chunk_at", Int),
        ],
    ),
    (
        "ui_sessions",
        &[
            ("uid", Text),
            ("token_hash", Text),
            ("id", Text),
            ("csrf_token", Text),
            ("method", Text),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
    (
        "memory_embeddings",
        &[
            ("uid", Text),
            ("memory_id", Text),
            ("model", Text),
            ("revision", Text),
            ("dim", Int),
            ("content_hash", Text),
            ("vector", Bytes),
            ("error", Text),
            ("created_at", Int),
        ],
    ),
    // Filled by triggers while the tables above are copied: emptied first, then copied as they are.
    (
        "embedding_queue",
        &[
            ("uid", Text),
            ("memory_id", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
        ],
    ),
    ("search_generations", &[("uid", Text), ("generation", Int)]),
    (
        "search_changes",
        &[("uid", Text), ("generation", Int), ("memory_id", Text)],
    ),
    (
        "omi_sync_settings",
        &[
            ("uid", Text),
            ("push_memories", Bool),
            ("push_tags", Text),
            ("push_categories", Text),
            ("push_sources", Text),
            ("notify_events", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "omi_pull_checkpoints",
        &[
            ("uid", Text),
            ("resource", Text),
            ("next_offset", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "omi_upstream_status",
        &[("upstream", Text), ("status", Text), ("updated_at", Int)],
    ),
    // Filled by triggers while memories and conversations are copied (were settings copied first):
    // emptied, then copied as they are, with their states and request ids.
    (
        "omi_outbox",
        &[
            ("uid", Text),
            ("id", Text),
            ("kind", Text),
            ("dedupe_key", Text),
            ("memory_id", Text),
            ("request_id", Text),
            ("payload", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("delivered_at", Int),
        ],
    ),
];

const TRIGGER_FILLED: [&str; 4] = [
    "embedding_queue",
    "search_generations",
    "search_changes",
    "omi_outbox",
];

/// Rows per INSERT: well under PostgreSQL's 65,535 bind parameters for the widest table.
const BATCH: usize = 500;

/// What a table looked like on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub rows: u64,
    /// Hex SHA-256 over the rows (order-independent), equal on both sides.
    pub hash: String,
}

/// Told about progress while tables are copied.
pub trait CopyProgress {
    fn table_started(&mut self, table: &'static str, rows: u64);
    fn rows_copied(&mut self, rows: u64);
    fn table_verified(&mut self, report: &TableReport);
}

/// One value, as both databases can state it.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    fn from_sqlite(value: Value, kind: Kind) -> Result<Self, StoreError> {
        Ok(match (value, kind) {
            (Value::Null, _) => Self::Null,
            (Value::Integer(i), Real) => Self::Real(i as f64),
            (Value::Integer(i), _) => Self::Int(i),
            (Value::Real(r), _) => Self::Real(r),
            (Value::Text(t), Bytes) => Self::Bytes(t.into_bytes()),
            (Value::Text(t), _) => Self::Text(t),
            (Value::Blob(b), Text) => Self::Text(String::from_utf8(b).map_err(|_| {
                StoreError::Internal("a text column of the SQLite file holds bytes".into())
            })?),
            (Value::Blob(b), _) => Self::Bytes(b),
        })
    }

    fn from_postgres(row: &PgRow, i: usize, kind: Kind) -> Result<Self, StoreError> {
        let cell = match kind {
            Text => row
                .try_get::<Option<String>, _>(i)
                .map(|v| v.map(Self::Text)),
            Int => row.try_get::<Option<i64>, _>(i).map(|v| v.map(Self::Int)),
            Int32 => row
                .try_get::<Option<i32>, _>(i)
                .map(|v| v.map(|n| Self::Int(i64::from(n)))),
            Real => row.try_get::<Option<f64>, _>(i).map(|v| v.map(Self::Real)),
            Bool => row
                .try_get::<Option<bool>, _>(i)
                .map(|v| v.map(|b| Self::Int(i64::from(b)))),
            Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map(|v| v.map(Self::Bytes)),
        };
        Ok(cell.map_err(db_error)?.unwrap_or(Self::Null))
    }

    /// A canonical encoding: equal cells on both sides give equal bytes.
    fn digest_into(&self, hasher: &mut Sha256) {
        match self {
            Self::Null => hasher.update([0]),
            Self::Int(i) => {
                hasher.update([1]);
                hasher.update(i.to_le_bytes());
            }
            Self::Real(r) => {
                hasher.update([2]);
                hasher.update(r.to_bits().to_le_bytes());
            }
            Self::Text(t) => {
                hasher.update([3]);
                hasher.update((t.len() as u64).to_le_bytes());
                hasher.update(t.as_bytes());
            }
            Self::Bytes(b) => {
                hasher.update([4]);
                hasher.update((b.len() as u64).to_le_bytes());
                hasher.update(b);
            }
        }
    }

    fn bind(self, kind: Kind, q: &mut sqlx::query_builder::Separated<'_, '_, Postgres, &str>) {
        match (self, kind) {
            (Self::Null, Text) => q.push_bind(None::<String>),
            (Self::Null, Int) => q.push_bind(None::<i64>),
            (Self::Null, Int32) => q.push_bind(None::<i32>),
            (Self::Null, Real) => q.push_bind(None::<f64>),
            (Self::Null, Bool) => q.push_bind(None::<bool>),
            (Self::Null, Bytes) => q.push_bind(None::<Vec<u8>>),
            (Self::Int(i), Bool) => q.push_bind(i != 0),
            (Self::Int(i), Int32) => q.push_bind(i32::try_from(i).unwrap_or(i32::MAX)),
            (Self::Int(i), Real) => q.push_bind(i as f64),
            (Self::Int(i), _) => q.push_bind(i),
            (Self::Real(r), _) => q.push_bind(r),
            (Self::Text(t), _) => q.push_bind(t),
            (Self::Bytes(b), _) => q.push_bind(b),
        };
    }
}

/// Order-independent: the sum of each row's SHA-256 (as a 256-bit number, modulo 2^256), so both sides
/// may read rows in whatever order their indexes give.
#[derive(Default)]
struct TableHash {
    rows: u64,
    sum: [u64; 4],
}

impl TableHash {
    fn add(&mut self, cells: &[Cell]) {
        let mut hasher = Sha256::new();
        for cell in cells {
            cell.digest_into(&mut hasher);
        }
        let digest = hasher.finalize();
        let mut carry = 0u128;
        for (limb, chunk) in self.sum.iter_mut().zip(digest.chunks_exact(8)) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let total = u128::from(*limb) + u128::from(word) + carry;
            *limb = total as u64;
            carry = total >> 64;
        }
        self.rows += 1;
    }

    fn report(&self, table: &'static str) -> TableReport {
        TableReport {
            table,
            rows: self.rows,
            hash: self.sum.iter().rev().map(|l| format!("{l:016x}")).collect(),
        }
    }
}

fn sqlite_error(error: rusqlite::Error) -> StoreError {
    StoreError::Internal(format!("reading the SQLite file: {error}"))
}

/// Copies the SQLite deployment at `from` into the (empty) PostgreSQL database at `to`.
pub async fn sqlite_to_postgres(
    from: &Path,
    to: &str,
    progress: &mut dyn CopyProgress,
) -> Result<Vec<TableReport>, StoreError> {
    if !from.is_file() {
        return Err(StoreError::NotFound);
    }
    // Brings the file to the current schema first (a no-op when it is), then reads it read-only.
    drop(crate::store::sqlite::SqliteStore::open(
        from,
        &crate::store::sqlite::PoolOptions::default(),
    )?);
    let source = rusqlite::Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite_error)?;
    // The inbox is a file of its own; attached, its tables are found by their plain names.
    source
        .execute(
            "ATTACH DATABASE ?1 AS inbox",
            [crate::store::sqlite::inbox_path(from).to_string_lossy()],
        )
        .map_err(sqlite_error)?;
    let target = PostgresStore::open(to, PgOptions::default()).await?;
    let mut tx = target.pool().begin().await.map_err(db_error)?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    if users > 0 {
        return Err(StoreError::Conflict(
            "the PostgreSQL database already holds users; migrate into an empty database".into(),
        ));
    }
    for (table, columns) in TABLES {
        if TRIGGER_FILLED.contains(table) {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        copy_table(&source, &mut tx, table, columns, progress).await?;
    }
    // What PostgreSQL keeps besides the copied columns.
    for statement in [
        "UPDATE users u SET audit_seq = COALESCE((SELECT MAX(seq) FROM audit_events a WHERE a.uid = u.uid), 0)",
        "UPDATE conversations c SET transcript = COALESCE((SELECT string_agg(s.text, ' ' ORDER BY s.position)
             FROM transcript_segments s WHERE s.uid = c.uid AND s.conversation_id = c.id), '')",
    ] {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    let mut reports = Vec::with_capacity(TABLES.len());
    for (table, columns) in TABLES {
        let source_report = hash_sqlite(&source, table, columns)?;
        let target_report = hash_postgres(&mut tx, table, columns).await?;
        if source_report != target_report {
            return Err(StoreError::Internal(format!(
                "{table} differs after the copy: {} rows ({}) in SQLite, {} rows ({}) in PostgreSQL; nothing was committed",
                source_report.rows, source_report.hash, target_report.rows, target_report.hash
            )));
        }
        progress.table_verified(&target_report);
        reports.push(target_report);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(reports)
}

fn select(table: &str, columns: &[(&str, Kind)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    format!("SELECT {} FROM {table}", names.join(", "))
}

/// `select` on the SQLite side, where the inbox keeps its raw bodies in a table of their own
/// (`inbox_bodies`, written once, in the attached inbox file; PostgreSQL keeps them in the event's row).
fn sqlite_select(table: &str, columns: &[(&str, Kind)]) -> String {
    let source = match table {
        "inbox_events" => {
            "(SELECT e.*, b.body FROM inbox_events e \
              JOIN inbox_bodies b ON b.uid = e.uid AND b.id = e.id) AS inbox_events"
        }
        other => other,
    };
    select(source, columns)
}

async fn copy_table(
    source: &rusqlite::Connection,
    tx: &mut sqlx::PgConnection,
    table: &'static str,
    columns: &[(&str, Kind)],
    progress: &mut dyn CopyProgress,
) -> Result<(), StoreError> {
    let total: i64 = source
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .map_err(sqlite_error)?;
    progress.table_started(table, total as u64);
    let mut statement = source
        .prepare(&sqlite_select(table, columns))
        .map_err(sqlite_error)?;
    let mut rows = statement.query([]).map_err(sqlite_error)?;
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(BATCH);
    loop {
        let row = rows.next().map_err(sqlite_error)?;
        if let Some(row) = row {
            let cells = columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| {
                    Cell::from_sqlite(row.get::<_, Value>(i).map_err(sqlite_error)?, *kind)
                })
                .collect::<Result<Vec<_>, _>>()?;
            batch.push(cells);
        }
        if batch.len() == BATCH || (row.is_none() && !batch.is_empty()) {
            let copied = batch.len() as u64;
            insert_batch(tx, table, columns, std::mem::take(&mut batch)).await?;
            progress.rows_copied(copied);
        }
        if row.is_none() {
            return Ok(());
        }
    }
}

async fn insert_batch(
    tx: &mut sqlx::PgConnection,
    table: &str,
    columns: &[(&str, Kind)],
    batch: Vec<Vec<Cell>>,
) -> Result<(), StoreError> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let mut q: QueryBuilder<'_, Postgres> =
        QueryBuilder::new(format!("INSERT INTO {table} ({}) ", names.join(", ")));
    q.push_values(batch, |mut values, cells| {
        for (cell, (_, kind)) in cells.into_iter().zip(columns) {
            cell.bind(*kind, &mut values);
        }
    });
    q.build().execute(tx).await.map_err(db_error)?;
    Ok(())
}

fn hash_sqlite(
    source: &rusqlite::Connection,
    table: &'static str,
    columns: &[(&str, Kind)],
) -> Result<TableReport, StoreError> {
    let mut hash = TableHash::default();
    let mut statement = source
        .prepare(&sqlite_select(table, columns))
        .map_err(sqlite_error)?;
    let mut rows = statement.query([]).map_err(sqlite_error)?;
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                // Booleans are compared as the integers SQLite stores.
                let cell = Cell::from_sqlite(row.get::<_, Value>(i).map_err(sqlite_error)?, *kind)?;
                Ok(match (cell, kind) {
                    (Cell::Real(r), Bool) => Cell::Int(i64::from(r != 0.0)),
                    (Cell::Int(i), Bool) => Cell::Int(i64::from(i != 0)),
                    (cell, _) => cell,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        hash.add(&cells);
    }
    Ok(hash.report(table))
}

async fn hash_postgres(
    tx: &mut sqlx::PgConnection,
    table: &'static str,
    columns: &[(&str, Kind)],
) -> Result<TableReport, StoreError> {
    let mut hash = TableHash::default();
    let sql = select(table, columns);
    let mut rows = sqlx::query(&sql).fetch(tx);
    while let Some(row) = rows.try_next().await.map_err(db_error)? {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| Cell::from_postgres(&row, i, *kind))
            .collect::<Result<Vec<_>, _>>()?;
        hash.add(&cells);
    }
    Ok(hash.report(table))
}
