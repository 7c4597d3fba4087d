//! Recording metadata; the audio itself lives in WAV files under the data directory.

use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::rows::{col, db_error, page_limit, page_of};
use crate::domain::{Cursor, Timestamp, Uid};
use crate::store::{Page, PageRequest, Recording, StoreError};

const COLUMNS: &str = "id, sample_rate, bytes, started_at, last_chunk_at, file";

fn from_row(r: &PgRow) -> Result<Recording, StoreError> {
    let sample_rate = u32::try_from(col::<i64>(r, 1)?)
        .map_err(|_| StoreError::Internal("a stored sample rate is out of range".into()))?;
    let bytes: i64 = col(r, 2)?;
    Ok(Recording {
        id: col(r, 0)?,
        sample_rate,
        bytes,
        duration_seconds: bytes as f64 / (2.0 * f64::from(sample_rate.max(1))),
        started_at: Timestamp::from_micros(col(r, 3)?),
        last_chunk_at: Timestamp::from_micros(col(r, 4)?),
        file: col(r, 5)?,
    })
}

/// The recording a new chunk continues: the latest one at this sample rate whose last chunk came
/// after `continues_after`; otherwise `None` (the caller starts a new one).
pub async fn current(
    c: &mut PgConnection,
    uid: &Uid,
    sample_rate: u32,
    continues_after: Timestamp,
) -> Result<Option<Recording>, StoreError> {
    let latest = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE uid = $1 ORDER BY last_chunk_at DESC LIMIT 1"
    ))
    .bind(uid.as_str())
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .map(|r| from_row(&r))
    .transpose()?;
    Ok(latest.filter(|r| r.sample_rate == sample_rate && r.last_chunk_at >= continues_after))
}

pub async fn start(
    c: &mut PgConnection,
    uid: &Uid,
    recording: &Recording,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO recordings (uid, id, sample_rate, file, bytes, started_at, last_chunk_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uid.as_str())
    .bind(&recording.id)
    .bind(i64::from(recording.sample_rate))
    .bind(&recording.file)
    .bind(recording.bytes)
    .bind(recording.started_at.as_micros())
    .bind(recording.last_chunk_at.as_micros())
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn appended(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    bytes: i64,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE recordings SET bytes = bytes + $3, last_chunk_at = $4 WHERE uid = $1 AND id = $2",
    )
    .bind(uid.as_str())
    .bind(id)
    .bind(bytes)
    .bind(at.as_micros())
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn usage(c: &mut PgConnection, uid: &Uid) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM recordings WHERE uid = $1")
        .bind(uid.as_str())
        .fetch_one(c)
        .await
        .map_err(db_error)
}

/// Newest first.
pub async fn list(
    c: &mut PgConnection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<Recording>, StoreError> {
    let (before_at, before_id) = page.position_or(i64::MAX);
    let items = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE uid = $1 AND (started_at, id) < ($2, $3)
         ORDER BY started_at DESC, id DESC LIMIT $4"
    ))
    .bind(uid.as_str())
    .bind(before_at)
    .bind(before_id)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, page.limit, |r: &Recording| {
        Cursor::new(r.started_at.as_micros(), r.id.clone())
    }))
}

pub async fn get(c: &mut PgConnection, uid: &Uid, id: &str) -> Result<Recording, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE uid = $1 AND id = $2"
    ))
    .bind(uid.as_str())
    .bind(id)
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Removes recordings whose last chunk is older than the cutoff; returns their files to delete.
pub async fn expire(c: &mut PgConnection, before: Timestamp) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("DELETE FROM recordings WHERE last_chunk_at < $1 RETURNING file")
        .bind(before.as_micros())
        .fetch_all(c)
        .await
        .map_err(db_error)
}

pub async fn files_of_user(c: &mut PgConnection, uid: &Uid) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("SELECT file FROM recordings WHERE uid = $1")
        .bind(uid.as_str())
        .fetch_all(c)
        .await
        .map_err(db_error)
}
