//! The audit trail: appended in the same transaction as the change it records.

use rusqlite::{Connection, params};

use super::{db_error, stored};
use crate::domain::{Cursor, MemoryId, Timestamp, Uid};
use crate::store::{AuditEvent, Context, Page, PageRequest, StoreError};

pub fn append(
    conn: &Connection,
    uid: &Uid,
    action: &str,
    memory_id: Option<MemoryId>,
    ctx: &Context,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    let seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events WHERE uid = ?1")
        .and_then(|mut s| s.query_row([uid.as_str()], |r| r.get(0)))
        .map_err(db_error)?;
    conn.prepare_cached(
        "INSERT INTO audit_events (uid, seq, at, action, memory_id, actor, request_id, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid.as_str(),
            seq,
            Timestamp::now().as_micros(),
            action,
            memory_id.map(|id| id.to_string()),
            ctx.actor.label(),
            ctx.request_id,
            details.to_string(),
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

/// Newest first.
pub fn page(
    conn: &Connection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<AuditEvent>, StoreError> {
    let before = page.after.as_ref().map_or(i64::MAX, |c| c.position);
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, at, action, memory_id, actor, request_id, details FROM audit_events
             WHERE uid = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )
        .map_err(db_error)?;
    let mut items = stmt
        .query_map(
            params![uid.as_str(), before, i64::from(page.limit) + 1],
            |r| {
                let memory_id: Option<String> = r.get(3)?;
                let details: String = r.get(6)?;
                Ok(AuditEvent {
                    seq: r.get(0)?,
                    at: Timestamp::from_micros(r.get(1)?),
                    action: r.get(2)?,
                    memory_id: memory_id
                        .map(|id| stored(MemoryId::parse(&id)))
                        .transpose()?,
                    actor: r.get(4)?,
                    request_id: r.get(5)?,
                    details: serde_json::from_str(&details).unwrap_or_default(),
                })
            },
        )
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, page.limit, |e: &AuditEvent| {
        Cursor::new(e.seq, "")
    }))
}
