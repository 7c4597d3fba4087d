//! The Omi outbox, sync settings and pull checkpoints. Items are enqueued by triggers (migration 6) in
//! the transaction that writes the memory or conversation; this file claims, reads and settles them.
//! Outbox workers of all instances share the queue: each claims due items with `FOR UPDATE SKIP
//! LOCKED` and a lease (`claimed_until`), as the inbox does, so no two deliver one item at once.

use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::accounts;
use super::rows::{col, db_error, page_limit, page_of, stored};
use crate::domain::{Cursor, NewTask, Timestamp, Uid};
use crate::store::{
    OutboxCounts, OutboxEntry, OutboxItem, OutboxKind, OutboxOutcome, OutboxState, Page,
    PageRequest, StoreError, StoredSyncLists, SyncSettings, UpstreamStatus,
};

async fn require_user(c: &mut PgConnection, uid: &Uid) -> Result<(), StoreError> {
    if accounts::user_exists(c, uid).await? {
        Ok(())
    } else {
        Err(StoreError::UnknownUser)
    }
}

pub async fn sync_settings(c: &mut PgConnection, uid: &Uid) -> Result<SyncSettings, StoreError> {
    require_user(c, uid).await?;
    let row = sqlx::query(
        "SELECT push_memories, push_tags, push_categories, push_sources, notify_events, updated_at
         FROM omi_sync_settings WHERE uid = $1",
    )
    .bind(uid.as_str())
    .fetch_optional(c)
    .await
    .map_err(db_error)?;
    let Some(r) = row else {
        return Ok(SyncSettings::default());
    };
    let lists = StoredSyncLists {
        tags: col(&r, 1)?,
        categories: col(&r, 2)?,
        sources: col(&r, 3)?,
        notify: col(&r, 4)?,
    };
    Ok(SyncSettings::from_stored(col(&r, 0)?, &lists, col(&r, 5)?))
}

pub async fn set_sync_settings(
    c: &mut PgConnection,
    uid: &Uid,
    settings: SyncSettings,
) -> Result<SyncSettings, StoreError> {
    accounts::lock_user(c, uid).await?;
    let lists = settings.stored_lists();
    sqlx::query(
        "INSERT INTO omi_sync_settings (uid, push_memories, push_tags, push_categories, push_sources, notify_events, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (uid) DO UPDATE SET push_memories = excluded.push_memories, push_tags = excluded.push_tags,
             push_categories = excluded.push_categories, push_sources = excluded.push_sources,
             notify_events = excluded.notify_events, updated_at = excluded.updated_at",
    )
    .bind(uid.as_str())
    .bind(settings.push_memories)
    .bind(lists.tags)
    .bind(lists.categories)
    .bind(lists.sources)
    .bind(lists.notify)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    sync_settings(c, uid).await
}

/// Claims due items for this worker: each is leased until `now + lease`, and other instances skip it
/// meanwhile (rows another worker is claiming are skipped, not waited for). Settling ends the lease;
/// when it runs out unsettled — the worker died — the item is due again for everyone.
pub async fn claim_due(
    c: &mut PgConnection,
    instance: &str,
    now: Timestamp,
    lease_micros: i64,
    limit: u32,
) -> Result<Vec<OutboxItem>, StoreError> {
    let rows = sqlx::query(
        "WITH due AS (
             SELECT uid, id FROM omi_outbox
             WHERE state = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
             ORDER BY next_attempt_at, created_at LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE omi_outbox o SET claimed_until = $2, claimed_by = $4
         FROM due WHERE o.uid = due.uid AND o.id = due.id
         RETURNING o.uid, o.id, o.kind, o.payload, o.attempts, o.request_id, o.next_attempt_at, o.created_at",
    )
    .bind(now.as_micros())
    .bind(now.as_micros().saturating_add(lease_micros))
    .bind(i64::from(limit))
    .bind(instance)
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let mut due = rows
        .iter()
        .map(|r| {
            Ok((
                (col::<Option<i64>>(r, 6)?, col::<i64>(r, 7)?),
                OutboxItem {
                    uid: stored(Uid::parse(col::<String>(r, 0)?))?,
                    id: col(r, 1)?,
                    kind: OutboxKind::parse(&col::<String>(r, 2)?).unwrap_or(OutboxKind::Memory),
                    payload: serde_json::from_str(&col::<String>(r, 3)?).unwrap_or_default(),
                    attempts: col(r, 4)?,
                    request_id: col(r, 5)?,
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // UPDATE … RETURNING does not keep the CTE's order.
    due.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.id.cmp(&y.id)));
    Ok(due.into_iter().map(|(_, item)| item).collect())
}

/// Settles attempts and ends their leases. Only pending items change: an item an operator touched
/// meanwhile stays as it is.
pub async fn settle(
    c: &mut PgConnection,
    outcomes: Vec<(Uid, String, OutboxOutcome)>,
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    for (uid, id, outcome) in outcomes {
        let (state, next, counted, error, delivered) = match outcome {
            OutboxOutcome::Delivered => ("done", None, true, None, Some(now)),
            OutboxOutcome::Retry { at, counted, error } => {
                ("pending", Some(at.as_micros()), counted, Some(error), None)
            }
            OutboxOutcome::Dead { error } => ("dead", None, true, Some(error), None),
            OutboxOutcome::Released => ("pending", Some(now), false, None, None),
        };
        sqlx::query(
            "UPDATE omi_outbox SET state = $3, next_attempt_at = $4, attempts = attempts + $5,
                    last_error = COALESCE($6, last_error), delivered_at = $7, claimed_until = NULL
             WHERE uid = $1 AND id = $2 AND state = 'pending'",
        )
        .bind(uid.as_str())
        .bind(&id)
        .bind(state)
        .bind(next)
        .bind(i64::from(counted))
        .bind(error)
        .bind(delivered)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

const ENTRY_COLUMNS: &str = "id, uid, kind, state, memory_id, attempts, created_at, next_attempt_at, delivered_at, last_error";

fn entry(r: &PgRow) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        id: col(r, 0)?,
        uid: stored(Uid::parse(col::<String>(r, 1)?))?,
        kind: OutboxKind::parse(&col::<String>(r, 2)?).unwrap_or(OutboxKind::Memory),
        state: OutboxState::parse(&col::<String>(r, 3)?).unwrap_or(OutboxState::Pending),
        memory_id: col(r, 4)?,
        attempts: col(r, 5)?,
        created_at: Timestamp::from_micros(col(r, 6)?),
        next_attempt_at: col::<Option<i64>>(r, 7)?.map(Timestamp::from_micros),
        delivered_at: col::<Option<i64>>(r, 8)?.map(Timestamp::from_micros),
        last_error: col(r, 9)?,
    })
}

/// Oldest first, across users (an operator's view).
pub async fn list(
    c: &mut PgConnection,
    state: OutboxState,
    page: &PageRequest,
) -> Result<Page<OutboxEntry>, StoreError> {
    let (after_at, after_id) = page.position_or(i64::MIN);
    let items = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM omi_outbox WHERE state = $1 AND (created_at, id) > ($2, $3)
         ORDER BY created_at, id LIMIT $4"
    ))
    .bind(state.as_str())
    .bind(after_at)
    .bind(after_id)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(entry)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, page.limit, |e: &OutboxEntry| {
        Cursor::new(e.created_at.as_micros(), e.id.clone())
    }))
}

/// Puts a dead item back in the queue, with a fresh attempt count.
pub async fn retry(c: &mut PgConnection, id: &str) -> Result<OutboxEntry, StoreError> {
    let changed = sqlx::query(
        "UPDATE omi_outbox SET state = 'pending', attempts = 0, next_attempt_at = $2, claimed_until = NULL
         WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?
    .rows_affected();
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM omi_outbox WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    let found = entry(&row)?;
    if changed == 0 && found.state != OutboxState::Pending {
        return Err(StoreError::Conflict(format!(
            "the outbox item is {}, not dead",
            found.state.as_str()
        )));
    }
    Ok(found)
}

pub async fn counts(c: &mut PgConnection, uid: Option<&Uid>) -> Result<OutboxCounts, StoreError> {
    let uid = uid.map(Uid::as_str);
    let row = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'dead'),
                COUNT(*) FILTER (WHERE state = 'done'), MIN(created_at) FILTER (WHERE state = 'pending')
         FROM omi_outbox WHERE $1::TEXT IS NULL OR uid = $1",
    )
    .bind(uid)
    .fetch_one(&mut *c)
    .await
    .map_err(db_error)?;
    let last = sqlx::query(
        "SELECT last_error, COALESCE(next_attempt_at, created_at) FROM omi_outbox
         WHERE ($1::TEXT IS NULL OR uid = $1) AND state <> 'done' AND last_error IS NOT NULL
         ORDER BY COALESCE(next_attempt_at, created_at) DESC LIMIT 1",
    )
    .bind(uid)
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .map(|r| Ok::<_, StoreError>((col::<String>(&r, 0)?, col::<i64>(&r, 1)?)))
    .transpose()?;
    Ok(OutboxCounts {
        pending: col::<i64>(&row, 0)? as u64,
        dead: col::<i64>(&row, 1)? as u64,
        delivered: col::<i64>(&row, 2)? as u64,
        oldest_pending_at: col::<Option<i64>>(&row, 3)?.map(Timestamp::from_micros),
        last_error: last.as_ref().map(|(e, _)| e.clone()),
        last_error_at: last.map(|(_, at)| Timestamp::from_micros(at)),
    })
}

pub async fn forget_delivered(c: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM omi_outbox WHERE state = 'done' AND delivered_at < $1")
        .bind(before.as_micros())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_error)
}

pub async fn checkpoint(
    c: &mut PgConnection,
    uid: &Uid,
    resource: &str,
) -> Result<Option<u32>, StoreError> {
    sqlx::query_scalar::<_, i64>(
        "SELECT next_offset FROM omi_pull_checkpoints WHERE uid = $1 AND resource = $2",
    )
    .bind(uid.as_str())
    .bind(resource)
    .fetch_optional(c)
    .await
    .map(|o| o.map(|v| u32::try_from(v).unwrap_or(0)))
    .map_err(db_error)
}

/// `None` clears the checkpoint (the resource was pulled completely).
pub async fn set_checkpoint(
    c: &mut PgConnection,
    uid: &Uid,
    resource: &str,
    next_offset: Option<u32>,
) -> Result<(), StoreError> {
    accounts::lock_user(c, uid).await?;
    let query = match next_offset {
        Some(offset) => sqlx::query(
            "INSERT INTO omi_pull_checkpoints (uid, resource, next_offset, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (uid, resource) DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
        )
        .bind(uid.as_str())
        .bind(resource)
        .bind(i64::from(offset))
        .bind(Timestamp::now().as_micros()),
        None => sqlx::query("DELETE FROM omi_pull_checkpoints WHERE uid = $1 AND resource = $2")
            .bind(uid.as_str())
            .bind(resource),
    };
    query.execute(c).await.map(drop).map_err(db_error)
}

/// Stores tasks pulled from Omi; one already known (same origin) is left as it is. Returns how many
/// were new.
pub async fn save_tasks(
    c: &mut PgConnection,
    uid: &Uid,
    tasks: Vec<NewTask>,
) -> Result<u64, StoreError> {
    accounts::lock_user(c, uid).await?;
    let now = Timestamp::now().as_micros();
    let mut added = 0;
    for t in tasks {
        added += sqlx::query(
            "INSERT INTO tasks (uid, id, origin, description, completed, due_at, completed_at,
                                conversation_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (uid, origin) DO NOTHING",
        )
        .bind(uid.as_str())
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&t.origin)
        .bind(t.description.as_str())
        .bind(t.completed)
        .bind(t.due_at.map(Timestamp::as_micros))
        .bind(t.completed.then_some(now))
        .bind(&t.conversation_id)
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(db_error)?
        .rows_affected();
    }
    Ok(added)
}

pub async fn record_status(
    c: &mut PgConnection,
    upstream: &str,
    status: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO omi_upstream_status (upstream, status, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (upstream) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(upstream)
    .bind(status.to_string())
    .bind(Timestamp::now().as_micros())
    .execute(c)
    .await
    .map(drop)
    .map_err(db_error)
}

pub async fn statuses(c: &mut PgConnection) -> Result<Vec<UpstreamStatus>, StoreError> {
    sqlx::query("SELECT upstream, status, updated_at FROM omi_upstream_status ORDER BY upstream")
        .fetch_all(c)
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| {
            Ok(UpstreamStatus {
                upstream: col(r, 0)?,
                status: serde_json::from_str(&col::<String>(r, 1)?).unwrap_or_default(),
                recorded_at: Timestamp::from_micros(col(r, 2)?),
            })
        })
        .collect()
}
