//! The audit trail: appended in the same transaction as the change it records.

use sqlx::PgConnection;

use super::rows::{col, db_error, page_limit, page_of, stored};
use crate::domain::{Cursor, MemoryId, Timestamp, Uid};
use crate::store::{AuditEvent, Context, Page, PageRequest, StoreError};

/// The sequence number comes from the user's row (`users.audit_seq`), bumped in this transaction: no
/// two instances can hand out the same number, and the bump holds the user's lock until commit.
pub async fn append(
    c: &mut PgConnection,
    uid: &Uid,
    action: &str,
    memory_id: Option<MemoryId>,
    ctx: &Context,
    details: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH next AS (UPDATE users SET audit_seq = audit_seq + 1 WHERE uid = $1 RETURNING audit_seq)
         INSERT INTO audit_events (uid, seq, at, action, memory_id, actor, request_id, details)
         SELECT $1, next.audit_seq, $2, $3, $4, $5, $6, $7 FROM next",
    )
    .bind(uid.as_str())
    .bind(Timestamp::now().as_micros())
    .bind(action)
    .bind(memory_id.map(|id| id.to_string()))
    .bind(ctx.actor.label())
    .bind(&ctx.request_id)
    .bind(details.to_string())
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Newest first.
pub async fn page(
    c: &mut PgConnection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<AuditEvent>, StoreError> {
    let before = page.after.as_ref().map_or(i64::MAX, |c| c.position);
    let rows = sqlx::query(
        "SELECT seq, at, action, memory_id, actor, request_id, details FROM audit_events
         WHERE uid = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(uid.as_str())
    .bind(before)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(AuditEvent {
                seq: col(r, 0)?,
                at: Timestamp::from_micros(col(r, 1)?),
                action: col(r, 2)?,
                memory_id: col::<Option<String>>(r, 3)?
                    .map(|id| stored(MemoryId::parse(&id)))
                    .transpose()?,
                actor: col(r, 4)?,
                request_id: col(r, 5)?,
                details: serde_json::from_str(&col::<String>(r, 6)?).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(page_of(items, page.limit, |e: &AuditEvent| {
        Cursor::new(e.seq, "")
    }))
}
