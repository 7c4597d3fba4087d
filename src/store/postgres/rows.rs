//! Helpers every file of the backend shares: error mapping, reading columns, pages.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::domain::{Cursor, ValidationError};
use crate::store::{Page, StoreError};

/// Marks errors after which the whole transaction may simply run again.
const TRANSIENT: &str = "transient conflict, retry";

pub fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001" | "40P01") => StoreError::Unavailable(format!("{TRANSIENT}: {db}")),
            // Class 08 (connection), 53 (insufficient resources), 57P (shutdown)
            Some(code)
                if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") =>
            {
                StoreError::Unavailable(db.to_string())
            }
            _ => StoreError::Internal(db.to_string()),
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// An error after which the transaction runs again (see `transaction!`).
pub(super) fn transient(reason: &str) -> StoreError {
    StoreError::Unavailable(format!("{TRANSIENT}: {reason}"))
}

pub(super) fn is_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(m) if m.starts_with(TRANSIENT))
}

/// Whether a statement failed on a unique constraint.
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// Column `i` of a row.
pub(super) fn col<'r, T>(row: &'r PgRow, i: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(i).map_err(db_error)
}

/// A stored value that no longer parses means the database was changed behind our back.
pub(super) fn stored<T>(parsed: Result<T, ValidationError>) -> Result<T, StoreError> {
    parsed.map_err(|e| StoreError::Internal(format!("a stored value is not valid: {e}")))
}

/// Turns a `limit + 1` query result into a page: the extra row only tells that there is more.
pub(super) fn page_of<T>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> Cursor) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// `LIMIT` for a page query: one more than asked, to tell whether there is a next page.
pub(super) fn page_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}
