//! The inbox of Omi events and what they derive: conversations, transcript segments, tasks, day
//! summaries. Every derived change commits in the same transaction that marks its event done, so an
//! event is processed exactly once however an instance stops. Workers of all instances share the
//! inbox: each claims due events with `FOR UPDATE SKIP LOCKED` and a lease (`claimed_until`).

use serde_json::json;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::rows::{col, db_error, is_unique_violation, page_limit, page_of, stored, transient};
use super::{accounts, memories};
use crate::domain::{
    Conversation, ConversationEvent, Cursor, MemoryId, NewTask, Task, Timestamp, TranscriptSegment,
    Uid,
};
use crate::store::{
    Context, ConversationDetail, ConversationWork, Created, DaySummaryWork, DueEvent, EventKind,
    EventWork, InboxEntry, InboxState, Ingested, MemoryPatch, NewInboxEvent, Page, PageRequest,
    StoreError, TaskFilter, TaskPatch, TranscriptWork,
};

pub(super) fn new_id() -> String {
    Uuid::now_v7().to_string()
}

async fn earlier_copy(
    c: &mut PgConnection,
    uid: &Uid,
    kind: EventKind,
    key: &str,
) -> Result<Option<Ingested>, StoreError> {
    let row = sqlx::query(
        "SELECT id, response FROM inbox_events WHERE uid = $1 AND kind = $2 AND dedupe_key = $3",
    )
    .bind(uid.as_str())
    .bind(kind.as_str())
    .bind(key)
    .fetch_optional(c)
    .await
    .map_err(db_error)?;
    row.map(|r| {
        let response = serde_json::from_str(&col::<String>(&r, 1)?).unwrap_or_else(|_| json!({}));
        Ok(Ingested::Repeat {
            event_id: col(&r, 0)?,
            response,
        })
    })
    .transpose()
}

/// Records an event (or finds its earlier copy). Transcript batches are processed right here.
pub async fn ingest(
    c: &mut PgConnection,
    uid: &Uid,
    auto_create_user: bool,
    event: NewInboxEvent,
    transcript: Option<TranscriptWork>,
    ctx: &Context,
) -> Result<Ingested, StoreError> {
    if !accounts::user_exists(c, uid).await? {
        if !auto_create_user {
            return Ok(Ingested::UnknownUser);
        }
        // Another instance may create the same user at the same moment: either insert wins.
        sqlx::query(
            "INSERT INTO users (uid, created_at) VALUES ($1, $2) ON CONFLICT (uid) DO NOTHING",
        )
        .bind(uid.as_str())
        .bind(Timestamp::now().as_micros())
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    // No user lock here: acknowledging a webhook never waits for the user's other writes. Two copies
    // racing past this check meet at the unique index, and the loser runs again and finds the winner.
    if let Some(key) = &event.dedupe_key
        && let Some(repeat) = earlier_copy(c, uid, event.kind, key).await?
    {
        return Ok(repeat);
    }
    let now = Timestamp::now();
    let event_id = new_id();
    let (state, response) = match transcript {
        Some(work) => (
            InboxState::Done,
            apply_transcript(c, uid, work, now, ctx).await?,
        ),
        None => (InboxState::Pending, json!({})),
    };
    let done = state == InboxState::Done;
    let inserted = sqlx::query(
        "INSERT INTO inbox_events (uid, id, kind, dedupe_key, body, state, attempts, next_attempt_at, response,
                                   received_at, processed_at)
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10)",
    )
    .bind(uid.as_str())
    .bind(&event_id)
    .bind(event.kind.as_str())
    .bind(&event.dedupe_key)
    .bind(&event.body)
    .bind(state.as_str())
    .bind((!done).then_some(now.as_micros()))
    .bind(response.to_string())
    .bind(now.as_micros())
    .bind(done.then_some(now.as_micros()))
    .execute(&mut *c)
    .await;
    match inserted {
        Ok(_) => Ok(Ingested::New { event_id, response }),
        Err(e) if is_unique_violation(&e) => Err(transient(
            "another copy of this event was recorded at the same moment",
        )),
        Err(e) => Err(db_error(e)),
    }
}

/// Stores new live segments and creates the memories their trigger phrases ask for. A segment seen
/// before (a repeated batch) creates nothing again.
async fn apply_transcript(
    c: &mut PgConnection,
    uid: &Uid,
    work: TranscriptWork,
    now: Timestamp,
    ctx: &Context,
) -> Result<serde_json::Value, StoreError> {
    let mut remembered = Vec::new();
    for (segment, capture) in work.segments {
        let inserted = sqlx::query(
            "INSERT INTO live_segments (uid, id, session_id, text, speaker, speaker_id, is_user, person_id,
                                        start_seconds, end_seconds, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (uid, id) DO NOTHING",
        )
        .bind(uid.as_str())
        .bind(&segment.id)
        .bind(&work.session_id)
        .bind(&segment.text)
        .bind(&segment.speaker)
        .bind(segment.speaker_id)
        .bind(segment.is_user)
        .bind(&segment.person_id)
        .bind(segment.start)
        .bind(segment.end)
        .bind(now.as_micros())
        .execute(&mut *c)
        .await
        .map_err(db_error)?
        .rows_affected();
        if let (1, Some(memory)) = (inserted, capture) {
            let created = memories::create(c, uid, memory, ctx).await?;
            remembered.push(created.into_memory().content.as_str().to_owned());
        }
    }
    Ok(if remembered.is_empty() {
        json!({})
    } else {
        json!({"message": format!("Remembered: {}", remembered.join("; "))})
    })
}

/// Claims due events for this worker: each is leased until `now + lease`, and other instances skip
/// it meanwhile (rows another worker is claiming are skipped, not waited for). When the lease runs out
/// unfinished — its worker died — the event is due again for everyone.
pub async fn claim_due(
    c: &mut PgConnection,
    instance: &str,
    now: Timestamp,
    lease_micros: i64,
    limit: u32,
) -> Result<Vec<DueEvent>, StoreError> {
    let rows = sqlx::query(
        "WITH due AS (
             SELECT uid, id FROM inbox_events
             WHERE state = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
             ORDER BY next_attempt_at LIMIT $3
             FOR UPDATE SKIP LOCKED)
         UPDATE inbox_events e SET claimed_until = $1 + $2, claimed_by = $4
         FROM due WHERE e.uid = due.uid AND e.id = due.id
         RETURNING e.uid, e.id, e.kind, e.attempts, e.received_at, e.body, e.next_attempt_at",
    )
    .bind(now.as_micros())
    .bind(lease_micros)
    .bind(i64::from(limit))
    .bind(instance)
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let mut due = rows
        .iter()
        .map(|r| {
            Ok((
                col::<Option<i64>>(r, 6)?,
                DueEvent {
                    uid: stored(Uid::parse(col::<String>(r, 0)?))?,
                    id: col(r, 1)?,
                    kind: EventKind::parse(&col::<String>(r, 2)?)
                        .unwrap_or(EventKind::Conversation),
                    attempts: col(r, 3)?,
                    received_at: Timestamp::from_micros(col(r, 4)?),
                    body: col(r, 5)?,
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // UPDATE … RETURNING does not keep the CTE's order.
    due.sort_by_key(|(at, e)| (*at, e.id.clone()));
    Ok(due.into_iter().map(|(_, e)| e).collect())
}

/// Applies an event's work and marks it done, unless another worker finished it first.
pub async fn complete(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    work: EventWork,
    ctx: &Context,
) -> Result<bool, StoreError> {
    // The user first (the order every write takes), then the event itself: a second worker holding
    // the same event waits here and then finds it done.
    if accounts::lock_user(c, uid).await.is_err() {
        return Ok(false);
    }
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM inbox_events WHERE uid = $1 AND id = $2 FOR UPDATE")
            .bind(uid.as_str())
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_error)?;
    if state.as_deref() != Some("pending") {
        return Ok(false);
    }
    match work {
        EventWork::Conversation(work) => apply_conversation(c, uid, *work, ctx).await?,
        EventWork::DaySummary(work) => apply_day_summary(c, uid, work, ctx).await?,
        EventWork::Nothing => {}
    }
    sqlx::query(
        "UPDATE inbox_events SET state = 'done', processed_at = $3, attempts = attempts + 1, next_attempt_at = NULL,
                last_error = NULL, claimed_until = NULL
         WHERE uid = $1 AND id = $2",
    )
    .bind(uid.as_str())
    .bind(id)
    .bind(Timestamp::now().as_micros())
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(true)
}

/// Records a failed attempt: retried at `retry_at`, or dead when there is none. Ends the lease.
pub async fn fail(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    error: &str,
    retry_at: Option<Timestamp>,
) -> Result<(), StoreError> {
    let state = if retry_at.is_some() {
        "pending"
    } else {
        "dead"
    };
    sqlx::query(
        "UPDATE inbox_events SET state = $3, attempts = attempts + 1, next_attempt_at = $4, last_error = $5,
                claimed_until = NULL
         WHERE uid = $1 AND id = $2 AND state = 'pending'",
    )
    .bind(uid.as_str())
    .bind(id)
    .bind(state)
    .bind(retry_at.map(Timestamp::as_micros))
    .bind(error)
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(())
}

const INBOX_COLUMNS: &str = "id, uid, kind, state, attempts, received_at, next_attempt_at, processed_at, last_error, \
     OCTET_LENGTH(body)::BIGINT";

fn inbox_entry(r: &PgRow) -> Result<InboxEntry, StoreError> {
    Ok(InboxEntry {
        id: col(r, 0)?,
        uid: stored(Uid::parse(col::<String>(r, 1)?))?,
        kind: EventKind::parse(&col::<String>(r, 2)?).unwrap_or(EventKind::Conversation),
        state: InboxState::parse(&col::<String>(r, 3)?).unwrap_or(InboxState::Pending),
        attempts: col(r, 4)?,
        received_at: Timestamp::from_micros(col(r, 5)?),
        next_attempt_at: col::<Option<i64>>(r, 6)?.map(Timestamp::from_micros),
        processed_at: col::<Option<i64>>(r, 7)?.map(Timestamp::from_micros),
        last_error: col(r, 8)?,
        body_bytes: col(r, 9)?,
    })
}

/// Oldest first, across users (an operator's view).
pub async fn list(
    c: &mut PgConnection,
    state: InboxState,
    page: &PageRequest,
) -> Result<Page<InboxEntry>, StoreError> {
    let (after_at, after_id) = page.position_or(i64::MIN);
    let items = sqlx::query(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox_events WHERE state = $1 AND (received_at, id) > ($2, $3)
         ORDER BY received_at, id LIMIT $4"
    ))
    .bind(state.as_str())
    .bind(after_at)
    .bind(after_id)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(inbox_entry)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, page.limit, |e: &InboxEntry| {
        Cursor::new(e.received_at.as_micros(), e.id.clone())
    }))
}

pub async fn retry(c: &mut PgConnection, id: &str) -> Result<InboxEntry, StoreError> {
    let changed = sqlx::query(
        "UPDATE inbox_events SET state = 'pending', next_attempt_at = $2, last_error = NULL, claimed_until = NULL
         WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?
    .rows_affected();
    let row = sqlx::query(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox_events WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    let entry = inbox_entry(&row)?;
    if changed == 0 && entry.state != InboxState::Pending {
        return Err(StoreError::Conflict(format!(
            "the event is {}, not dead",
            entry.state.as_str()
        )));
    }
    Ok(entry)
}

/// Deletes processed events received before the cutoff (the dedupe window ends there).
pub async fn forget_done(c: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM inbox_events WHERE state = 'done' AND received_at < $1")
        .bind(before.as_micros())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_error)
}

pub(super) async fn apply_conversation(
    c: &mut PgConnection,
    uid: &Uid,
    work: ConversationWork,
    ctx: &Context,
) -> Result<(), StoreError> {
    let conv = &work.conversation;
    let previous: Option<(Option<String>, i64)> =
        sqlx::query("SELECT memory_id, deliveries FROM conversations WHERE uid = $1 AND id = $2")
            .bind(uid.as_str())
            .bind(&conv.id)
            .fetch_optional(&mut *c)
            .await
            .map_err(db_error)?
            .map(|r| Ok::<_, StoreError>((col(&r, 0)?, col(&r, 1)?)))
            .transpose()?;
    let previous_memory = previous
        .as_ref()
        .and_then(|(m, _)| m.as_deref())
        .and_then(|m| MemoryId::parse(m).ok());
    let memory_id = match (work.summary, previous_memory) {
        (Some(summary), None) if previous.as_ref().is_none_or(|(m, _)| m.is_none()) => Some(
            memories::create(c, uid, summary, ctx)
                .await
                .map(Created::into_memory)?
                .id,
        ),
        (Some(summary), Some(id)) => {
            update_summary(c, uid, id, summary, ctx).await?;
            Some(id)
        }
        (_, previous) => previous,
    };
    let deliveries = previous.map_or(1, |(_, d)| d + 1);
    let transcript = work
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    sqlx::query(
        "INSERT INTO conversations (uid, id, title, overview, emoji, category, source, language, created_at,
             started_at, finished_at, discarded, imported_by_this_app, geolocation, folder_name, apps_results,
             memory_id, deliveries, updated_at, transcript)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
         ON CONFLICT (uid, id) DO UPDATE SET title = excluded.title, overview = excluded.overview,
             emoji = excluded.emoji, category = excluded.category, source = excluded.source,
             language = excluded.language, created_at = excluded.created_at, started_at = excluded.started_at,
             finished_at = excluded.finished_at, discarded = excluded.discarded,
             imported_by_this_app = excluded.imported_by_this_app, geolocation = excluded.geolocation,
             folder_name = excluded.folder_name, apps_results = excluded.apps_results,
             memory_id = excluded.memory_id, deliveries = excluded.deliveries, updated_at = excluded.updated_at,
             transcript = excluded.transcript",
    )
    .bind(uid.as_str())
    .bind(&conv.id)
    .bind(&conv.title)
    .bind(&conv.overview)
    .bind(&conv.emoji)
    .bind(&conv.category)
    .bind(&conv.source)
    .bind(&conv.language)
    .bind(conv.created_at.as_micros())
    .bind(conv.started_at.map(Timestamp::as_micros))
    .bind(conv.finished_at.map(Timestamp::as_micros))
    .bind(conv.discarded)
    .bind(conv.imported_by_this_app)
    .bind(conv.geolocation.as_ref().map(|g| g.to_string()))
    .bind(&conv.folder_name)
    .bind(serde_json::Value::from(conv.apps_results.clone()).to_string())
    .bind(memory_id.map(|m| m.to_string()))
    .bind(deliveries)
    .bind(Timestamp::now().as_micros())
    .bind(transcript)
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    for table in ["transcript_segments", "conversation_events"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE uid = $1 AND conversation_id = $2"
        ))
        .bind(uid.as_str())
        .bind(&conv.id)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    for (position, s) in work.segments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO transcript_segments (uid, conversation_id, position, id, text, speaker, speaker_id,
                 speaker_name, is_user, person_id, start_seconds, end_seconds)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(uid.as_str())
        .bind(&conv.id)
        .bind(position as i64)
        .bind(&s.id)
        .bind(&s.text)
        .bind(&s.speaker)
        .bind(s.speaker_id)
        .bind(&s.speaker_name)
        .bind(s.is_user)
        .bind(&s.person_id)
        .bind(s.start)
        .bind(s.end)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    for (position, e) in work.events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO conversation_events (uid, conversation_id, position, title, description, start, duration_minutes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uid.as_str())
        .bind(&conv.id)
        .bind(position as i64)
        .bind(&e.title)
        .bind(&e.description)
        .bind(e.start.map(Timestamp::as_micros))
        .bind(e.duration_minutes)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    upsert_tasks(c, uid, &work.tasks).await
}

/// A re-delivered conversation updates its summary memory as a new version. A memory the user
/// deleted stays deleted, and an update that would duplicate another memory is skipped.
async fn update_summary(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
    summary: crate::store::NewMemory,
    ctx: &Context,
) -> Result<(), StoreError> {
    let current = match memories::get(c, uid, id).await {
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
    match memories::update(c, uid, id, current.version, patch, ctx).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// New action items become tasks; known ones (same origin) keep the user's completion state and
/// take Omi's newer due date.
async fn upsert_tasks(
    c: &mut PgConnection,
    uid: &Uid,
    tasks: &[NewTask],
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    for t in tasks {
        sqlx::query(
            "INSERT INTO tasks (uid, id, origin, description, completed, due_at, completed_at, conversation_id,
                                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (uid, origin) DO UPDATE SET due_at = excluded.due_at, updated_at = excluded.updated_at
             WHERE tasks.due_at IS DISTINCT FROM excluded.due_at",
        )
        .bind(uid.as_str())
        .bind(new_id())
        .bind(&t.origin)
        .bind(t.description.as_str())
        .bind(t.completed)
        .bind(t.due_at.map(Timestamp::as_micros))
        .bind(t.completed.then_some(now))
        .bind(&t.conversation_id)
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

async fn apply_day_summary(
    c: &mut PgConnection,
    uid: &Uid,
    work: DaySummaryWork,
    ctx: &Context,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO day_summaries (uid, key, date, summary, received_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (uid, key) DO UPDATE SET summary = excluded.summary, date = excluded.date,
             updated_at = excluded.updated_at",
    )
    .bind(uid.as_str())
    .bind(&work.key)
    .bind(&work.date)
    .bind(work.summary.to_string())
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    // Identical content returns the existing memory, so a re-delivered summary adds nothing.
    for memory in work.memories {
        memories::create(c, uid, memory, ctx).await?;
    }
    upsert_tasks(c, uid, &work.tasks).await
}

pub(super) const CONVERSATION_COLUMNS: &str = "c.id, c.title, c.overview, c.emoji, c.category, c.source, c.language, \
     c.created_at, c.started_at, c.finished_at, c.discarded, c.imported_by_this_app, c.geolocation, c.folder_name, \
     c.apps_results, c.memory_id, c.deliveries, c.updated_at";

pub(super) fn conversation_from_row(r: &PgRow) -> Result<Conversation, StoreError> {
    let geolocation: Option<String> = col(r, 12)?;
    let apps_results: String = col(r, 14)?;
    let memory_id: Option<String> = col(r, 15)?;
    Ok(Conversation {
        id: col(r, 0)?,
        title: col(r, 1)?,
        overview: col(r, 2)?,
        emoji: col(r, 3)?,
        category: col(r, 4)?,
        source: col(r, 5)?,
        language: col(r, 6)?,
        created_at: Timestamp::from_micros(col(r, 7)?),
        started_at: col::<Option<i64>>(r, 8)?.map(Timestamp::from_micros),
        finished_at: col::<Option<i64>>(r, 9)?.map(Timestamp::from_micros),
        discarded: col(r, 10)?,
        imported_by_this_app: col(r, 11)?,
        geolocation: geolocation.and_then(|g| serde_json::from_str(&g).ok()),
        folder_name: col(r, 13)?,
        apps_results: serde_json::from_str(&apps_results).unwrap_or_default(),
        memory_id: memory_id.and_then(|m| MemoryId::parse(&m).ok()),
        deliveries: col(r, 16)?,
        updated_at: Timestamp::from_micros(col(r, 17)?),
    })
}

/// Newest first.
pub async fn conversations(
    c: &mut PgConnection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<Conversation>, StoreError> {
    let (before_at, before_id) = page.position_or(i64::MAX);
    let items = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.uid = $1 AND (c.created_at, c.id) < ($2, $3)
         ORDER BY c.created_at DESC, c.id DESC LIMIT $4"
    ))
    .bind(uid.as_str())
    .bind(before_at)
    .bind(before_id)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(conversation_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, page.limit, |c: &Conversation| {
        Cursor::new(c.created_at.as_micros(), c.id.clone())
    }))
}

pub async fn conversation(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
) -> Result<ConversationDetail, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.uid = $1 AND c.id = $2"
    ))
    .bind(uid.as_str())
    .bind(id)
    .fetch_optional(&mut *c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    let conversation = conversation_from_row(&row)?;
    let transcript_segments = sqlx::query(
        "SELECT id, text, speaker, speaker_id, speaker_name, is_user, person_id, start_seconds, end_seconds
         FROM transcript_segments WHERE uid = $1 AND conversation_id = $2 ORDER BY position",
    )
    .bind(uid.as_str())
    .bind(id)
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?
    .iter()
    .map(|r| {
        Ok(TranscriptSegment {
            id: col(r, 0)?,
            text: col(r, 1)?,
            speaker: col(r, 2)?,
            speaker_id: col(r, 3)?,
            speaker_name: col(r, 4)?,
            is_user: col(r, 5)?,
            person_id: col(r, 6)?,
            start: col(r, 7)?,
            end: col(r, 8)?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let events = sqlx::query(
        "SELECT title, description, start, duration_minutes FROM conversation_events
         WHERE uid = $1 AND conversation_id = $2 ORDER BY position",
    )
    .bind(uid.as_str())
    .bind(id)
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?
    .iter()
    .map(|r| {
        Ok(ConversationEvent {
            title: col(r, 0)?,
            description: col(r, 1)?,
            start: col::<Option<i64>>(r, 2)?.map(Timestamp::from_micros),
            duration_minutes: col(r, 3)?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let filter = TaskFilter {
        completed: None,
        conversation_id: Some(id.to_owned()),
    };
    let tasks = tasks(c, uid, &filter, &PageRequest::first(PageRequest::MAX_LIMIT))
        .await?
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

pub(super) fn task_from_row(r: &PgRow) -> Result<Task, StoreError> {
    Ok(Task {
        id: col(r, 0)?,
        description: col(r, 1)?,
        completed: col(r, 2)?,
        due_at: col::<Option<i64>>(r, 3)?.map(Timestamp::from_micros),
        completed_at: col::<Option<i64>>(r, 4)?.map(Timestamp::from_micros),
        conversation_id: col(r, 5)?,
        created_at: Timestamp::from_micros(col(r, 6)?),
        updated_at: Timestamp::from_micros(col(r, 7)?),
    })
}

/// Newest first.
pub async fn tasks(
    c: &mut PgConnection,
    uid: &Uid,
    filter: &TaskFilter,
    page: &PageRequest,
) -> Result<Page<Task>, StoreError> {
    let (before_at, before_id) = page.position_or(i64::MAX);
    let items = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE uid = $1 AND (created_at, id) < ($2, $3)
           AND ($4::boolean IS NULL OR completed = $4) AND ($5::text IS NULL OR conversation_id = $5)
         ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(uid.as_str())
    .bind(before_at)
    .bind(before_id)
    .bind(filter.completed)
    .bind(&filter.conversation_id)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(task_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, page.limit, |t: &Task| {
        Cursor::new(t.created_at.as_micros(), t.id.clone())
    }))
}

pub(super) async fn task(c: &mut PgConnection, uid: &Uid, id: &str) -> Result<Task, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE uid = $1 AND id = $2"
    ))
    .bind(uid.as_str())
    .bind(id)
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    task_from_row(&row)
}

pub async fn update_task(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    patch: TaskPatch,
    ctx: &Context,
) -> Result<Task, StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let mut t = task(c, uid, id).await?;
    let mut changed = Vec::new();
    if let Some(description) = patch.description.filter(|d| d.as_str() != t.description) {
        t.description = String::from(description);
        changed.push("description");
    }
    if let Some(completed) = patch.completed.filter(|done| *done != t.completed) {
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
    sqlx::query(
        "UPDATE tasks SET description = $3, completed = $4, completed_at = $5, due_at = $6, updated_at = $7
         WHERE uid = $1 AND id = $2",
    )
    .bind(uid.as_str())
    .bind(id)
    .bind(&t.description)
    .bind(t.completed)
    .bind(t.completed_at.map(Timestamp::as_micros))
    .bind(t.due_at.map(Timestamp::as_micros))
    .bind(t.updated_at.as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    super::audit::append(
        c,
        uid,
        "task.update",
        None,
        ctx,
        json!({"task_id": id, "changed": changed}),
    )
    .await?;
    Ok(t)
}

pub async fn seen(
    c: &mut PgConnection,
    uid: &Uid,
    kind: EventKind,
    key: &str,
) -> Result<bool, StoreError> {
    sqlx::query("SELECT 1 FROM inbox_events WHERE uid = $1 AND kind = $2 AND dedupe_key = $3")
        .bind(uid.as_str())
        .bind(kind.as_str())
        .bind(key)
        .fetch_optional(c)
        .await
        .map(|r| r.is_some())
        .map_err(db_error)
}
