//! Recording metadata; the audio itself lives in WAV files under the data directory.

use rusqlite::{Connection, OptionalExtension, params};

use super::{db_error, stored};
use crate::domain::{Cursor, Timestamp, Uid};
use crate::store::{Page, PageRequest, Recording, StoreError};

const COLUMNS: &str = "id, sample_rate, bytes, started_at, last_chunk_at, file";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Recording> {
    let sample_rate: u32 = r.get(1)?;
    let bytes: i64 = r.get(2)?;
    Ok(Recording {
        id: r.get(0)?,
        sample_rate,
        bytes,
        duration_seconds: bytes as f64 / (2.0 * f64::from(sample_rate.max(1))),
        started_at: Timestamp::from_micros(r.get(3)?),
        last_chunk_at: Timestamp::from_micros(r.get(4)?),
        file: r.get(5)?,
    })
}

/// The recording a new chunk continues: the latest one at this sample rate whose last chunk came
/// after `continues_after`; otherwise `None` (the caller starts a new one).
pub fn current(
    conn: &Connection,
    uid: &Uid,
    sample_rate: u32,
    continues_after: Timestamp,
) -> Result<Option<Recording>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE uid = ?1 ORDER BY last_chunk_at DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([uid.as_str()], from_row).optional())
    .map_err(db_error)
    .map(|latest| {
        latest.filter(|r| r.sample_rate == sample_rate && r.last_chunk_at >= continues_after)
    })
}

pub fn start(conn: &Connection, uid: &Uid, recording: &Recording) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO recordings (uid, id, sample_rate, file, bytes, started_at, last_chunk_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            uid.as_str(),
            recording.id,
            recording.sample_rate,
            recording.file,
            recording.bytes,
            recording.started_at.as_micros(),
            recording.last_chunk_at.as_micros()
        ],
    )
    .map_err(db_error)?;
    Ok(())
}

pub fn appended(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    bytes: i64,
    at: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE recordings SET bytes = bytes + ?3, last_chunk_at = ?4 WHERE uid = ?1 AND id = ?2",
    )
    .and_then(|mut s| s.execute(params![uid.as_str(), id, bytes, at.as_micros()]))
    .map_err(db_error)?;
    Ok(())
}

pub fn usage(conn: &Connection, uid: &Uid) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT COALESCE(SUM(bytes), 0) FROM recordings WHERE uid = ?1",
        [uid.as_str()],
        |r| r.get(0),
    )
    .map_err(db_error)
}

/// Newest first.
pub fn list(
    conn: &Connection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<Recording>, StoreError> {
    let (before_at, before_id) = page.position_or(i64::MAX);
    let mut items = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE uid = ?1 AND (started_at, id) < (?2, ?3)
             ORDER BY started_at DESC, id DESC LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    uid.as_str(),
                    before_at,
                    before_id,
                    i64::from(page.limit) + 1
                ],
                from_row,
            )?
            .collect()
        })
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, page.limit, |r: &Recording| {
        Cursor::new(r.started_at.as_micros(), r.id.clone())
    }))
}

pub fn get(conn: &Connection, uid: &Uid, id: &str) -> Result<Recording, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE uid = ?1 AND id = ?2"
    ))
    .and_then(|mut s| s.query_row(params![uid.as_str(), id], from_row).optional())
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)
}

/// Removes recordings whose last chunk is older than the cutoff; returns their files to delete.
pub fn expire(conn: &Connection, before: Timestamp) -> Result<Vec<String>, StoreError> {
    let files: Vec<(String, String, String)> = conn
        .prepare_cached("SELECT uid, id, file FROM recordings WHERE last_chunk_at < ?1")
        .and_then(|mut s| {
            s.query_map([before.as_micros()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(db_error)?;
    for (uid, id, _) in &files {
        let uid = stored(Uid::parse(uid.clone())).map_err(db_error)?;
        conn.execute(
            "DELETE FROM recordings WHERE uid = ?1 AND id = ?2",
            params![uid.as_str(), id],
        )
        .map_err(db_error)?;
    }
    Ok(files.into_iter().map(|(_, _, file)| file).collect())
}

pub fn files_of_user(conn: &Connection, uid: &Uid) -> Result<Vec<String>, StoreError> {
    conn.prepare_cached("SELECT file FROM recordings WHERE uid = ?1")
        .and_then(|mut s| s.query_map([uid.as_str()], |r| r.get(0))?.collect())
        .map_err(db_error)
}
