//! What the Omi-compatible surfaces need beyond the native API: offset pages in Omi's orders, action
//! items the user writes, and conversations created, edited and erased through the API.

use serde_json::json;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::rows::{col, db_error, is_unique_violation, transient};
use super::{accounts, audit, ingest, memories};
use crate::domain::{Memory, NewTask, Task, Timestamp, Uid};
use crate::store::{
    Context, ConversationCreated, ConversationDetail, ConversationPatch, ConversationQuery,
    ConversationWork, NewConversation, OffsetPage, OmiScoring, ScoredMemoryQuery, StoreError,
    TaskQuery,
};

fn push_page(q: &mut QueryBuilder<'_, Postgres>, page: OffsetPage) {
    q.push(" LIMIT ")
        .push_bind(i64::from(page.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(page.offset));
}

fn push_created_range(
    q: &mut QueryBuilder<'_, Postgres>,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
) {
    if let Some(from) = from {
        q.push(" AND created_at >= ").push_bind(from.as_micros());
    }
    if let Some(until) = until {
        q.push(" AND created_at <= ").push_bind(until.as_micros());
    }
}

pub async fn memories_by_score(
    c: &mut PgConnection,
    uid: &Uid,
    query: &ScoredMemoryQuery,
) -> Result<Vec<Memory>, StoreError> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {} FROM memories m WHERE m.uid = ",
        memories::COLUMNS
    ));
    q.push_bind(uid.as_str().to_owned())
        .push(" AND m.deleted_at IS NULL");
    if !query.categories.is_empty() {
        let categories: Vec<String> = query
            .categories
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        q.push(" AND m.category = ANY(")
            .push_bind(categories)
            .push(")");
    }
    q.push(format!(" ORDER BY {}", OmiScoring::order_by()));
    push_page(&mut q, query.page);
    q.build()
        .fetch_all(c)
        .await
        .map_err(db_error)?
        .iter()
        .map(memories::memory_from_row)
        .collect()
}

pub async fn find_tasks(
    c: &mut PgConnection,
    uid: &Uid,
    query: &TaskQuery,
) -> Result<Vec<Task>, StoreError> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {} FROM tasks WHERE uid = ",
        ingest::TASK_COLUMNS
    ));
    q.push_bind(uid.as_str().to_owned());
    if let Some(completed) = query.completed {
        q.push(" AND completed = ").push_bind(completed);
    }
    if let Some(conversation_id) = &query.conversation_id {
        q.push(" AND conversation_id = ")
            .push_bind(conversation_id.clone());
    }
    push_created_range(&mut q, query.created_from, query.created_until);
    q.push(" ORDER BY created_at DESC, id DESC");
    if let Some(page) = query.page {
        push_page(&mut q, page);
    }
    q.build()
        .fetch_all(c)
        .await
        .map_err(db_error)?
        .iter()
        .map(ingest::task_from_row)
        .collect()
}

pub async fn create_tasks(
    c: &mut PgConnection,
    uid: &Uid,
    tasks: Vec<NewTask>,
    ctx: &Context,
) -> Result<Vec<Task>, StoreError> {
    accounts::lock_user(c, uid).await?;
    let now = Timestamp::now();
    let mut created = Vec::with_capacity(tasks.len());
    for t in tasks {
        let id = ingest::new_id();
        sqlx::query(
            "INSERT INTO tasks (uid, id, origin, description, completed, due_at, completed_at, conversation_id,
                                created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(uid.as_str())
        .bind(&id)
        .bind(&t.origin)
        .bind(t.description.as_str())
        .bind(t.completed)
        .bind(t.due_at.map(Timestamp::as_micros))
        .bind(t.completed.then_some(now.as_micros()))
        .bind(&t.conversation_id)
        .bind(now.as_micros())
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
        audit::append(c, uid, "task.create", None, ctx, json!({"task_id": id})).await?;
        created.push(ingest::task(c, uid, &id).await?);
    }
    Ok(created)
}

pub async fn delete_task(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    ctx: &Context,
) -> Result<(), StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let deleted = sqlx::query("DELETE FROM tasks WHERE uid = $1 AND id = $2")
        .bind(uid.as_str())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(db_error)?
        .rows_affected();
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(c, uid, "task.delete", None, ctx, json!({"task_id": id})).await
}

pub async fn find_conversations(
    c: &mut PgConnection,
    uid: &Uid,
    query: &ConversationQuery,
) -> Result<Vec<ConversationDetail>, StoreError> {
    let mut q = QueryBuilder::new("SELECT id FROM conversations WHERE uid = ");
    q.push_bind(uid.as_str().to_owned());
    if !query.include_discarded {
        q.push(" AND NOT discarded");
    }
    push_created_range(&mut q, query.created_from, query.created_until);
    if !query.categories.is_empty() {
        q.push(" AND category = ANY(")
            .push_bind(query.categories.clone())
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC");
    push_page(&mut q, query.page);
    let ids = q
        .build()
        .fetch_all(&mut *c)
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| col::<String>(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        found.push(ingest::conversation(c, uid, &id).await?);
    }
    Ok(found)
}

/// The conversation a client session id created before, and whether it has been deleted since.
async fn session_conversation(
    c: &mut PgConnection,
    uid: &Uid,
    client_session_id: &str,
) -> Result<Option<(String, bool)>, StoreError> {
    sqlx::query(
        "SELECT conversation_id, deleted_at IS NOT NULL FROM conversation_client_sessions
         WHERE uid = $1 AND client_session_id = $2",
    )
    .bind(uid.as_str())
    .bind(client_session_id)
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .map(|r| Ok((col(&r, 0)?, col(&r, 1)?)))
    .transpose()
}

pub async fn create_conversation(
    c: &mut PgConnection,
    uid: &Uid,
    new: NewConversation,
    ctx: &Context,
) -> Result<ConversationCreated, StoreError> {
    // The user's lock orders two retries of one client session across instances: the second waits,
    // then finds the first one's row below.
    accounts::lock_user(c, uid).await?;
    if let Some(session) = &new.client_session_id
        && let Some((id, deleted)) = session_conversation(c, uid, session).await?
    {
        return Ok(if deleted {
            ConversationCreated::Deleted { id }
        } else {
            ConversationCreated::Existing(ingest::conversation(c, uid, &id).await?.conversation)
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
    ingest::apply_conversation(c, uid, work, ctx).await?;
    if let Some(source) = &new.source_text {
        sqlx::query(
            "INSERT INTO conversation_source_texts (uid, conversation_id, text, text_source, text_source_spec)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uid.as_str())
        .bind(&id)
        .bind(&source.text)
        .bind(&source.text_source)
        .bind(&source.text_source_spec)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    if let Some(session) = &new.client_session_id {
        // Should a write ever get here without the lock, the primary key still refuses a second
        // conversation for the session; running again then returns the first.
        sqlx::query(
            "INSERT INTO conversation_client_sessions (uid, client_session_id, conversation_id, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(uid.as_str())
        .bind(session)
        .bind(&id)
        .bind(Timestamp::now().as_micros())
        .execute(&mut *c)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                transient("another request created this client session's conversation")
            } else {
                db_error(e)
            }
        })?;
    }
    audit::append(
        c,
        uid,
        "conversation.create",
        None,
        ctx,
        json!({"conversation_id": id}),
    )
    .await?;
    Ok(ConversationCreated::New(
        ingest::conversation(c, uid, &id).await?.conversation,
    ))
}

pub async fn update_conversation(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    patch: ConversationPatch,
    ctx: &Context,
) -> Result<ConversationDetail, StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let current = ingest::conversation(c, uid, id).await?.conversation;
    let title = patch
        .title
        .as_ref()
        .map_or(current.title.as_str(), |t| t.as_str());
    let discarded = patch.discarded.unwrap_or(current.discarded);
    sqlx::query(
        "UPDATE conversations SET title = $3, discarded = $4, updated_at = $5 WHERE uid = $1 AND id = $2",
    )
    .bind(uid.as_str())
    .bind(id)
    .bind(title)
    .bind(discarded)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    let mut changed = Vec::new();
    if patch.title.is_some() {
        changed.push("title");
    }
    if patch.discarded.is_some() {
        changed.push("discarded");
    }
    audit::append(
        c,
        uid,
        "conversation.update",
        None,
        ctx,
        json!({"conversation_id": id, "changed": changed}),
    )
    .await?;
    ingest::conversation(c, uid, id).await
}

pub async fn delete_conversation(
    c: &mut PgConnection,
    uid: &Uid,
    id: &str,
    ctx: &Context,
) -> Result<(), StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let deleted = sqlx::query("DELETE FROM conversations WHERE uid = $1 AND id = $2")
        .bind(uid.as_str())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(db_error)?
        .rows_affected();
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    for table in [
        "transcript_segments",
        "conversation_events",
        "conversation_source_texts",
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE uid = $1 AND conversation_id = $2"
        ))
        .bind(uid.as_str())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    }
    sqlx::query(
        "UPDATE conversation_client_sessions SET deleted_at = $3 WHERE uid = $1 AND conversation_id = $2",
    )
    .bind(uid.as_str())
    .bind(id)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?;
    audit::append(
        c,
        uid,
        "conversation.delete",
        None,
        ctx,
        json!({"conversation_id": id}),
    )
    .await
}
