//! Users and their API keys.

use serde_json::json;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::audit;
use super::rows::{col, db_error, is_unique_violation, page_limit, page_of, stored};
use crate::domain::{Cursor, KeyId, KeyName, Timestamp, Uid};
use crate::store::{
    ApiKeyInfo, Context, NewApiKey, Page, PageRequest, Principal, StoreError, User,
};

pub async fn user_exists(c: &mut PgConnection, uid: &Uid) -> Result<bool, StoreError> {
    sqlx::query("SELECT 1 FROM users WHERE uid = $1")
        .bind(uid.as_str())
        .fetch_optional(c)
        .await
        .map(|r| r.is_some())
        .map_err(db_error)
}

/// Locks the user's row until the transaction ends. Every write of a user's data starts here, so one
/// user's writes are ordered across instances (as SQLite's single writer orders them) and always take
/// their locks in the same order. `FOR NO KEY UPDATE` leaves foreign-key checks unblocked.
pub async fn lock_user(c: &mut PgConnection, uid: &Uid) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM users WHERE uid = $1 FOR NO KEY UPDATE")
        .bind(uid.as_str())
        .fetch_optional(c)
        .await
        .map_err(db_error)?
        .map(|_| ())
        .ok_or(StoreError::UnknownUser)
}

pub async fn create_user(c: &mut PgConnection, uid: &Uid) -> Result<User, StoreError> {
    let user = User {
        uid: uid.clone(),
        created_at: Timestamp::now(),
    };
    let inserted = sqlx::query(
        "INSERT INTO users (uid, created_at) VALUES ($1, $2) ON CONFLICT (uid) DO NOTHING",
    )
    .bind(uid.as_str())
    .bind(user.created_at.as_micros())
    .execute(c)
    .await
    .map_err(db_error)?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("user {uid} already exists")));
    }
    Ok(user)
}

pub async fn get_user(c: &mut PgConnection, uid: &Uid) -> Result<User, StoreError> {
    let row = sqlx::query("SELECT created_at FROM users WHERE uid = $1")
        .bind(uid.as_str())
        .fetch_optional(c)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)?;
    Ok(User {
        uid: uid.clone(),
        created_at: Timestamp::from_micros(col(&row, 0)?),
    })
}

pub async fn list_users(
    c: &mut PgConnection,
    page: &PageRequest,
) -> Result<Page<User>, StoreError> {
    let (after_at, after_uid) = page.position_or(i64::MIN);
    let rows = sqlx::query(
        "SELECT uid, created_at FROM users WHERE (created_at, uid) > ($1, $2)
         ORDER BY created_at, uid LIMIT $3",
    )
    .bind(after_at)
    .bind(after_uid)
    .bind(page_limit(page.limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(User {
                uid: stored(Uid::parse(col::<String>(r, 0)?))?,
                created_at: Timestamp::from_micros(col(r, 1)?),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(page_of(items, page.limit, |u: &User| {
        Cursor::new(u.created_at.as_micros(), u.uid.as_str())
    }))
}

/// Every table with per-user rows; `users` last.
pub const USER_TABLES: [&str; 23] = [
    "memory_tags",
    "memory_versions",
    "memory_embeddings",
    "embedding_queue",
    "memories",
    "audit_events",
    "idempotency_keys",
    "api_keys",
    "inbox_events",
    "conversations",
    "transcript_segments",
    "conversation_events",
    "tasks",
    "live_segments",
    "day_summaries",
    "recordings",
    "omi_outbox",
    "omi_sync_settings",
    "omi_pull_checkpoints",
    "conversation_source_texts",
    "conversation_client_sessions",
    "ui_sessions",
    "users",
];

pub async fn delete_user(c: &mut PgConnection, uid: &Uid) -> Result<(), StoreError> {
    lock_user(c, uid).await.map_err(|_| StoreError::NotFound)?;
    for table in USER_TABLES {
        sqlx::query(&format!("DELETE FROM {table} WHERE uid = $1"))
            .bind(uid.as_str())
            .execute(&mut *c)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

const KEY_COLUMNS: &str = "id, uid, name, prefix, created_at, last_used_at, revoked_at";

fn key_from_row(r: &PgRow) -> Result<ApiKeyInfo, StoreError> {
    Ok(ApiKeyInfo {
        id: stored(KeyId::parse(&col::<String>(r, 0)?))?,
        uid: stored(Uid::parse(col::<String>(r, 1)?))?,
        name: stored(KeyName::parse(&col::<String>(r, 2)?))?,
        prefix: col(r, 3)?,
        created_at: Timestamp::from_micros(col(r, 4)?),
        last_used_at: col::<Option<i64>>(r, 5)?.map(Timestamp::from_micros),
        revoked_at: col::<Option<i64>>(r, 6)?.map(Timestamp::from_micros),
    })
}

async fn get_key(c: &mut PgConnection, uid: &Uid, key_id: KeyId) -> Result<ApiKeyInfo, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE uid = $1 AND id = $2"
    ))
    .bind(uid.as_str())
    .bind(key_id.to_string())
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    key_from_row(&row)
}

pub async fn create_key(
    c: &mut PgConnection,
    uid: &Uid,
    key: &NewApiKey,
    ctx: &Context,
) -> Result<ApiKeyInfo, StoreError> {
    lock_user(c, uid).await?;
    sqlx::query(
        "INSERT INTO api_keys (uid, id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uid.as_str())
    .bind(key.id.to_string())
    .bind(key.name.as_str())
    .bind(&key.prefix)
    .bind(&key.hash)
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("this key exists already".into())
        } else {
            db_error(e)
        }
    })?;
    audit::append(
        c,
        uid,
        "key.create",
        None,
        ctx,
        json!({"key_id": key.id, "name": key.name, "prefix": key.prefix}),
    )
    .await?;
    get_key(c, uid, key.id).await
}

pub async fn list_keys(c: &mut PgConnection, uid: &Uid) -> Result<Vec<ApiKeyInfo>, StoreError> {
    if !user_exists(c, uid).await? {
        return Err(StoreError::NotFound);
    }
    sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE uid = $1 ORDER BY created_at, id"
    ))
    .bind(uid.as_str())
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(key_from_row)
    .collect()
}

/// Revoking twice is harmless: the first revocation time stays.
pub async fn revoke_key(
    c: &mut PgConnection,
    uid: &Uid,
    key_id: KeyId,
    ctx: &Context,
) -> Result<ApiKeyInfo, StoreError> {
    let changed = sqlx::query(
        "UPDATE api_keys SET revoked_at = $3 WHERE uid = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(uid.as_str())
    .bind(key_id.to_string())
    .bind(Timestamp::now().as_micros())
    .execute(&mut *c)
    .await
    .map_err(db_error)?
    .rows_affected();
    if changed > 0 {
        audit::append(c, uid, "key.revoke", None, ctx, json!({"key_id": key_id})).await?;
    }
    get_key(c, uid, key_id).await
}

pub async fn authenticate(
    c: &mut PgConnection,
    key_hash: &str,
) -> Result<Option<Principal>, StoreError> {
    let Some(row) =
        sqlx::query("SELECT uid, id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
            .bind(key_hash)
            .fetch_optional(c)
            .await
            .map_err(db_error)?
    else {
        return Ok(None);
    };
    Ok(Some(Principal {
        uid: stored(Uid::parse(col::<String>(&row, 0)?))?,
        key_id: stored(KeyId::parse(&col::<String>(&row, 1)?))?,
    }))
}

pub async fn touch_key(
    c: &mut PgConnection,
    uid: &Uid,
    key_id: KeyId,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE api_keys SET last_used_at = $3 WHERE uid = $1 AND id = $2")
        .bind(uid.as_str())
        .bind(key_id.to_string())
        .bind(at.as_micros())
        .execute(c)
        .await
        .map_err(db_error)?;
    Ok(())
}
