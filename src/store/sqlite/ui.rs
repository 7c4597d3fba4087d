//! The app home's sessions and chart counts.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use uuid::Uuid;

use super::accounts::require_user;
use super::{audit, db_error, stored};
use crate::domain::{Timestamp, Uid, ValidationError};
use crate::store::{Context, NewUiSession, SignInMethod, StoreError, UiSession, WeekCount};

pub fn create_session(
    conn: &Connection,
    uid: &Uid,
    new: NewUiSession,
    ctx: &Context,
) -> Result<UiSession, StoreError> {
    require_user(conn, uid)?;
    let now = Timestamp::now();
    // Expired sessions of this user go now, so the table does not grow with abandoned browsers.
    conn.prepare_cached("DELETE FROM ui_sessions WHERE uid = ?1 AND expires_at <= ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), now.as_micros()]))
        .map_err(db_error)?;
    conn.prepare_cached(
        "INSERT INTO ui_sessions (token_hash, uid, id, csrf_token, method, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            new.token_hash,
            uid.as_str(),
            new.id.to_string(),
            new.csrf_token,
            new.method.as_str(),
            now.as_micros(),
            new.expires_at.as_micros(),
        ])
    })
    .map_err(db_error)?;
    audit::append(
        conn,
        uid,
        "session.create",
        None,
        ctx,
        json!({"session_id": new.id, "method": new.method, "expires_at": new.expires_at}),
    )?;
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

pub fn session(
    conn: &Connection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<UiSession>, StoreError> {
    conn.prepare_cached(
        "SELECT id, uid, csrf_token, method, created_at, expires_at FROM ui_sessions
         WHERE token_hash = ?1 AND expires_at > ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![token_hash, now.as_micros()], |r| {
            let id: String = r.get(0)?;
            let uid: String = r.get(1)?;
            let method: String = r.get(3)?;
            Ok(UiSession {
                id: stored(Uuid::parse_str(&id).map_err(|_| invalid("session id")))?,
                uid: stored(Uid::parse(uid))?,
                csrf_token: r.get(2)?,
                method: stored(SignInMethod::parse(&method).ok_or_else(|| invalid("method")))?,
                created_at: Timestamp::from_micros(r.get(4)?),
                expires_at: Timestamp::from_micros(r.get(5)?),
            })
        })
        .optional()
    })
    .map_err(db_error)
}

/// Ending a session that is already gone changes nothing.
pub fn end_session(
    conn: &Connection,
    uid: &Uid,
    token_hash: &str,
    ctx: &Context,
) -> Result<(), StoreError> {
    let id: Option<String> = conn
        .prepare_cached("DELETE FROM ui_sessions WHERE uid = ?1 AND token_hash = ?2 RETURNING id")
        .and_then(|mut s| {
            s.query_row(params![uid.as_str(), token_hash], |r| r.get(0))
                .optional()
        })
        .map_err(db_error)?;
    if let Some(id) = id {
        audit::append(
            conn,
            uid,
            "session.end",
            None,
            ctx,
            json!({"session_id": id}),
        )?;
    }
    Ok(())
}

/// Weeks with no memories are left out; the caller fills the gaps.
pub fn memories_per_week(
    conn: &Connection,
    uid: &Uid,
    since: Timestamp,
) -> Result<Vec<WeekCount>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT (created_at - ?3) / ?4 AS week, COUNT(*) FROM memories
             WHERE uid = ?1 AND deleted_at IS NULL AND created_at >= ?2
             GROUP BY week ORDER BY week",
        )
        .map_err(db_error)?;
    stmt.query_map(
        params![
            uid.as_str(),
            since.as_micros(),
            WeekCount::MONDAY_OFFSET_MICROS,
            WeekCount::WEEK_MICROS
        ],
        |r| Ok(WeekCount::of_week(r.get(0)?, r.get(1)?)),
    )
    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
    .map_err(db_error)
}
