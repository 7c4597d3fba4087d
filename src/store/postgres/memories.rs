//! Memories, their versions and tags.

use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::str::FromStr;

use super::rows::{col, db_error, is_unique_violation, page_limit, page_of, stored};
use super::{accounts, audit};
use crate::domain::{
    Category, Content, ContentHash, ConversationId, Cursor, Memory, MemoryId, MemoryVersion,
    Metadata, Source, Tag, Tags, Timestamp, Uid, Visibility,
};
use crate::store::{
    Context, Created, Deleted, ExportedMemory, ImportReport, ImportSkip, ListQuery, MemoryPatch,
    NewMemory, Page, PageRequest, SortOrder, StateFilter, Stats, StoreError, TagMatch,
};

pub(super) const COLUMNS: &str = "m.id, m.uid, m.content, m.category, m.tags, m.visibility, m.source, \
     m.conversation_id, m.metadata, m.occurred_at, m.created_at, m.updated_at, m.deleted_at, m.version, m.content_hash";

/// Reads a row selected with [`COLUMNS`].
pub(super) fn memory_from_row(r: &PgRow) -> Result<Memory, StoreError> {
    Ok(Memory {
        id: stored(MemoryId::parse(&col::<String>(r, 0)?))?,
        uid: stored(Uid::parse(col::<String>(r, 1)?))?,
        content: stored(Content::parse(&col::<String>(r, 2)?))?,
        category: stored(Category::parse(&col::<String>(r, 3)?))?,
        tags: Tags::from_stored_json(&col::<String>(r, 4)?),
        visibility: stored(Visibility::from_str(&col::<String>(r, 5)?))?,
        source: stored(Source::from_str(&col::<String>(r, 6)?))?,
        conversation_id: col::<Option<String>>(r, 7)?
            .map(|c| stored(ConversationId::parse(&c)))
            .transpose()?,
        metadata: Metadata::from_stored_json(&col::<String>(r, 8)?),
        occurred_at: Timestamp::from_micros(col(r, 9)?),
        created_at: Timestamp::from_micros(col(r, 10)?),
        updated_at: Timestamp::from_micros(col(r, 11)?),
        deleted_at: col::<Option<i64>>(r, 12)?.map(Timestamp::from_micros),
        version: col(r, 13)?,
        content_hash: ContentHash::from_stored(col(r, 14)?),
    })
}

fn version_from_row(r: &PgRow) -> Result<MemoryVersion, StoreError> {
    Ok(MemoryVersion {
        memory_id: stored(MemoryId::parse(&col::<String>(r, 0)?))?,
        version: col(r, 1)?,
        content: stored(Content::parse(&col::<String>(r, 2)?))?,
        content_hash: ContentHash::from_stored(col(r, 3)?),
        category: stored(Category::parse(&col::<String>(r, 4)?))?,
        tags: Tags::from_stored_json(&col::<String>(r, 5)?),
        visibility: stored(Visibility::from_str(&col::<String>(r, 6)?))?,
        conversation_id: col::<Option<String>>(r, 7)?
            .map(|c| stored(ConversationId::parse(&c)))
            .transpose()?,
        metadata: Metadata::from_stored_json(&col::<String>(r, 8)?),
        occurred_at: Timestamp::from_micros(col(r, 9)?),
        created_at: Timestamp::from_micros(col(r, 10)?),
    })
}

pub async fn get(c: &mut PgConnection, uid: &Uid, id: MemoryId) -> Result<Memory, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM memories m WHERE m.uid = $1 AND m.id = $2"
    ))
    .bind(uid.as_str())
    .bind(id.to_string())
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .ok_or(StoreError::NotFound)?;
    memory_from_row(&row)
}

async fn active_with_hash(
    c: &mut PgConnection,
    uid: &Uid,
    hash: &ContentHash,
) -> Result<Option<Memory>, StoreError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM memories m WHERE m.uid = $1 AND m.content_hash = $2 AND m.deleted_at IS NULL"
    ))
    .bind(uid.as_str())
    .bind(hash.as_str())
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .map(|r| memory_from_row(&r))
    .transpose()
}

/// A unique-index refusal means another transaction wrote the same active content first.
fn duplicate_content(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict("another memory already has this content".into())
    } else {
        db_error(error)
    }
}

async fn insert_row(c: &mut PgConnection, m: &Memory) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memories (id, uid, content, category, tags, visibility, source, conversation_id, metadata,
                               occurred_at, created_at, updated_at, deleted_at, version, content_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(m.id.to_string())
    .bind(m.uid.as_str())
    .bind(m.content.as_str())
    .bind(m.category.as_str())
    .bind(m.tags.to_json())
    .bind(m.visibility.as_str())
    .bind(m.source.as_str())
    .bind(m.conversation_id.as_ref().map(ConversationId::as_str))
    .bind(m.metadata.to_json())
    .bind(m.occurred_at.as_micros())
    .bind(m.created_at.as_micros())
    .bind(m.updated_at.as_micros())
    .bind(m.deleted_at.map(Timestamp::as_micros))
    .bind(m.version)
    .bind(m.content_hash.as_str())
    .execute(c)
    .await
    .map_err(duplicate_content)?;
    Ok(())
}

async fn insert_version(
    c: &mut PgConnection,
    uid: &Uid,
    v: &MemoryVersion,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memory_versions (uid, memory_id, version, content, content_hash, category, tags, visibility,
                                      conversation_id, metadata, occurred_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(uid.as_str())
    .bind(v.memory_id.to_string())
    .bind(v.version)
    .bind(v.content.as_str())
    .bind(v.content_hash.as_str())
    .bind(v.category.as_str())
    .bind(v.tags.to_json())
    .bind(v.visibility.as_str())
    .bind(v.conversation_id.as_ref().map(ConversationId::as_str))
    .bind(v.metadata.to_json())
    .bind(v.occurred_at.as_micros())
    .bind(v.created_at.as_micros())
    .execute(c)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn replace_tags(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
    tags: &Tags,
) -> Result<(), StoreError> {
    let id = id.to_string();
    sqlx::query("DELETE FROM memory_tags WHERE uid = $1 AND memory_id = $2")
        .bind(uid.as_str())
        .bind(&id)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    let tags: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
    if tags.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO memory_tags (uid, tag, memory_id) SELECT $1, tag, $3 FROM UNNEST($2::text[]) AS tag",
    )
    .bind(uid.as_str())
    .bind(&tags)
    .bind(&id)
    .execute(c)
    .await
    .map_err(db_error)?;
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

pub async fn create(
    c: &mut PgConnection,
    uid: &Uid,
    new: NewMemory,
    ctx: &Context,
) -> Result<Created, StoreError> {
    accounts::lock_user(c, uid).await?;
    let content_hash = new.content.hash();
    if let Some(existing) = active_with_hash(c, uid, &content_hash).await? {
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
    insert_row(c, &memory).await?;
    insert_version(c, uid, &snapshot(&memory, now)).await?;
    replace_tags(c, uid, memory.id, &memory.tags).await?;
    audit::append(
        c,
        uid,
        "memory.create",
        Some(memory.id),
        ctx,
        json!({"version": 1, "source": memory.source}),
    )
    .await?;
    Ok(Created::New(memory))
}

pub async fn update(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
    expected_version: i64,
    patch: MemoryPatch,
    ctx: &Context,
) -> Result<Memory, StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let current = get(c, uid, id).await?;
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
        && let Some(other) = active_with_hash(c, uid, &next.content_hash).await?
    {
        return Err(StoreError::Conflict(format!(
            "memory {} already has this content",
            other.id
        )));
    }
    let now = Timestamp::now();
    next.version += 1;
    next.updated_at = now;
    let rows = sqlx::query(
        "UPDATE memories SET content = $3, content_hash = $4, category = $5, tags = $6, visibility = $7,
                metadata = $8, occurred_at = $9, updated_at = $10, version = $11
         WHERE uid = $1 AND id = $2 AND version = $12",
    )
    .bind(uid.as_str())
    .bind(id.to_string())
    .bind(next.content.as_str())
    .bind(next.content_hash.as_str())
    .bind(next.category.as_str())
    .bind(next.tags.to_json())
    .bind(next.visibility.as_str())
    .bind(next.metadata.to_json())
    .bind(next.occurred_at.as_micros())
    .bind(now.as_micros())
    .bind(next.version)
    .bind(current.version)
    .execute(&mut *c)
    .await
    .map_err(duplicate_content)?
    .rows_affected();
    if rows != 1 {
        return Err(StoreError::VersionConflict {
            current: get(c, uid, id).await?.version,
        });
    }
    insert_version(c, uid, &snapshot(&next, now)).await?;
    if changed.contains(&"tags") {
        replace_tags(c, uid, id, &next.tags).await?;
    }
    audit::append(
        c,
        uid,
        "memory.update",
        Some(id),
        ctx,
        json!({"version": next.version, "changed": changed}),
    )
    .await?;
    Ok(next)
}

pub async fn delete(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
    expected_version: Option<i64>,
    ctx: &Context,
) -> Result<Deleted, StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let mut memory = get(c, uid, id).await?;
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
    sqlx::query("UPDATE memories SET deleted_at = $3 WHERE uid = $1 AND id = $2")
        .bind(uid.as_str())
        .bind(id.to_string())
        .bind(now.as_micros())
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
    audit::append(
        c,
        uid,
        "memory.delete",
        Some(id),
        ctx,
        json!({"version": memory.version}),
    )
    .await?;
    memory.deleted_at = Some(now);
    Ok(Deleted::Now(memory))
}

pub async fn restore(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
    ctx: &Context,
) -> Result<Memory, StoreError> {
    accounts::lock_user(c, uid)
        .await
        .map_err(|_| StoreError::NotFound)?;
    let mut memory = get(c, uid, id).await?;
    if !memory.is_deleted() {
        return Ok(memory);
    }
    if let Some(other) = active_with_hash(c, uid, &memory.content_hash).await? {
        return Err(StoreError::Conflict(format!(
            "memory {} already has this content",
            other.id
        )));
    }
    sqlx::query("UPDATE memories SET deleted_at = NULL WHERE uid = $1 AND id = $2")
        .bind(uid.as_str())
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map_err(duplicate_content)?;
    audit::append(
        c,
        uid,
        "memory.restore",
        Some(id),
        ctx,
        json!({"version": memory.version}),
    )
    .await?;
    memory.deleted_at = None;
    Ok(memory)
}

pub async fn versions(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
) -> Result<Vec<MemoryVersion>, StoreError> {
    let versions = sqlx::query(
        "SELECT memory_id, version, content, content_hash, category, tags, visibility, conversation_id,
                metadata, occurred_at, created_at
         FROM memory_versions WHERE uid = $1 AND memory_id = $2 ORDER BY version",
    )
    .bind(uid.as_str())
    .bind(id.to_string())
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(version_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    if versions.is_empty() {
        Err(StoreError::NotFound)
    } else {
        Ok(versions)
    }
}

/// Adds "has any (or all) of these tags" to a query over `memories m`.
pub(super) fn push_tag_filter(q: &mut QueryBuilder<'_, Postgres>, tags: &[Tag], mode: TagMatch) {
    if tags.is_empty() {
        return;
    }
    let tags: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
    let count = tags.len() as i64;
    q.push(
        " AND (SELECT COUNT(*) FROM memory_tags t WHERE t.uid = m.uid AND t.memory_id = m.id AND t.tag = ANY(",
    );
    q.push_bind(tags);
    match mode {
        TagMatch::Any => q.push(")) > 0"),
        TagMatch::All => q.push(")) = ").push_bind(count),
    };
}

pub async fn list(
    c: &mut PgConnection,
    uid: &Uid,
    query: &ListQuery,
) -> Result<Page<Memory>, StoreError> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM memories m WHERE m.uid = "));
    q.push_bind(uid.as_str().to_owned());
    match query.state {
        StateFilter::Active => q.push(" AND m.deleted_at IS NULL"),
        StateFilter::Deleted => q.push(" AND m.deleted_at IS NOT NULL"),
        StateFilter::All => &mut q,
    };
    if let Some(category) = query.category {
        q.push(" AND m.category = ").push_bind(category.as_str());
    }
    if let Some(source) = query.source {
        q.push(" AND m.source = ").push_bind(source.as_str());
    }
    if let Some(conversation_id) = &query.conversation_id {
        q.push(" AND m.conversation_id = ")
            .push_bind(conversation_id.as_str().to_owned());
    }
    for (column, range) in [("created_at", query.created), ("updated_at", query.updated)] {
        if let Some(from) = range.from {
            q.push(format!(" AND m.{column} >= "))
                .push_bind(from.as_micros());
        }
        if let Some(to) = range.to {
            q.push(format!(" AND m.{column} < "))
                .push_bind(to.as_micros());
        }
    }
    push_tag_filter(&mut q, &query.tags, query.tag_match);
    let (cmp, dir) = match query.order {
        SortOrder::Desc => ("<", "DESC"),
        SortOrder::Asc => (">", "ASC"),
    };
    if let Some(after) = &query.page.after {
        q.push(format!(" AND (m.created_at, m.id) {cmp} ("))
            .push_bind(after.position)
            .push(", ")
            .push_bind(after.id.clone())
            .push(")");
    }
    q.push(format!(" ORDER BY m.created_at {dir}, m.id {dir} LIMIT "))
        .push_bind(page_limit(query.page.limit));
    let items = q
        .build()
        .fetch_all(c)
        .await
        .map_err(db_error)?
        .iter()
        .map(memory_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, query.page.limit, |m: &Memory| {
        Cursor::new(m.created_at.as_micros(), m.id.to_string())
    }))
}

/// Purges up to `batch` memories soft-deleted before the cutoff. Returns how many it purged.
pub async fn purge_batch(
    c: &mut PgConnection,
    uid: Option<&Uid>,
    deleted_before: Timestamp,
    batch: i64,
    ctx: &Context,
) -> Result<u64, StoreError> {
    // Owners in a fixed order, so two purges never lock users in opposite orders.
    let victims = sqlx::query(
        "SELECT uid, id, deleted_at FROM memories
         WHERE deleted_at IS NOT NULL AND deleted_at < $1 AND ($2::text IS NULL OR uid = $2)
         ORDER BY uid, id LIMIT $3",
    )
    .bind(deleted_before.as_micros())
    .bind(uid.map(Uid::as_str))
    .bind(batch)
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?;
    let mut purged = 0;
    for row in &victims {
        let owner = stored(Uid::parse(col::<String>(row, 0)?))?;
        let id: String = col(row, 1)?;
        let deleted_at: Option<i64> = col(row, 2)?;
        accounts::lock_user(c, &owner).await?;
        for table_sql in [
            "DELETE FROM memory_tags WHERE uid = $1 AND memory_id = $2",
            "DELETE FROM memory_versions WHERE uid = $1 AND memory_id = $2",
            "DELETE FROM memories WHERE uid = $1 AND id = $2 AND deleted_at IS NOT NULL",
        ] {
            sqlx::query(table_sql)
                .bind(owner.as_str())
                .bind(&id)
                .execute(&mut *c)
                .await
                .map_err(db_error)?;
        }
        let memory_id = stored(MemoryId::parse(&id))?;
        audit::append(
            c,
            &owner,
            "memory.purge",
            Some(memory_id),
            ctx,
            json!({"deleted_at": deleted_at.map(Timestamp::from_micros)}),
        )
        .await?;
        purged += 1;
    }
    Ok(purged)
}

pub async fn stats(c: &mut PgConnection, uid: &Uid) -> Result<Stats, StoreError> {
    let mut stats = Stats::default();
    let rows = sqlx::query(
        "SELECT deleted_at IS NULL, category, source, COUNT(*), COALESCE(SUM(OCTET_LENGTH(content)), 0)::BIGINT,
                MIN(created_at), MAX(created_at)
         FROM memories WHERE uid = $1 GROUP BY 1, 2, 3",
    )
    .bind(uid.as_str())
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?;
    for r in &rows {
        let active: bool = col(r, 0)?;
        let count = col::<i64>(r, 3)? as u64;
        if !active {
            stats.deleted += count;
            continue;
        }
        let category: String = col(r, 1)?;
        let source: String = col(r, 2)?;
        let bytes: i64 = col(r, 4)?;
        let oldest = Timestamp::from_micros(col(r, 5)?);
        let newest = Timestamp::from_micros(col(r, 6)?);
        stats.active += count;
        stats.bytes += bytes as u64;
        *stats.by_category.entry(category).or_default() += count;
        *stats.by_source.entry(source).or_default() += count;
        stats.oldest = Some(stats.oldest.map_or(oldest, |o| o.min(oldest)));
        stats.newest = Some(stats.newest.map_or(newest, |n| n.max(newest)));
    }
    let tags = sqlx::query(
        "SELECT t.tag, COUNT(*) FROM memory_tags t
         JOIN memories m ON m.uid = t.uid AND m.id = t.memory_id
         WHERE t.uid = $1 AND m.deleted_at IS NULL
         GROUP BY t.tag ORDER BY COUNT(*) DESC, t.tag LIMIT 100",
    )
    .bind(uid.as_str())
    .fetch_all(&mut *c)
    .await
    .map_err(db_error)?;
    for r in &tags {
        stats
            .by_tag
            .insert(col::<String>(r, 0)?, col::<i64>(r, 1)? as u64);
    }
    stats.versions =
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM memory_versions WHERE uid = $1")
            .bind(uid.as_str())
            .fetch_one(c)
            .await
            .map_err(db_error)? as u64;
    Ok(stats)
}

/// Oldest first, so an export reads like the user's history.
pub async fn export_page(
    c: &mut PgConnection,
    uid: &Uid,
    page: &PageRequest,
) -> Result<Page<ExportedMemory>, StoreError> {
    let mut query = ListQuery::new(page.clone());
    query.state = StateFilter::All;
    query.order = SortOrder::Asc;
    let memories = list(c, uid, &query).await?;
    let mut items = Vec::with_capacity(memories.items.len());
    for memory in memories.items {
        items.push(ExportedMemory {
            versions: versions(c, uid, memory.id).await?,
            memory,
        });
    }
    Ok(Page {
        items,
        next_cursor: memories.next_cursor,
    })
}

pub async fn import(
    c: &mut PgConnection,
    uid: &Uid,
    records: Vec<ExportedMemory>,
    ctx: &Context,
) -> Result<ImportReport, StoreError> {
    accounts::lock_user(c, uid).await?;
    let mut report = ImportReport::default();
    for record in records {
        // The file's uid is never trusted: everything lands in the caller's account.
        let mut memory = record.memory;
        memory.uid = uid.clone();
        let id = memory.id;
        let existing = match get(c, uid, id).await {
            Ok(m) => Some(m),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if let Some(existing) = existing {
            let same_history = versions(c, uid, id)
                .await?
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
            && let Some(other) = active_with_hash(c, uid, &memory.content_hash).await?
        {
            report.skipped.push(ImportSkip {
                id,
                reason: format!("memory {} already has this content", other.id),
            });
            continue;
        }
        insert_row(c, &memory).await?;
        for version in &record.versions {
            insert_version(c, uid, version).await?;
        }
        replace_tags(c, uid, id, &memory.tags).await?;
        audit::append(
            c,
            uid,
            "memory.import",
            Some(id),
            ctx,
            json!({"versions": record.versions.len()}),
        )
        .await?;
        report.imported += 1;
    }
    Ok(report)
}
