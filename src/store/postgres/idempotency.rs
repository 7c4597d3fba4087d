//! Stored outcomes of requests sent with an `Idempotency-Key`, per user. The primary key (uid, key)
//! makes the first claim win across instances: `INSERT … ON CONFLICT DO NOTHING` either claims the key
//! or finds the row another request wrote, which is then read under its row lock.

use sqlx::PgConnection;

use super::rows::{col, db_error};
use crate::domain::{Timestamp, Uid};
use crate::store::{IdempotencyBegin, StoreError, StoredResponse};

/// Claims `key` for this request unless it is already known. A claim left `in_flight` since before
/// `stale_before` (its request died) may be taken over; so may a record older than `expired_before`.
pub async fn begin(
    c: &mut PgConnection,
    uid: &Uid,
    key: &str,
    fingerprint: &str,
    stale_before: Timestamp,
    expired_before: Timestamp,
) -> Result<IdempotencyBegin, StoreError> {
    let now = Timestamp::now().as_micros();
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (uid, key, fingerprint, state, created_at)
         VALUES ($1, $2, $3, 'in_flight', $4) ON CONFLICT (uid, key) DO NOTHING",
    )
    .bind(uid.as_str())
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(&mut *c)
    .await
    .map_err(db_error)?
    .rows_affected();
    if claimed == 1 {
        return Ok(IdempotencyBegin::Started);
    }
    let Some(row) = sqlx::query(
        "SELECT fingerprint, state, status, content_type, location, body, created_at
         FROM idempotency_keys WHERE uid = $1 AND key = $2 FOR UPDATE",
    )
    .bind(uid.as_str())
    .bind(key)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_error)?
    else {
        // Abandoned between our insert and this read: the caller's next attempt claims it.
        return Ok(IdempotencyBegin::InFlight);
    };
    let stored_fingerprint: String = col(&row, 0)?;
    let state: String = col(&row, 1)?;
    let status: Option<i32> = col(&row, 2)?;
    let created_at = Timestamp::from_micros(col(&row, 6)?);
    if created_at < expired_before || (state == "in_flight" && created_at < stale_before) {
        sqlx::query(
            "UPDATE idempotency_keys SET fingerprint = $3, state = 'in_flight', status = NULL, content_type = NULL,
                    location = NULL, body = NULL, created_at = $4
             WHERE uid = $1 AND key = $2",
        )
        .bind(uid.as_str())
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .execute(c)
        .await
        .map_err(db_error)?;
        return Ok(IdempotencyBegin::Started);
    }
    if stored_fingerprint != fingerprint {
        return Ok(IdempotencyBegin::Mismatch);
    }
    match (state.as_str(), status.and_then(|s| u16::try_from(s).ok())) {
        ("completed", Some(status)) => Ok(IdempotencyBegin::Replay(StoredResponse {
            status,
            content_type: col(&row, 3)?,
            location: col(&row, 4)?,
            body: col::<Option<Vec<u8>>>(&row, 5)?.unwrap_or_default(),
        })),
        _ => Ok(IdempotencyBegin::InFlight),
    }
}

pub async fn complete(
    c: &mut PgConnection,
    uid: &Uid,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', status = $3, content_type = $4, location = $5, body = $6
         WHERE uid = $1 AND key = $2",
    )
    .bind(uid.as_str())
    .bind(key)
    .bind(i32::from(response.status))
    .bind(&response.content_type)
    .bind(&response.location)
    .bind(&response.body)
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub async fn abandon(c: &mut PgConnection, uid: &Uid, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE uid = $1 AND key = $2 AND state = 'in_flight'")
        .bind(uid.as_str())
        .bind(key)
        .execute(c)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn purge(c: &mut PgConnection, created_before: Timestamp) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(created_before.as_micros())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_error)
}
