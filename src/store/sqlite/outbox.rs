//! The Omi outbox, sync settings and pull checkpoints. Items are enqueued by triggers (migration 6) in
//! the transaction that writes the memory or conversation; this file reads and settles them.

use rusqlite::{Connection, OptionalExtension, params};

use super::{db_error, stored};
use crate::domain::{Cursor, NewTask, Timestamp, Uid};
use crate::store::{
    OutboxCounts, OutboxEntry, OutboxItem, OutboxKind, OutboxOutcome, OutboxState, Page,
    PageRequest, StoreError, StoredSyncLists, SyncSettings,
};

pub fn sync_settings(conn: &Connection, uid: &Uid) -> Result<SyncSettings, StoreError> {
    super::accounts::require_user(conn, uid)?;
    let row = conn
        .prepare_cached(
            "SELECT push_memories, push_tags, push_categories, push_sources, notify_events, updated_at
             FROM omi_sync_settings WHERE uid = ?1",
        )
        .and_then(|mut s| {
            s.query_row([uid.as_str()], |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .optional()
        })
        .map_err(db_error)?;
    let Some((push, tags, categories, sources, notify, updated_at)) = row else {
        return Ok(SyncSettings::default());
    };
    let lists = StoredSyncLists {
        tags,
        categories,
        sources,
        notify,
    };
    Ok(SyncSettings::from_stored(push, &lists, updated_at))
}

pub fn set_sync_settings(
    conn: &Connection,
    uid: &Uid,
    settings: SyncSettings,
) -> Result<SyncSettings, StoreError> {
    super::accounts::require_user(conn, uid)?;
    let lists = settings.stored_lists();
    let now = Timestamp::now();
    conn.prepare_cached(
        "INSERT INTO omi_sync_settings (uid, push_memories, push_tags, push_categories, push_sources, notify_events, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (uid) DO UPDATE SET push_memories = excluded.push_memories, push_tags = excluded.push_tags,
             push_categories = excluded.push_categories, push_sources = excluded.push_sources,
             notify_events = excluded.notify_events, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid.as_str(),
            settings.push_memories,
            lists.tags,
            lists.categories,
            lists.sources,
            lists.notify,
            now.as_micros()
        ])
    })
    .map_err(db_error)?;
    sync_settings(conn, uid)
}

pub fn due(conn: &Connection, now: Timestamp, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
    conn.prepare_cached(
        "SELECT uid, id, kind, payload, attempts, request_id FROM omi_outbox
         WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, created_at LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![now.as_micros(), limit], |r| {
            let uid: String = r.get(0)?;
            let kind: String = r.get(2)?;
            let payload: String = r.get(3)?;
            Ok(OutboxItem {
                uid: stored(Uid::parse(uid))?,
                id: r.get(1)?,
                kind: OutboxKind::parse(&kind).unwrap_or(OutboxKind::Memory),
                payload: serde_json::from_str(&payload).unwrap_or_default(),
                attempts: r.get(4)?,
                request_id: r.get(5)?,
            })
        })?
        .collect()
    })
    .map_err(db_error)
}

/// Settles attempts. Only pending items change: an item an operator touched meanwhile stays as it is.
pub fn settle(
    conn: &Connection,
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
        conn.prepare_cached(
            "UPDATE omi_outbox SET state = ?3, next_attempt_at = ?4, attempts = attempts + ?5,
                    last_error = COALESCE(?6, last_error), delivered_at = ?7
             WHERE uid = ?1 AND id = ?2 AND state = 'pending'",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid.as_str(),
                id,
                state,
                next,
                i64::from(counted),
                error,
                delivered
            ])
        })
        .map_err(db_error)?;
    }
    Ok(())
}

const ENTRY_COLUMNS: &str = "id, uid, kind, state, memory_id, attempts, created_at, next_attempt_at, delivered_at, last_error";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let uid: String = r.get(1)?;
    let kind: String = r.get(2)?;
    let state: String = r.get(3)?;
    Ok(OutboxEntry {
        id: r.get(0)?,
        uid: stored(Uid::parse(uid))?,
        kind: OutboxKind::parse(&kind).unwrap_or(OutboxKind::Memory),
        state: OutboxState::parse(&state).unwrap_or(OutboxState::Pending),
        memory_id: r.get(4)?,
        attempts: r.get(5)?,
        created_at: Timestamp::from_micros(r.get(6)?),
        next_attempt_at: r.get::<_, Option<i64>>(7)?.map(Timestamp::from_micros),
        delivered_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_micros),
        last_error: r.get(9)?,
    })
}

/// Oldest first, across users (an operator's view).
pub fn list(
    conn: &Connection,
    state: OutboxState,
    page: &PageRequest,
) -> Result<Page<OutboxEntry>, StoreError> {
    let (after_at, after_id) = page.position_or(i64::MIN);
    let mut items = conn
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM omi_outbox WHERE state = ?1 AND (created_at, id) > (?2, ?3)
             ORDER BY created_at, id LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    state.as_str(),
                    after_at,
                    after_id,
                    i64::from(page.limit) + 1
                ],
                entry,
            )?
            .collect()
        })
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, page.limit, |e: &OutboxEntry| {
        Cursor::new(e.created_at.as_micros(), e.id.clone())
    }))
}

/// Puts a dead item back in the queue, with a fresh attempt count.
pub fn retry(conn: &Connection, id: &str) -> Result<OutboxEntry, StoreError> {
    let changed = conn
        .execute(
            "UPDATE omi_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?2 WHERE id = ?1 AND state = 'dead'",
            params![id, Timestamp::now().as_micros()],
        )
        .map_err(db_error)?;
    let found = conn
        .query_row(
            &format!("SELECT {ENTRY_COLUMNS} FROM omi_outbox WHERE id = ?1"),
            [id],
            entry,
        )
        .optional()
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
    if changed == 0 && found.state != OutboxState::Pending {
        return Err(StoreError::Conflict(format!(
            "the outbox item is {}, not dead",
            found.state.as_str()
        )));
    }
    Ok(found)
}

pub fn counts(conn: &Connection, uid: Option<&Uid>) -> Result<OutboxCounts, StoreError> {
    let uid = uid.map(Uid::as_str);
    let (pending, dead, delivered, oldest) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'dead'), 0),
                    COALESCE(SUM(state = 'done'), 0), MIN(CASE WHEN state = 'pending' THEN created_at END)
             FROM omi_outbox WHERE ?1 IS NULL OR uid = ?1",
        )
        .and_then(|mut s| {
            s.query_row([uid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
        })
        .map_err(db_error)?;
    let last = conn
        .prepare_cached(
            "SELECT last_error, COALESCE(next_attempt_at, created_at) FROM omi_outbox
             WHERE (?1 IS NULL OR uid = ?1) AND state <> 'done' AND last_error IS NOT NULL
             ORDER BY COALESCE(next_attempt_at, created_at) DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([uid], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .optional()
        })
        .map_err(db_error)?;
    Ok(OutboxCounts {
        pending: pending as u64,
        dead: dead as u64,
        delivered: delivered as u64,
        oldest_pending_at: oldest.map(Timestamp::from_micros),
        last_error: last.as_ref().map(|(e, _)| e.clone()),
        last_error_at: last.map(|(_, at)| Timestamp::from_micros(at)),
    })
}

pub fn forget_delivered(conn: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM omi_outbox WHERE state = 'done' AND delivered_at < ?1",
        [before.as_micros()],
    )
    .map(|n| n as u64)
    .map_err(db_error)
}

pub fn checkpoint(conn: &Connection, uid: &Uid, resource: &str) -> Result<Option<u32>, StoreError> {
    conn.prepare_cached(
        "SELECT next_offset FROM omi_pull_checkpoints WHERE uid = ?1 AND resource = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), resource], |r| r.get::<_, i64>(0))
            .optional()
    })
    .map(|o| o.map(|v| u32::try_from(v).unwrap_or(0)))
    .map_err(db_error)
}

/// `None` clears the checkpoint (the resource was pulled completely).
pub fn set_checkpoint(
    conn: &Connection,
    uid: &Uid,
    resource: &str,
    next_offset: Option<u32>,
) -> Result<(), StoreError> {
    super::accounts::require_user(conn, uid)?;
    match next_offset {
        Some(offset) => conn.execute(
            "INSERT INTO omi_pull_checkpoints (uid, resource, next_offset, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uid, resource) DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            params![uid.as_str(), resource, i64::from(offset), Timestamp::now().as_micros()],
        ),
        None => conn.execute(
            "DELETE FROM omi_pull_checkpoints WHERE uid = ?1 AND resource = ?2",
            params![uid.as_str(), resource],
        ),
    }
    .map(drop)
    .map_err(db_error)
}

/// Stores tasks pulled from Omi; one already known (same origin) is left as it is. Returns how many
/// were new.
pub fn save_tasks(conn: &Connection, uid: &Uid, tasks: Vec<NewTask>) -> Result<u64, StoreError> {
    super::accounts::require_user(conn, uid)?;
    let now = Timestamp::now().as_micros();
    let mut added = 0;
    for t in tasks {
        added += conn
            .prepare_cached(
                "INSERT OR IGNORE INTO tasks (uid, id, origin, description, completed, due_at, completed_at,
                                              conversation_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    uid.as_str(),
                    uuid::Uuid::now_v7().to_string(),
                    t.origin,
                    t.description.as_str(),
                    t.completed,
                    t.due_at.map(Timestamp::as_micros),
                    t.completed.then_some(now),
                    t.conversation_id,
                    now
                ])
            })
            .map_err(db_error)? as u64;
    }
    Ok(added)
}

pub fn record_status(
    conn: &Connection,
    upstream: &str,
    status: &serde_json::Value,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO omi_upstream_status (upstream, status, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (upstream) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![upstream, status.to_string(), Timestamp::now().as_micros()]))
    .map(drop)
    .map_err(db_error)
}

pub fn statuses(conn: &Connection) -> Result<Vec<crate::store::UpstreamStatus>, StoreError> {
    conn.prepare_cached(
        "SELECT upstream, status, updated_at FROM omi_upstream_status ORDER BY upstream",
    )
    .and_then(|mut s| {
        s.query_map([], |r| {
            let status: String = r.get(1)?;
            Ok(crate::store::UpstreamStatus {
                upstream: r.get(0)?,
                status: serde_json::from_str(&status).unwrap_or_default(),
                recorded_at: Timestamp::from_micros(r.get(2)?),
            })
        })?
        .collect()
    })
    .map_err(db_error)
}
