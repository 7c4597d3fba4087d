//! What Omi's events derive: conversations, transcript segments, tasks, day summaries. Every derived
//! change commits in the same transaction as its event's mark in `applied_events`, so an event is
//! applied at most once however the process stops (the events themselves are in `inbox`).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use uuid::Uuid;

use super::{accounts, db_error, memories};
use crate::domain::{
    Conversation, ConversationEvent, Cursor, MemoryId, NewTask, Task, Timestamp, TranscriptSegment,
    Uid,
};
use crate::store::{
    Context, ConversationDetail, ConversationWork, Created, DaySummaryWork, EventKind, EventWork,
    MemoryPatch, Page, PageRequest, StoreError, TaskFilter, TaskPatch, TranscriptWork,
};

pub(super) fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// Stores new live segments and creates the memories their trigger phrases ask for. A segment seen
/// before (a repeated batch) creates nothing again. The answer says what was remembered. Processed before its event is recorded in the inbox: a crash
/// between the two is not acknowledged, and Omi's retry finds its segments here already.
pub fn apply_transcript(
    conn: &Connection,
    uid: &Uid,
    work: TranscriptWork,
    ctx: &Context,
) -> Result<serde_json::Value, StoreError> {
    let now = Timestamp::now();
    let mut remembered = Vec::new();
    for (segment, capture) in work.segments {
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO live_segments (uid, id, session_id, text, speaker, speaker_id, is_user, person_id,
                                                      start_seconds, end_seconds, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    uid.as_str(),
                    segment.id,
                    work.session_id,
                    segment.text,
                    segment.speaker,
                    segment.speaker_id,
                    segment.is_user,
                    segment.person_id,
                    segment.start,
                    segment.end,
                    now.as_micros()
                ])
            })
            .map_err(db_error)?;
        if let (1, Some(memory)) = (inserted, capture) {
            let created = memories::create(conn, uid, memory, ctx)?;
            remembered.push(created.into_memory().content.as_str().to_owned());
        }
    }
    Ok(if remembered.is_empty() {
        json!({})
    } else {
        json!({"message": format!("Remembered: {}", remembered.join("; "))})
    })
}

/// Applies an event's work with its mark in `applied_events`, in one transaction; `false` (and nothing
/// applied) when the mark is there already, or the user was deleted meanwhile. See `inbox` for why.
pub fn apply_event(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    (kind, dedupe_key): (EventKind, Option<String>),
    work: EventWork,
    ctx: &Context,
) -> Result<bool, StoreError> {
    if !accounts::user_exists(conn, uid)? {
        return Ok(false);
    }
    // The mark comes first: the outbox's triggers look for pulled conversations' marks.
    let marked = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO applied_events (uid, id, kind, dedupe_key, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![uid.as_str(), id, kind.as_str(), dedupe_key, Timestamp::now().as_micros()])
        })
        .map_err(db_error)?;
    if marked == 0 {
        return Ok(false);
    }
    match work {
        EventWork::Conversation(work) => apply_conversation(conn, uid, *work, ctx)?,
        EventWork::DaySummary(work) => apply_day_summary(conn, uid, work, ctx)?,
        EventWork::Nothing => {}
    }
    Ok(true)
}

/// Forgets the marks of events applied before the cutoff: the inbox forgets those events then too.
pub fn forget_applied(conn: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM applied_events WHERE applied_at < ?1",
        [before.as_micros()],
    )
    .map(|n| n as u64)
    .map_err(db_error)
}

pub(super) fn apply_conversation(
    conn: &Connection,
    uid: &Uid,
    work: ConversationWork,
    ctx: &Context,
) -> Result<(), StoreError> {
    let c = &work.conversation;
    let previous: Option<(Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT memory_id, deliveries FROM conversations WHERE uid = ?1 AND id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![uid.as_str(), c.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db_error)?;
    let previous_memory = previous
        .as_ref()
        .and_then(|(m, _)| m.as_deref())
        .and_then(|m| MemoryId::parse(m).ok());
    let memory_id = match (work.summary, previous_memory) {
        (Some(summary), None) if previous.as_ref().is_none_or(|(m, _)| m.is_none()) => Some(
            memories::create(conn, uid, summary, ctx)
                .map(Created::into_memory)?
                .id,
        ),
        (Some(summary), Some(id)) => {
            update_summary(conn, uid, id, summary, ctx)?;
            Some(id)
        }
        (_, previous) => previous,
    };
    let deliveries = previous.map_or(1, |(_, d)| d + 1);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO conversations (uid, id, title, overview, emoji, category, source, language, created_at,
             started_at, finished_at, discarded, imported_by_this_app, geolocation, folder_name, apps_results,
             memory_id, deliveries, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid.as_str(),
            c.id,
            c.title,
            c.overview,
            c.emoji,
            c.category,
            c.source,
            c.language,
            c.created_at.as_micros(),
            c.started_at.map(Timestamp::as_micros),
            c.finished_at.map(Timestamp::as_micros),
            c.discarded,
            c.imported_by_this_app,
            c.geolocation.as_ref().map(|g| g.to_string()),
            c.folder_name,
            serde_json::Value::from(c.apps_results.clone()).to_string(),
            memory_id.map(|m| m.to_string()),
            deliveries,
            Timestamp::now().as_micros(),
        ])
    })
    .map_err(db_error)?;
    for table in ["transcript_segments", "conversation_events"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE uid = ?1 AND conversation_id = ?2"
        ))
        .and_then(|mut s| s.execute(params![uid.as_str(), c.id]))
        .map_err(db_error)?;
    }
    for (position, s) in work.segments.iter().enumerate() {
        conn.prepare_cached(
            "INSERT INTO transcript_segments (uid, conversation_id, position, id, text, speaker, speaker_id,
                 speaker_name, is_user, person_id, start_seconds, end_seconds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .and_then(|mut st| {
            st.execute(params![
                uid.as_str(),
                c.id,
                position as i64,
                s.id,
                s.text,
                s.speaker,
                s.speaker_id,
                s.speaker_name,
                s.is_user,
                s.person_id,
                s.start,
                s.end
            ])
        })
        .map_err(db_error)?;
    }
    for (position, e) in work.events.iter().enumerate() {
        conn.prepare_cached(
            "INSERT INTO conversation_events (uid, conversation_id, position, title, description, start, duration_minutes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![
                uid.as_str(),
                c.id,
                position as i64,
                e.title,
                e.description,
                e.start.map(Timestamp::as_micros),
                e.duration_minutes
            ])
        })
        .map_err(db_error)?;
    }
    upsert_tasks(conn, uid, &work.tasks)
}

/// A re-delivered conversation updates its summary memory as a new version. A memory the user
/// deleted stays deleted, and an update that would duplicate another memory is skipped.
fn update_summary(
    conn: &Connection,
    uid: &Uid,
    id: MemoryId,
    summary: crate::store::NewMemory,
    ctx: &Context,
) -> Result<(), StoreError> {
    let current = match memories::get(conn, uid, id) {
        Ok(m) if !m.is_deleted() => m,
        Ok(_) | Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    let patch = MemoryPatch {
        content: Some(summary.content),
        tags: Some(summary.tags),
        metadata: Some(summary.metadata),
        occurred_at: summary.occurred_at,
        ..MemoryPatch::default()
    };
    match memories::update(conn, uid, id, current.version, patch, ctx) {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// New action items become tasks; known ones (same origin) keep the user's completion state and
/// take Omi's newer due date.
fn upsert_tasks(conn: &Connection, uid: &Uid, tasks: &[NewTask]) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    for t in tasks {
        conn.prepare_cached(
            "INSERT INTO tasks (uid, id, origin, description, completed, due_at, completed_at, conversation_id,
                                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
             ON CONFLICT (uid, origin) DO UPDATE SET due_at = excluded.due_at, updated_at = excluded.updated_at
             WHERE tasks.due_at IS NOT excluded.due_at",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid.as_str(),
                new_id(),
                t.origin,
                t.description.as_str(),
                t.completed,
                t.due_at.map(Timestamp::as_micros),
                t.completed.then_some(now),
                t.conversation_id,
                now
            ])
        })
        .map_err(db_error)?;
    }
    Ok(())
}

fn apply_day_summary(
    conn: &Connection,
    uid: &Uid,
    work: DaySummaryWork,
    ctx: &Context,
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    conn.prepare_cached(
        "INSERT INTO day_summaries (uid, key, date, summary, received_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (uid, key) DO UPDATE SET summary = excluded.summary, date = excluded.date, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![uid.as_str(), work.key, work.date, work.summary.to_string(), now]))
    .map_err(db_error)?;
    // Identical content returns the existing memory, so a re-delivered summary adds nothing.
    for memory in work.memories {
        memories::create(conn, uid, memory, ctx)?;
    }
    upsert_tasks(conn, uid, &work.tasks)
}

pub(super) const CONVERSATION_COLUMNS: &str = "id, title, overview, emoji, category, source, language, created_at, started_at, \
     finished_at, discarded, imported_by_this_app, geolocation, folder_name, apps_results, memory_id, deliveries, updated_at";

pub(super) fn conversation_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conversation> {
    let geolocation: Option<String> = r.get(12)?;
    let apps_results: String = r.get(14)?;
    let memory_id: Option<String> = r.get(15)?;
    Ok(Conversation {
        id: r.get(0)?,
        title: r.get(1)?,
        overview: r.get(2)?,
        emoji: r.get(3)?,
        category: r.get(4)?,
        source: r.get(5)?,
        language: r.get(6)?,
        created_at: Timestamp::from_micros(r.get(7)?),
        started_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_micros),
        finished_at: r.get::<_, Option<i64>>(9)?.map(Timestamp::from_micros),
        discarded: r.get(10)?,
        imported_by_this_app: r.get(11)?,
        geolocation: geolocation.and_then(|g| serde_json::from_str(&g).ok()),
        folder_name: r.get(13)?,
        apps_results: serde_json::from_str(&apps_results).unwrap_or_default(),
        memory_id: memory_id.and_then(|m| MemoryId::parse(&m).ok()),
        deliveries: r.get(16)?,
        updated_at: Timestamp::from_micros(r.get(17)?),
    })
}

/// Newest first.
pub fn conversations(
    conn: &Connection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<Conversation>, StoreError> {
    let (before_at, before_id) = page.position_or(i64::MAX);
    let mut items = conn
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE uid = ?1 AND (created_at, id) < (?2, ?3)
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        ))
        .and_then(|mut s| {
            s.query_map(params![uid.as_str(), before_at, before_id, i64::from(page.limit) + 1], conversation_from_row)?
                .collect()
        })
        .map_err(db_error)?;
    Ok(super::page_of(
        &mut items,
        page.limit,
        |c: &Conversation| Cursor::new(c.created_at.as_micros(), c.id.clone()),
    ))
}

pub fn conversation(
    conn: &Connection,
    uid: &Uid,
    id: &str,
) -> Result<ConversationDetail, StoreError> {
    let conversation = conn
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE uid = ?1 AND id = ?2"
        ))
        .and_then(|mut s| {
            s.query_row(params![uid.as_str(), id], conversation_from_row)
                .optional()
        })
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
    let transcript_segments = conn
        .prepare_cached(
            "SELECT id, text, speaker, speaker_id, speaker_name, is_user, person_id, start_seconds, end_seconds
             FROM transcript_segments WHERE uid = ?1 AND conversation_id = ?2 ORDER BY position",
        )
        .and_then(|mut s| {
            s.query_map(params![uid.as_str(), id], |r| {
                Ok(TranscriptSegment {
                    id: r.get(0)?,
                    text: r.get(1)?,
                    speaker: r.get(2)?,
                    speaker_id: r.get(3)?,
                    speaker_name: r.get(4)?,
                    is_user: r.get(5)?,
                    person_id: r.get(6)?,
                    start: r.get(7)?,
                    end: r.get(8)?,
                })
            })?
            .collect()
        })
        .map_err(db_error)?;
    let events = conn
        .prepare_cached(
            "SELECT title, description, start, duration_minutes FROM conversation_events
             WHERE uid = ?1 AND conversation_id = ?2 ORDER BY position",
        )
        .and_then(|mut s| {
            s.query_map(params![uid.as_str(), id], |r| {
                Ok(ConversationEvent {
                    title: r.get(0)?,
                    description: r.get(1)?,
                    start: r.get::<_, Option<i64>>(2)?.map(Timestamp::from_micros),
                    duration_minutes: r.get(3)?,
                })
            })?
            .collect()
        })
        .map_err(db_error)?;
    let filter = TaskFilter {
        completed: None,
        conversation_id: Some(id.to_owned()),
    };
    let tasks = tasks(
        conn,
        uid,
        &filter,
        &PageRequest::first(PageRequest::MAX_LIMIT),
    )?
    .items;
    Ok(ConversationDetail {
        conversation,
        transcript_segments,
        events,
        tasks,
    })
}

pub(super) const TASK_COLUMNS: &str =
    "id, description, completed, due_at, completed_at, conversation_id, created_at, updated_at";

pub(super) fn task_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        description: r.get(1)?,
        completed: r.get(2)?,
        due_at: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
        completed_at: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
        conversation_id: r.get(5)?,
        created_at: Timestamp::from_micros(r.get(6)?),
        updated_at: Timestamp::from_micros(r.get(7)?),
    })
}

/// Newest first.
pub fn tasks(
    conn: &Connection,
    uid: &Uid,
    filter: &TaskFilter,
    page: &PageRequest,
) -> Result<Page<Task>, StoreError> {
    let (before_at, before_id) = page.position_or(i64::MAX);
    let mut items = conn
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE uid = ?1 AND (created_at, id) < (?2, ?3)
               AND (?4 IS NULL OR completed = ?4) AND (?5 IS NULL OR conversation_id = ?5)
             ORDER BY created_at DESC, id DESC LIMIT ?6"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![
                    uid.as_str(),
                    before_at,
                    before_id,
                    filter.completed,
                    filter.conversation_id,
                    i64::from(page.limit) + 1
                ],
                task_from_row,
            )?
            .collect()
        })
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, page.limit, |t: &Task| {
        Cursor::new(t.created_at.as_micros(), t.id.clone())
    }))
}

fn task(conn: &Connection, uid: &Uid, id: &str) -> Result<Task, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE uid = ?1 AND id = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), id], task_from_row)
            .optional()
    })
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)
}

pub fn update_task(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    patch: TaskPatch,
    ctx: &Context,
) -> Result<Task, StoreError> {
    let mut t = task(conn, uid, id)?;
    let mut changed = Vec::new();
    if let Some(description) = patch.description.filter(|d| d.as_str() != t.description) {
        t.description = String::from(description);
        changed.push("description");
    }
    if let Some(completed) = patch.completed.filter(|c| *c != t.completed) {
        t.completed = completed;
        t.completed_at = completed.then(Timestamp::now);
        changed.push("completed");
    }
    if let Some(due_at) = patch.due_at.filter(|d| *d != t.due_at) {
        t.due_at = due_at;
        changed.push("due_at");
    }
    if changed.is_empty() {
        return Ok(t);
    }
    t.updated_at = Timestamp::now();
    conn.prepare_cached(
        "UPDATE tasks SET description = ?3, completed = ?4, completed_at = ?5, due_at = ?6, updated_at = ?7
         WHERE uid = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid.as_str(),
            id,
            t.description,
            t.completed,
            t.completed_at.map(Timestamp::as_micros),
            t.due_at.map(Timestamp::as_micros),
            t.updated_at.as_micros()
        ])
    })
    .map_err(db_error)?;
    super::audit::append(
        conn,
        uid,
        "task.update",
        None,
        ctx,
        json!({"task_id": id, "changed": changed}),
    )?;
    Ok(t)
}

pub fn is_setup(conn: &Connection, uid: &Uid) -> Result<bool, StoreError> {
    accounts::user_exists(conn, uid)
}
