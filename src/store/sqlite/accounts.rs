//! Users and their API keys.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::{audit, db_error, is_constraint_violation, stored};
use crate::domain::{Cursor, KeyId, KeyName, Timestamp, Uid};
use crate::store::{
    ApiKeyInfo, Context, NewApiKey, Page, PageRequest, Principal, StoreError, User,
};

pub fn user_exists(conn: &Connection, uid: &Uid) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM users WHERE uid = ?1")
        .and_then(|mut s| s.exists([uid.as_str()]))
        .map_err(db_error)
}

pub fn require_user(conn: &Connection, uid: &Uid) -> Result<(), StoreError> {
    if user_exists(conn, uid)? {
        Ok(())
    } else {
        Err(StoreError::UnknownUser)
    }
}

pub fn create_user(conn: &Connection, uid: &Uid) -> Result<User, StoreError> {
    let user = User {
        uid: uid.clone(),
        created_at: Timestamp::now(),
    };
    conn.execute(
        "INSERT INTO users (uid, created_at) VALUES (?1, ?2)",
        params![uid.as_str(), user.created_at.as_micros()],
    )
    .map_err(|e| {
        if is_constraint_violation(&e) {
            StoreError::Conflict(format!("user {uid} already exists"))
        } else {
            db_error(e)
        }
    })?;
    Ok(user)
}

pub fn get_user(conn: &Connection, uid: &Uid) -> Result<User, StoreError> {
    conn.query_row(
        "SELECT created_at FROM users WHERE uid = ?1",
        [uid.as_str()],
        |r| {
            Ok(User {
                uid: uid.clone(),
                created_at: Timestamp::from_micros(r.get(0)?),
            })
        },
    )
    .optional()
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)
}

pub fn list_users(conn: &Connection, page: &PageRequest) -> Result<Page<User>, StoreError> {
    let (after_at, after_uid) = page.position_or(i64::MIN);
    let mut stmt = conn
        .prepare_cached(
            "SELECT uid, created_at FROM users WHERE (created_at, uid) > (?1, ?2)
             ORDER BY created_at, uid LIMIT ?3",
        )
        .map_err(db_error)?;
    let mut items = stmt
        .query_map(
            params![after_at, after_uid, i64::from(page.limit) + 1],
            |r| {
                let uid: String = r.get(0)?;
                Ok(User {
                    uid: stored(Uid::parse(uid))?,
                    created_at: Timestamp::from_micros(r.get(1)?),
                })
            },
        )
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, page.limit, |u: &User| {
        Cursor::new(u.created_at.as_micros(), u.uid.as_str())
    }))
}

/// Every table with per-user rows; `users` last.
const USER_TABLES: [&str; 17] = [
    "memory_tags",
    "memory_versions",
    "memories",
    "audit_events",
    "idempotency_keys",
    "api_keys",
    "applied_events",
    "conversations",
    "transcript_segments",
    "conversation_events",
    "tasks",
    "live_segments",
    "day_summaries",
    "recordings",
    "conversation_source_texts",
    "conversation_client_sessions",
    "users",
];

pub fn delete_user(conn: &Connection, uid: &Uid) -> Result<(), StoreError> {
    require_user(conn, uid).map_err(|_| StoreError::NotFound)?;
    for table in USER_TABLES {
        conn.execute(
            &format!("DELETE FROM {table} WHERE uid = ?1"),
            [uid.as_str()],
        )
        .map_err(db_error)?;
    }
    Ok(())
}

const KEY_COLUMNS: &str = "id, uid, name, prefix, created_at, last_used_at, revoked_at";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyInfo> {
    let id: String = r.get(0)?;
    let uid: String = r.get(1)?;
    let name: String = r.get(2)?;
    Ok(ApiKeyInfo {
        id: stored(KeyId::parse(&id))?,
        uid: stored(Uid::parse(uid))?,
        name: stored(KeyName::parse(&name))?,
        prefix: r.get(3)?,
        created_at: Timestamp::from_micros(r.get(4)?),
        last_used_at: r.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
    })
}

fn get_key(conn: &Connection, uid: &Uid, key_id: KeyId) -> Result<ApiKeyInfo, StoreError> {
    conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE uid = ?1 AND id = ?2"),
        params![uid.as_str(), key_id.to_string()],
        key_from_row,
    )
    .optional()
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)
}

pub fn create_key(
    conn: &Connection,
    uid: &Uid,
    key: NewApiKey,
    ctx: &Context,
) -> Result<ApiKeyInfo, StoreError> {
    require_user(conn, uid)?;
    let created_at = Timestamp::now();
    conn.execute(
        "INSERT INTO api_keys (uid, id, name, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![uid.as_str(), key.id.to_string(), key.name.as_str(), key.prefix, key.hash, created_at.as_micros()],
    )
    .map_err(db_error)?;
    audit::append(
        conn,
        uid,
        "key.create",
        None,
        ctx,
        json!({"key_id": key.id, "name": key.name, "prefix": key.prefix}),
    )?;
    get_key(conn, uid, key.id)
}

pub fn list_keys(conn: &Connection, uid: &Uid) -> Result<Vec<ApiKeyInfo>, StoreError> {
    require_user(conn, uid).map_err(|_| StoreError::NotFound)?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE uid = ?1 ORDER BY created_at, id"
        ))
        .map_err(db_error)?;
    stmt.query_map([uid.as_str()], key_from_row)
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)
}

/// Revoking twice is harmless: the first revocation time stays.
pub fn revoke_key(
    conn: &Connection,
    uid: &Uid,
    key_id: KeyId,
    ctx: &Context,
) -> Result<ApiKeyInfo, StoreError> {
    let changed = conn
        .execute(
            "UPDATE api_keys SET revoked_at = ?3 WHERE uid = ?1 AND id = ?2 AND revoked_at IS NULL",
            params![
                uid.as_str(),
                key_id.to_string(),
                Timestamp::now().as_micros()
            ],
        )
        .map_err(db_error)?;
    if changed > 0 {
        audit::append(
            conn,
            uid,
            "key.revoke",
            None,
            ctx,
            json!({"key_id": key_id}),
        )?;
    }
    get_key(conn, uid, key_id)
}

pub fn authenticate(conn: &Connection, key_hash: &str) -> Result<Option<Principal>, StoreError> {
    conn.prepare_cached("SELECT uid, id FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL")
        .and_then(|mut s| {
            s.query_row([key_hash], |r| {
                let uid: String = r.get(0)?;
                let id: String = r.get(1)?;
                Ok(Principal {
                    uid: stored(Uid::parse(uid))?,
                    key_id: stored(KeyId::parse(&id))?,
                })
            })
            .optional()
        })
        .map_err(db_error)
}

pub fn touch_key(
    conn: &Connection,
    uid: &Uid,
    key_id: KeyId,
    at: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE api_keys SET last_used_at = ?3 WHERE uid = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), key_id.to_string(), at.as_micros()]))
        .map_err(db_error)?;
    Ok(())
}
