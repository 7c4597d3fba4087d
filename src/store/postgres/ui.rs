//! The app home's sessions and chart counts.

use serde_json::json;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::rows::{col, db_error, stored};
use super::{accounts, audit};
use crate::domain::{Timestamp, Uid, ValidationError};
use crate::store::{Context, NewUiSession, SignInMethod, StoreError, UiSession, WeekCount};

pub async fn create_session(
    c: &mut PgConnection,
    uid: &Uid,
    new: NewUiSession,
    ctx: &Context,
) -> Result<UiSession, StoreError> {
    accounts::lock_user(c, uid).await?;
    let now = Timestamp::now();
    // Expired sessions of this user go now, so the table does not grow with abandoned browsers.
    sqlx::query("DELETE FROM ui_sessions WHERE uid = $1 AND expires_at <= $2")
        .bind(uid.as_str())
        .bind(now.as_micros())
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    sqlx::query(
        "INSERT INTO ui_sessions (uid, token_hash, id, csrf_token, method, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uid.as_str())
    .bind(&new.token_hash)
    .bind(new.id.to_string())
    .bind(&new.csrf_token)
    .bind(new.method.as_str())
    .bind(now.as_micros())
    .bind(new.expires_at.as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    audit::append(
        c,
        uid,
        "session.create",
        None,
        ctx,
        json!({"session_id": new.id, "method": new.method, "expires_at": new.expires_at}),
    )
    .await?;
    Ok(UiSession {
        id: new.id,
        uid: uid.clone(),
        csrf_token: new.csrf_token,
        method: new.method,
        created_at: now,
        expires_at: new.expires_at,
    })
}

fn invalid(what: &'static str) -> ValidationError {
    ValidationError::new(what, "is not a value this service writes")
}

fn session_from_row(r: &PgRow) -> Result<UiSession, StoreError> {
    let method: String = col(r, 3)?;
    Ok(UiSession {
        id: stored(Uuid::parse_str(&col::<String>(r, 0)?).map_err(|_| invalid("session id")))?,
        uid: stored(Uid::parse(col::<String>(r, 1)?))?,
        csrf_token: col(r, 2)?,
        method: stored(SignInMethod::parse(&method).ok_or_else(|| invalid("method")))?,
        created_at: Timestamp::from_micros(col(r, 4)?),
        expires_at: Timestamp::from_micros(col(r, 5)?),
    })
}

pub async fn session(
    c: &mut PgConnection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<UiSession>, StoreError> {
    sqlx::query(
        "SELECT id, uid, csrf_token, method, created_at, expires_at FROM ui_sessions
         WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now.as_micros())
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .map(|r| session_from_row(&r))
    .transpose()
}

/// Ending a session that is already gone (or whose user is) changes nothing.
pub async fn end_session(
    c: &mut PgConnection,
    uid: &Uid,
    token_hash: &str,
    ctx: &Context,
) -> Result<(), StoreError> {
    match accounts::lock_user(c, uid).await {
        Err(StoreError::UnknownUser) => return Ok(()),
        other => other?,
    }
    let id: Option<String> = sqlx::query_scalar(
        "DELETE FROM ui_sessions WHERE uid = $1 AND token_hash = $2 RETURNING id",
    )
    .bind(uid.as_str())
    .bind(token_hash)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_error)?;
    if let Some(id) = id {
        audit::append(c, uid, "session.end", None, ctx, json!({"session_id": id})).await?;
    }
    Ok(())
}

/// Weeks with no memories are left out; the caller fills the gaps. Integer division truncates as in
/// SQLite, so both backends put a memory in the same week.
pub async fn memories_per_week(
    c: &mut PgConnection,
    uid: &Uid,
    since: Timestamp,
) -> Result<Vec<WeekCount>, StoreError> {
    sqlx::query(
        "SELECT (created_at - $3) / $4 AS week, COUNT(*) FROM memories
         WHERE uid = $1 AND deleted_at IS NULL AND created_at >= $2
         GROUP BY week ORDER BY week",
    )
    .bind(uid.as_str())
    .bind(since.as_micros())
    .bind(WeekCount::MONDAY_OFFSET_MICROS)
    .bind(WeekCount::WEEK_MICROS)
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(|r| Ok(WeekCount::of_week(col(r, 0)?, col(r, 1)?)))
    .collect()
}
