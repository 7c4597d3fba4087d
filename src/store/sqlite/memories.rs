//! Memories, their versions and tags.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::json;
use std::collections::BTreeMap;
use std::str::FromStr;

use super::{accounts, audit, db_error, stored};
use crate::domain::{
    Category, Content, ContentHash, ConversationId, Cursor, Memory, MemoryId, MemoryVersion,
    Metadata, Source, Tags, Timestamp, Uid, Visibility,
};
use crate::store::{
    Context, Created, Deleted, ExportedMemory, ImportReport, ImportSkip, ListQuery, MemoryPatch,
    NewMemory, Page, PageRequest, SortOrder, StateFilter, Stats, StoreError, TagMatch,
};

pub(super) const COLUMNS: &str = "id, uid, content, category, tags, visibility, source, conversation_id, metadata, \
                       occurred_at, created_at, updated_at, deleted_at, version, content_hash";

pub(super) fn memory_from_row(r: &Row<'_>) -> rusqlite::Result<Memory> {
    let id: String = r.get(0)?;
    let uid: String = r.get(1)?;
    let content: String = r.get(2)?;
    let category: String = r.get(3)?;
    let tags: String = r.get(4)?;
    let visibility: String = r.get(5)?;
    let source: String = r.get(6)?;
    let conversation_id: Option<String> = r.get(7)?;
    let metadata: String = r.get(8)?;
    Ok(Memory {
        id: stored(MemoryId::parse(&id))?,
        uid: stored(Uid::parse(uid))?,
        content: stored(Content::parse(&content))?,
        category: stored(Category::parse(&category))?,
        tags: Tags::from_stored_json(&tags),
        visibility: stored(Visibility::from_str(&visibility))?,
        source: stored(Source::from_str(&source))?,
        conversation_id: conversation_id
            .map(|c| stored(ConversationId::parse(&c)))
            .transpose()?,
        metadata: Metadata::from_stored_json(&metadata),
        occurred_at: Timestamp::from_micros(r.get(9)?),
        created_at: Timestamp::from_micros(r.get(10)?),
        updated_at: Timestamp::from_micros(r.get(11)?),
        deleted_at: r.get::<_, Option<i64>>(12)?.map(Timestamp::from_micros),
        version: r.get(13)?,
        content_hash: ContentHash::from_stored(r.get(14)?),
    })
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<MemoryVersion> {
    let memory_id: String = r.get(0)?;
    let content: String = r.get(2)?;
    let category: String = r.get(4)?;
    let tags: String = r.get(5)?;
    let visibility: String = r.get(6)?;
    let conversation_id: Option<String> = r.get(7)?;
    let metadata: String = r.get(8)?;
    Ok(MemoryVersion {
        memory_id: stored(MemoryId::parse(&memory_id))?,
        version: r.get(1)?,
        content: stored(Content::parse(&content))?,
        content_hash: ContentHash::from_stored(r.get(3)?),
        category: stored(Category::parse(&category))?,
        tags: Tags::from_stored_json(&tags),
        visibility: stored(Visibility::from_str(&visibility))?,
        conversation_id: conversation_id
            .map(|c| stored(ConversationId::parse(&c)))
            .transpose()?,
        metadata: Metadata::from_stored_json(&metadata),
        occurred_at: Timestamp::from_micros(r.get(9)?),
        created_at: Timestamp::from_micros(r.get(10)?),
    })
}

pub fn get(conn: &Connection, uid: &Uid, id: MemoryId) -> Result<Memory, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM memories WHERE uid = ?1 AND id = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), id.to_string()], memory_from_row)
            .optional()
    })
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)
}

fn active_with_hash(
    conn: &Connection,
    uid: &Uid,
    hash: &ContentHash,
) -> Result<Option<Memory>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM memories WHERE uid = ?1 AND content_hash = ?2 AND deleted_at IS NULL"
    ))
    .and_then(|mut s| {
        s.query_row(params![uid.as_str(), hash.as_str()], memory_from_row)
            .optional()
    })
    .map_err(db_error)
}

fn insert_row(conn: &Connection, m: &Memory) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO memories ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            m.id.to_string(),
            m.uid.as_str(),
            m.content.as_str(),
            m.category.as_str(),
            m.tags.to_json(),
            m.visibility.as_str(),
            m.source.as_str(),
            m.conversation_id.as_ref().map(ConversationId::as_str),
            m.metadata.to_json(),
            m.occurred_at.as_micros(),
            m.created_at.as_micros(),
            m.updated_at.as_micros(),
            m.deleted_at.map(Timestamp::as_micros),
            m.version,
            m.content_hash.as_str(),
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

fn insert_version(conn: &Connection, uid: &Uid, v: &MemoryVersion) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO memory_versions (uid, memory_id, version, content, content_hash, category, tags, visibility,
                                      conversation_id, metadata, occurred_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            uid.as_str(),
            v.memory_id.to_string(),
            v.version,
            v.content.as_str(),
            v.content_hash.as_str(),
            v.category.as_str(),
            v.tags.to_json(),
            v.visibility.as_str(),
            v.conversation_id.as_ref().map(ConversationId::as_str),
            v.metadata.to_json(),
            v.occurred_at.as_micros(),
            v.created_at.as_micros(),
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

fn replace_tags(conn: &Connection, uid: &Uid, id: MemoryId, tags: &Tags) -> Result<(), StoreError> {
    let id = id.to_string();
    conn.prepare_cached("DELETE FROM memory_tags WHERE uid = ?1 AND memory_id = ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), id]))
        .map_err(db_error)?;
    let mut insert = conn
        .prepare_cached("INSERT INTO memory_tags (uid, tag, memory_id) VALUES (?1, ?2, ?3)")
        .map_err(db_error)?;
    for tag in tags.iter() {
        insert
            .execute(params![uid.as_str(), tag.as_str(), id])
            .map_err(db_error)?;
    }
    Ok(())
}

/// The version row that records a memory's current state.
fn snapshot(m: &Memory, written_at: Timestamp) -> MemoryVersion {
    MemoryVersion {
        memory_id: m.id,
        version: m.version,
        content: m.content.clone(),
        category: m.category,
        tags: m.tags.clone(),
        visibility: m.visibility,
        conversation_id: m.conversation_id.clone(),
        metadata: m.metadata.clone(),
        occurred_at: m.occurred_at,
        content_hash: m.content_hash.clone(),
        created_at: written_at,
    }
}

pub fn create(
    conn: &Connection,
    uid: &Uid,
    new: NewMemory,
    ctx: &Context,
) -> Result<Created, StoreError> {
    accounts::require_user(conn, uid)?;
    let content_hash = new.content.hash();
    if let Some(existing) = active_with_hash(conn, uid, &content_hash)? {
        return Ok(Created::Duplicate(existing));
    }
    let now = Timestamp::now();
    let memory = Memory {
        id: MemoryId::new(),
        uid: uid.clone(),
        content: new.content,
        category: new.category,
        tags: new.tags,
        visibility: new.visibility,
        source: new.source,
        conversation_id: new.conversation_id,
        metadata: new.metadata,
        occurred_at: new.occurred_at.unwrap_or(now),
        created_at: now,
        updated_at: now,
        deleted_at: None,
        version: 1,
        content_hash,
    };
    insert_row(conn, &memory)?;
    insert_version(conn, uid, &snapshot(&memory, now))?;
    replace_tags(conn, uid, memory.id, &memory.tags)?;
    audit::append(
        conn,
        uid,
        "memory.create",
        Some(memory.id),
        ctx,
        json!({"version": 1, "source": memory.source}),
    )?;
    Ok(Created::New(memory))
}

pub fn update(
    conn: &Connection,
    uid: &Uid,
    id: MemoryId,
    expected_version: i64,
    patch: MemoryPatch,
    ctx: &Context,
) -> Result<Memory, StoreError> {
    let current = get(conn, uid, id)?;
    if current.is_deleted() {
        return Err(StoreError::Deleted);
    }
    if current.version != expected_version {
        return Err(StoreError::VersionConflict {
            current: current.version,
        });
    }
    let mut next = current.clone();
    let mut changed: Vec<&str> = Vec::new();
    if let Some(content) = patch.content.filter(|c| *c != current.content) {
        next.content_hash = content.hash();
        next.content = content;
        changed.push("content");
    }
    if let Some(category) = patch.category.filter(|c| *c != current.category) {
        next.category = category;
        changed.push("category");
    }
    if let Some(tags) = patch.tags.filter(|t| *t != current.tags) {
        next.tags = tags;
        changed.push("tags");
    }
    if let Some(visibility) = patch.visibility.filter(|v| *v != current.visibility) {
        next.visibility = visibility;
        changed.push("visibility");
    }
    if let Some(metadata) = patch.metadata.filter(|m| *m != current.metadata) {
        next.metadata = metadata;
        changed.push("metadata");
    }
    if let Some(occurred_at) = patch.occurred_at.filter(|o| *o != current.occurred_at) {
        next.occurred_at = occurred_at;
        changed.push("occurred_at");
    }
    // An update that changes nothing writes no version: history records changes, not requests.
    if changed.is_empty() {
        return Ok(current);
    }
    if changed.contains(&"content")
        && let Some(other) = active_with_hash(conn, uid, &next.content_hash)?
    {
        return Err(StoreError::Conflict(format!(
            "memory {} already has this content",
            other.id
        )));
    }
    let now = Timestamp::now();
    next.version += 1;
    next.updated_at = now;
    let rows = conn
        .prepare_cached(
            "UPDATE memories SET content = ?3, content_hash = ?4, category = ?5, tags = ?6, visibility = ?7,
                    metadata = ?8, occurred_at = ?9, updated_at = ?10, version = ?11
             WHERE uid = ?1 AND id = ?2 AND version = ?12",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid.as_str(),
                id.to_string(),
                next.content.as_str(),
                next.content_hash.as_str(),
                next.category.as_str(),
                next.tags.to_json(),
                next.visibility.as_str(),
                next.metadata.to_json(),
                next.occurred_at.as_micros(),
                now.as_micros(),
                next.version,
                current.version,
            ])
        })
        .map_err(db_error)?;
    if rows != 1 {
        return Err(StoreError::VersionConflict {
            current: get(conn, uid, id)?.version,
        });
    }
    insert_version(conn, uid, &snapshot(&next, now))?;
    if changed.contains(&"tags") {
        replace_tags(conn, uid, id, &next.tags)?;
    }
    audit::append(
        conn,
        uid,
        "memory.update",
        Some(id),
        ctx,
        json!({"version": next.version, "changed": changed}),
    )?;
    Ok(next)
}

pub fn delete(
    conn: &Connection,
    uid: &Uid,
    id: MemoryId,
    expected_version: Option<i64>,
    ctx: &Context,
) -> Result<Deleted, StoreError> {
    let mut memory = get(conn, uid, id)?;
    if let Some(expected) = expected_version
        && expected != memory.version
    {
        return Err(StoreError::VersionConflict {
            current: memory.version,
        });
    }
    if memory.is_deleted() {
        return Ok(Deleted::Already(memory));
    }
    let now = Timestamp::now();
    conn.prepare_cached("UPDATE memories SET deleted_at = ?3 WHERE uid = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), id.to_string(), now.as_micros()]))
        .map_err(db_error)?;
    audit::append(
        conn,
        uid,
        "memory.delete",
        Some(id),
        ctx,
        json!({"version": memory.version}),
    )?;
    memory.deleted_at = Some(now);
    Ok(Deleted::Now(memory))
}

pub fn restore(
    conn: &Connection,
    uid: &Uid,
    id: MemoryId,
    ctx: &Context,
) -> Result<Memory, StoreError> {
    let mut memory = get(conn, uid, id)?;
    if !memory.is_deleted() {
        return Ok(memory);
    }
    if let Some(other) = active_with_hash(conn, uid, &memory.content_hash)? {
        return Err(StoreError::Conflict(format!(
            "memory {} already has this content",
            other.id
        )));
    }
    conn.prepare_cached("UPDATE memories SET deleted_at = NULL WHERE uid = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![uid.as_str(), id.to_string()]))
        .map_err(db_error)?;
    audit::append(
        conn,
        uid,
        "memory.restore",
        Some(id),
        ctx,
        json!({"version": memory.version}),
    )?;
    memory.deleted_at = None;
    Ok(memory)
}

pub fn versions(
    conn: &Connection,
    uid: &Uid,
    id: MemoryId,
) -> Result<Vec<MemoryVersion>, StoreError> {
    let versions = conn
        .prepare_cached(
            "SELECT memory_id, version, content, content_hash, category, tags, visibility, conversation_id,
                    metadata, occurred_at, created_at
             FROM memory_versions WHERE uid = ?1 AND memory_id = ?2 ORDER BY version",
        )
        .and_then(|mut s| {
            s.query_map(params![uid.as_str(), id.to_string()], version_from_row)?.collect::<Result<Vec<_>, _>>()
        })
        .map_err(db_error)?;
    if versions.is_empty() {
        Err(StoreError::NotFound)
    } else {
        Ok(versions)
    }
}

/// Adds "has any (or all) of these tags" to a query over `memories m`.
pub(super) fn push_tag_filter(
    sql: &mut String,
    args: &mut Vec<Value>,
    tags: &[crate::domain::Tag],
    mode: TagMatch,
) {
    if tags.is_empty() {
        return;
    }
    let slots = vec!["?"; tags.len()].join(", ");
    let matching = format!(
        "(SELECT COUNT(*) FROM memory_tags t WHERE t.uid = m.uid AND t.memory_id = m.id AND t.tag IN ({slots}))"
    );
    match mode {
        TagMatch::Any => sql.push_str(&format!(" AND {matching} > 0")),
        TagMatch::All => sql.push_str(&format!(" AND {matching} = {}", tags.len())),
    }
    args.extend(tags.iter().map(|t| Value::Text(t.as_str().to_owned())));
}

pub fn list(conn: &Connection, uid: &Uid, q: &ListQuery) -> Result<Page<Memory>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM memories m WHERE uid = ?");
    let mut args: Vec<Value> = vec![Value::Text(uid.as_str().to_owned())];
    match q.state {
        StateFilter::Active => sql.push_str(" AND deleted_at IS NULL"),
        StateFilter::Deleted => sql.push_str(" AND deleted_at IS NOT NULL"),
        StateFilter::All => {}
    }
    if let Some(category) = q.category {
        sql.push_str(" AND category = ?");
        args.push(Value::Text(category.as_str().to_owned()));
    }
    if let Some(source) = q.source {
        sql.push_str(" AND source = ?");
        args.push(Value::Text(source.as_str().to_owned()));
    }
    if let Some(conversation_id) = &q.conversation_id {
        sql.push_str(" AND conversation_id = ?");
        args.push(Value::Text(conversation_id.as_str().to_owned()));
    }
    for (column, range) in [("created_at", q.created), ("updated_at", q.updated)] {
        if let Some(from) = range.from {
            sql.push_str(&format!(" AND {column} >= ?"));
            args.push(from.as_micros().into());
        }
        if let Some(to) = range.to {
            sql.push_str(&format!(" AND {column} < ?"));
            args.push(to.as_micros().into());
        }
    }
    push_tag_filter(&mut sql, &mut args, &q.tags, q.tag_match);
    let (cmp, dir) = match q.order {
        SortOrder::Desc => ("<", "DESC"),
        SortOrder::Asc => (">", "ASC"),
    };
    if let Some(after) = &q.page.after {
        sql.push_str(&format!(" AND (created_at, id) {cmp} (?, ?)"));
        args.push(after.position.into());
        args.push(Value::Text(after.id.clone()));
    }
    sql.push_str(&format!(" ORDER BY created_at {dir}, id {dir} LIMIT ?"));
    args.push((i64::from(q.page.limit) + 1).into());

    let mut items = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args), memory_from_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(db_error)?;
    Ok(super::page_of(&mut items, q.page.limit, |m: &Memory| {
        Cursor::new(m.created_at.as_micros(), m.id.to_string())
    }))
}

/// Purges up to `batch` memories soft-deleted before the cutoff. Returns how many it purged.
pub fn purge_batch(
    conn: &Connection,
    uid: Option<&Uid>,
    deleted_before: Timestamp,
    batch: u32,
    ctx: &Context,
) -> Result<u64, StoreError> {
    let victims: Vec<(String, String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT uid, id, deleted_at FROM memories
             WHERE deleted_at IS NOT NULL AND deleted_at < ?1 AND (?2 IS NULL OR uid = ?2) LIMIT ?3",
        )
        .and_then(|mut s| {
            s.query_map(params![deleted_before.as_micros(), uid.map(Uid::as_str), batch], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(db_error)?;
    for (owner, id, deleted_at) in &victims {
        for table_sql in [
            "DELETE FROM memory_tags WHERE uid = ?1 AND memory_id = ?2",
            "DELETE FROM memory_versions WHERE uid = ?1 AND memory_id = ?2",
            "DELETE FROM memories WHERE uid = ?1 AND id = ?2",
        ] {
            conn.prepare_cached(table_sql)
                .and_then(|mut s| s.execute(params![owner, id]))
                .map_err(db_error)?;
        }
        let owner = stored(Uid::parse(owner.clone())).map_err(db_error)?;
        let memory_id = MemoryId::parse(id).map_err(|e| StoreError::Internal(e.to_string()))?;
        let deleted_at = deleted_at.map(Timestamp::from_micros);
        audit::append(
            conn,
            &owner,
            "memory.purge",
            Some(memory_id),
            ctx,
            json!({"deleted_at": deleted_at}),
        )?;
    }
    Ok(victims.len() as u64)
}

pub fn stats(conn: &Connection, uid: &Uid) -> Result<Stats, StoreError> {
    let mut stats = Stats::default();
    let mut by_state = conn
        .prepare_cached(
            "SELECT deleted_at IS NULL, category, source, COUNT(*), SUM(LENGTH(CAST(content AS BLOB))),
                    MIN(created_at), MAX(created_at)
             FROM memories WHERE uid = ?1 GROUP BY 1, 2, 3",
        )
        .map_err(db_error)?;
    let mut rows = by_state.query([uid.as_str()]).map_err(db_error)?;
    while let Some(r) = rows.next().map_err(db_error)? {
        let active: bool = r.get(0).map_err(db_error)?;
        let count: i64 = r.get(3).map_err(db_error)?;
        let count = count as u64;
        if !active {
            stats.deleted += count;
            continue;
        }
        let category: String = r.get(1).map_err(db_error)?;
        let source: String = r.get(2).map_err(db_error)?;
        let bytes: i64 = r.get(4).map_err(db_error)?;
        let (oldest, newest): (i64, i64) =
            (r.get(5).map_err(db_error)?, r.get(6).map_err(db_error)?);
        stats.active += count;
        stats.bytes += bytes as u64;
        *stats.by_category.entry(category).or_default() += count;
        *stats.by_source.entry(source).or_default() += count;
        let (oldest, newest) = (
            Timestamp::from_micros(oldest),
            Timestamp::from_micros(newest),
        );
        stats.oldest = Some(stats.oldest.map_or(oldest, |o| o.min(oldest)));
        stats.newest = Some(stats.newest.map_or(newest, |n| n.max(newest)));
    }
    stats.by_tag = conn
        .prepare_cached(
            "SELECT t.tag, COUNT(*) FROM memory_tags t
             JOIN memories m ON m.uid = t.uid AND m.id = t.memory_id
             WHERE t.uid = ?1 AND m.deleted_at IS NULL
             GROUP BY t.tag ORDER BY COUNT(*) DESC, t.tag LIMIT 100",
        )
        .and_then(|mut s| {
            s.query_map([uid.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .map_err(db_error)?;
    stats.versions = conn
        .query_row(
            "SELECT COUNT(*) FROM memory_versions WHERE uid = ?1",
            [uid.as_str()],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_error)? as u64;
    Ok(stats)
}

/// Oldest first, so an export reads like the user's history.
pub fn export_page(
    conn: &Connection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<ExportedMemory>, StoreError> {
    let mut query = ListQuery::new(page.clone());
    query.state = StateFilter::All;
    query.order = SortOrder::Asc;
    let memories = list(conn, uid, &query)?;
    let items = memories
        .items
        .into_iter()
        .map(|memory| {
            Ok(ExportedMemory {
                versions: versions(conn, uid, memory.id)?,
                memory,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page {
        items,
        next_cursor: memories.next_cursor,
    })
}

pub fn import(
    conn: &Connection,
    uid: &Uid,
    records: Vec<ExportedMemory>,
    ctx: &Context,
) -> Result<ImportReport, StoreError> {
    accounts::require_user(conn, uid)?;
    let mut report = ImportReport::default();
    for record in records {
        // The file's uid is never trusted: everything lands in the caller's account.
        let mut memory = record.memory;
        memory.uid = uid.clone();
        let id = memory.id;
        if let Some(existing) = get(conn, uid, id).map(Some).or_else(|e| match e {
            StoreError::NotFound => Ok(None),
            other => Err(other),
        })? {
            let same_history = versions(conn, uid, id)?
                .iter()
                .map(|v| (v.version, &v.content_hash))
                .eq(record.versions.iter().map(|v| (v.version, &v.content_hash)));
            if same_history && existing.version == memory.version {
                report.unchanged += 1;
            } else {
                report.skipped.push(ImportSkip {
                    id,
                    reason: "this id exists with a different history".into(),
                });
            }
            continue;
        }
        if !memory.is_deleted()
            && let Some(other) = active_with_hash(conn, uid, &memory.content_hash)?
        {
            report.skipped.push(ImportSkip {
                id,
                reason: format!("memory {} already has this content", other.id),
            });
            continue;
        }
        insert_row(conn, &memory)?;
        for version in &record.versions {
            insert_version(conn, uid, version)?;
        }
        replace_tags(conn, uid, id, &memory.tags)?;
        audit::append(
            conn,
            uid,
            "memory.import",
            Some(id),
            ctx,
            json!({"versions": record.versions.len()}),
        )?;
        report.imported += 1;
    }
    Ok(report)
}
