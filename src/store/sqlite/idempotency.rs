//! Stored outcomes of requests sent with an `Idempotency-Key`, per user.

use rusqlite::{Connection, OptionalExtension, params};

use super::db_error;
use crate::domain::{Timestamp, Uid};
use crate::store::{IdempotencyBegin, StoreError, StoredResponse};

/// Claims `key` for this request unless it is already known. A claim left `in_flight` since before
/// `stale_before` (its request died) may be taken over; so may a record older than `expired_before`.
pub fn begin(
    conn: &Connection,
    uid: &Uid,
    key: &str,
    fingerprint: &str,
    stale_before: Timestamp,
    expired_before: Timestamp,
) -> Result<IdempotencyBegin, StoreError> {
    type Row = (
        String,
        String,
        Option<u16>,
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
        i64,
    );
    let existing: Option<Row> = conn
        .prepare_cached(
            "SELECT fingerprint, state, status, content_type, location, body, created_at
             FROM idempotency_keys WHERE uid = ?1 AND key = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![uid.as_str(), key], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
        })
        .map_err(db_error)?;
    let claim = |conn: &Connection| {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO idempotency_keys (uid, key, fingerprint, state, created_at)
             VALUES (?1, ?2, ?3, 'in_flight', ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid.as_str(),
                key,
                fingerprint,
                Timestamp::now().as_micros()
            ])
        })
        .map_err(db_error)
        .map(|_| IdempotencyBegin::Started)
    };
    let Some((stored_fingerprint, state, status, content_type, location, body, created_at)) =
        existing
    else {
        return claim(conn);
    };
    let created_at = Timestamp::from_micros(created_at);
    if created_at < expired_before || (state == "in_flight" && created_at < stale_before) {
        return claim(conn);
    }
    if stored_fingerprint != fingerprint {
        return Ok(IdempotencyBegin::Mismatch);
    }
    match (state.as_str(), status) {
        ("completed", Some(status)) => Ok(IdempotencyBegin::Replay(StoredResponse {
            status,
            content_type,
            location,
            body: body.unwrap_or_default(),
        })),
        _ => Ok(IdempotencyBegin::InFlight),
    }
}

pub fn complete(
    conn: &Connection,
    uid: &Uid,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE idempotency_keys SET state = 'completed', status = ?3, content_type = ?4, location = ?5, body = ?6
         WHERE uid = ?1 AND key = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![uid.as_str(), key, response.status, response.content_type, response.location, response.body])
    })
    .map_err(db_error)?;
    Ok(())
}

pub fn abandon(conn: &Connection, uid: &Uid, key: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM idempotency_keys WHERE uid = ?1 AND key = ?2 AND state = 'in_flight'",
    )
    .and_then(|mut s| s.execute(params![uid.as_str(), key]))
    .map_err(db_error)?;
    Ok(())
}

pub fn purge(conn: &Connection, created_before: Timestamp) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < ?1",
        [created_before.as_micros()],
    )
    .map(|n| n as u64)
    .map_err(db_error)
}
