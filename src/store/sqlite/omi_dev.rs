//! What the Omi-compatible surfaces need beyond the native API: offset pages in Omi's orders, action
//! items the user writes, and conversations created, edited and erased through the API.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::json;

use super::{accounts, audit, db_error, ingest, memories};
use crate::domain::{Memory, NewTask, Task, Timestamp, Uid};
use crate::store::{
    Context, ConversationCreated, ConversationDetail, ConversationPatch, ConversationQuery,
    ConversationWork, NewConversation, OffsetPage, OmiScoring, ScoredMemoryQuery, StoreError,
    TaskQuery,
};

fn push_page(sql: &mut String, args: &mut Vec<Value>, page: OffsetPage) {
    sql.push_str(" LIMIT ? OFFSET ?");
    args.push(i64::from(page.limit).into());
    args.push(i64::from(page.offset).into());
}

fn push_in(sql: &mut String, args: &mut Vec<Value>, column: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let slots = vec!["?"; values.len()].join(", ");
    sql.push_str(&format!(" AND {column} IN ({slots})"));
    args.extend(values.iter().map(|v| Value::Text(v.clone())));
}

pub fn memories_by_score(
    conn: &Connection,
    uid: &Uid,
    q: &ScoredMemoryQuery,
) -> Result<Vec<Memory>, StoreError> {
    let mut sql = format!(
        "SELECT {} FROM memories WHERE uid = ? AND deleted_at IS NULL",
        memories::COLUMNS
    );
    let mut args: Vec<Value> = vec![Value::Text(uid.as_str().to_owned())];
    let categories: Vec<String> = q.categories.iter().map(|c| c.as_str().to_owned()).collect();
    push_in(&mut sql, &mut args, "category", &categories);
    sql.push_str(&format!(" ORDER BY {}", OmiScoring::order_by()));
    push_page(&mut sql, &mut args, q.page);
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args), memories::memory_from_row)?
                .collect()
        })
        .map_err(db_error)
}

pub fn find_tasks(conn: &Connection, uid: &Uid, q: &TaskQuery) -> Result<Vec<Task>, StoreError> {
    let mut sql = format!("SELECT {} FROM tasks WHERE uid = ?", ingest::TASK_COLUMNS);
    let mut args: Vec<Value> = vec![Value::Text(uid.as_str().to_owned())];
    if let Some(completed) = q.completed {
        sql.push_str(" AND completed = ?");
        args.push(completed.into());
    }
    if let Some(conversation_id) = &q.conversation_id {
        sql.push_str(" AND conversation_id = ?");
        args.push(Value::Text(conversation_id.clone()));
    }
    if let Some(from) = q.created_from {
        sql.push_str(" AND created_at >= ?");
        args.push(from.as_micros().into());
    }
    if let Some(until) = q.created_until {
        sql.push_str(" AND created_at <= ?");
        args.push(until.as_micros().into());
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    if let Some(page) = q.page {
        push_page(&mut sql, &mut args, page);
    }
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args), ingest::task_from_row)?
                .collect()
        })
        .map_err(db_error)
}

fn task(conn: &Connection, uid: &Uid, id: &str) -> Result<Task, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM tasks WHERE uid = ?1 AND id = ?2",
        ingest::TASK_COLUMNS
    ))
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), id], ingest::task_from_row)
            .optional()
    })
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)
}

pub fn create_tasks(
    conn: &Connection,
    uid: &Uid,
    tasks: Vec<NewTask>,
    ctx: &Context,
) -> Result<Vec<Task>, StoreError> {
    accounts::require_user(conn, uid)?;
    let now = Timestamp::now();
    let mut created = Vec::with_capacity(tasks.len());
    for t in tasks {
        let id = ingest::new_id();
        conn.prepare_cached(
            "INSERT INTO tasks (uid, id, origin, description, completed, due_at, completed_at, conversation_id,
                                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid.as_str(),
                id,
                t.origin,
                t.description.as_str(),
                t.completed,
                t.due_at.map(Timestamp::as_micros),
                t.completed.then_some(now.as_micros()),
                t.conversation_id,
                now.as_micros()
            ])
        })
        .map_err(db_error)?;
        audit::append(conn, uid, "task.create", None, ctx, json!({"task_id": id}))?;
        created.push(task(conn, uid, &id)?);
    }
    Ok(created)
}

pub fn delete_task(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    ctx: &Context,
) -> Result<(), StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM tasks WHERE uid = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), id]))
        .map_err(db_error)?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(conn, uid, "task.delete", None, ctx, json!({"task_id": id}))
}

pub fn find_conversations(
    conn: &Connection,
    uid: &Uid,
    q: &ConversationQuery,
) -> Result<Vec<ConversationDetail>, StoreError> {
    let mut sql = "SELECT id FROM conversations WHERE uid = ?".to_owned();
    let mut args: Vec<Value> = vec![Value::Text(uid.as_str().to_owned())];
    if !q.include_discarded {
        sql.push_str(" AND discarded = 0");
    }
    if let Some(from) = q.created_from {
        sql.push_str(" AND created_at >= ?");
        args.push(from.as_micros().into());
    }
    if let Some(until) = q.created_until {
        sql.push_str(" AND created_at <= ?");
        args.push(until.as_micros().into());
    }
    push_in(&mut sql, &mut args, "category", &q.categories);
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    push_page(&mut sql, &mut args, q.page);
    let ids: Vec<String> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_map(params_from_iter(args), |r| r.get(0))?.collect())
        .map_err(db_error)?;
    ids.iter()
        .map(|id| ingest::conversation(conn, uid, id))
        .collect()
}

fn session_conversation(
    conn: &Connection,
    uid: &Uid,
    client_session_id: &str,
) -> Result<Option<(String, bool)>, StoreError> {
    conn.prepare_cached(
        "SELECT conversation_id, deleted_at IS NOT NULL FROM conversation_client_sessions
         WHERE uid = ?1 AND client_session_id = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), client_session_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
    })
    .map_err(db_error)
}

pub fn create_conversation(
    conn: &Connection,
    uid: &Uid,
    new: NewConversation,
    ctx: &Context,
) -> Result<ConversationCreated, StoreError> {
    accounts::require_user(conn, uid)?;
    if let Some(session) = &new.client_session_id
        && let Some((id, deleted)) = session_conversation(conn, uid, session)?
    {
        return Ok(if deleted {
            ConversationCreated::Deleted { id }
        } else {
            ConversationCreated::Existing(ingest::conversation(conn, uid, &id)?.conversation)
        });
    }
    let id = new.conversation.id.clone();
    let work = ConversationWork {
        conversation: new.conversation,
        segments: new.segments,
        events: Vec::new(),
        summary: None,
        tasks: Vec::new(),
    };
    ingest::apply_conversation(conn, uid, work, ctx)?;
    if let Some(source) = &new.source_text {
        conn.prepare_cached(
            "INSERT INTO conversation_source_texts (uid, conversation_id, text, text_source, text_source_spec)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid.as_str(),
                id,
                source.text,
                source.text_source,
                source.text_source_spec
            ])
        })
        .map_err(db_error)?;
    }
    if let Some(session) = &new.client_session_id {
        conn.prepare_cached(
            "INSERT INTO conversation_client_sessions (uid, client_session_id, conversation_id, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![uid.as_str(), session, id, Timestamp::now().as_micros()])
        })
        .map_err(db_error)?;
    }
    audit::append(
        conn,
        uid,
        "conversation.create",
        None,
        ctx,
        json!({"conversation_id": id}),
    )?;
    Ok(ConversationCreated::New(
        ingest::conversation(conn, uid, &id)?.conversation,
    ))
}

pub fn update_conversation(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    patch: ConversationPatch,
    ctx: &Context,
) -> Result<ConversationDetail, StoreError> {
    let current = ingest::conversation(conn, uid, id)?.conversation;
    let title = patch
        .title
        .as_ref()
        .map_or(current.title.as_str(), |t| t.as_str());
    let discarded = patch.discarded.unwrap_or(current.discarded);
    conn.prepare_cached(
        "UPDATE conversations SET title = ?3, discarded = ?4, updated_at = ?5 WHERE uid = ?1 AND id = ?2",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid.as_str(),
            id,
            title,
            discarded,
            Timestamp::now().as_micros()
        ])
    })
    .map_err(db_error)?;
    let mut changed = Vec::new();
    if patch.title.is_some() {
        changed.push("title");
    }
    if patch.discarded.is_some() {
        changed.push("discarded");
    }
    audit::append(
        conn,
        uid,
        "conversation.update",
        None,
        ctx,
        json!({"conversation_id": id, "changed": changed}),
    )?;
    ingest::conversation(conn, uid, id)
}

pub fn delete_conversation(
    conn: &Connection,
    uid: &Uid,
    id: &str,
    ctx: &Context,
) -> Result<(), StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM conversations WHERE uid = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), id]))
        .map_err(db_error)?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    for table in [
        "transcript_segments",
        "conversation_events",
        "conversation_source_texts",
    ] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE uid = ?1 AND conversation_id = ?2"
        ))
        .and_then(|mut s| s.execute(params![uid.as_str(), id]))
        .map_err(db_error)?;
    }
    conn.prepare_cached(
        "UPDATE conversation_client_sessions SET deleted_at = ?3 WHERE uid = ?1 AND conversation_id = ?2",
    )
    .and_then(|mut s| s.execute(params![uid.as_str(), id, Timestamp::now().as_micros()]))
    .map_err(db_error)?;
    audit::append(
        conn,
        uid,
        "conversation.delete",
        None,
        ctx,
        json!({"conversation_id": id}),
    )
}
