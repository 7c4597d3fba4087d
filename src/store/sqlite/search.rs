//! Search in the embedded backend: what search holds in memory of each user and the log of its
//! changes, FTS5 (BM25) over conversations, stored vectors and the embedding queue. Every query is
//! scoped by the caller's uid.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{db_error, ingest, memories, stored};
use crate::domain::{Memory, MemoryId, Timestamp, Uid};
use crate::store::{
    ConversationHit, EmbeddingCounts, EmbeddingJob, EmbeddingOutcome, EmbeddingStatus,
    SearchFilter, SearchableMemory, StoreError, VectorModel, change_log_reaches, decode_vector,
};

fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends ` AND …` conditions on the memories alias `m` for the filter.
fn push_filter(filter: &SearchFilter, sql: &mut String, args: &mut Vec<Value>) {
    if let Some(category) = filter.category {
        sql.push_str(" AND m.category = ?");
        args.push(Value::Text(category.as_str().to_owned()));
    }
    if let Some(source) = filter.source {
        sql.push_str(" AND m.source = ?");
        args.push(Value::Text(source.as_str().to_owned()));
    }
    if let Some(conversation_id) = &filter.conversation_id {
        sql.push_str(" AND m.conversation_id = ?");
        args.push(Value::Text(conversation_id.as_str().to_owned()));
    }
    if let Some(from) = filter.created.from {
        sql.push_str(" AND m.created_at >= ?");
        args.push(from.as_micros().into());
    }
    if let Some(to) = filter.created.to {
        sql.push_str(" AND m.created_at < ?");
        args.push(to.as_micros().into());
    }
    super::memories::push_tag_filter(sql, args, &filter.tags, filter.tag_match);
}

pub fn memories_by_ids(
    conn: &Connection,
    uid: &Uid,
    ids: &[MemoryId],
) -> Result<Vec<Memory>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match memories::get(conn, uid, *id) {
            Ok(m) if !m.is_deleted() => out.push(m),
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub fn filtered_memory_ids(
    conn: &Connection,
    uid: &Uid,
    filter: &SearchFilter,
) -> Result<Vec<MemoryId>, StoreError> {
    let mut sql =
        String::from("SELECT m.id FROM memories m WHERE m.uid = ? AND m.deleted_at IS NULL");
    let mut args = vec![Value::Text(uid.as_str().to_owned())];
    push_filter(filter, &mut sql, &mut args);
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args), |r| {
                stored(MemoryId::parse(&r.get::<_, String>(0)?))
            })?
            .collect()
        })
        .map_err(db_error)
}

pub fn search_conversations(
    conn: &Connection,
    uid: &Uid,
    fts_query: &str,
    limit: u32,
) -> Result<Vec<ConversationHit>, StoreError> {
    if fts_query.trim().is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let width = ingest::CONVERSATION_COLUMNS.split(',').count();
    conn.prepare_cached(&format!(
        "SELECT {}, bm25(conversations_fts, 4.0, 2.0, 1.0) AS score,
                snippet(conversations_fts, -1, '[', ']', '…', 16)
         FROM {index}.conversations_fts
         CROSS JOIN {index}.conversation_docs d ON d.doc = conversations_fts.rowid
         CROSS JOIN conversations c ON c.uid = d.uid AND c.id = d.conversation_id
         WHERE conversations_fts MATCH ?1 AND d.uid = ?2
         ORDER BY score LIMIT ?3",
        prefixed(ingest::CONVERSATION_COLUMNS, "c"),
        index = super::conversation_index::SCHEMA,
    ))
    .and_then(|mut s| {
        s.query_map(params![fts_query, uid.as_str(), limit], |r| {
            Ok(ConversationHit {
                conversation: ingest::conversation_from_row(r)?,
                score: -r.get::<_, f64>(width)?,
                snippet: r.get(width + 1)?,
            })
        })?
        .collect()
    })
    .map_err(db_error)
}

pub fn search_generation(conn: &Connection, uid: &Uid) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT generation FROM search_generations WHERE uid = ?1")
        .and_then(|mut s| s.query_row([uid.as_str()], |r| r.get(0)).optional())
        .map(Option::unwrap_or_default)
        .map_err(db_error)
}

pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn search_changes(
    conn: &Connection,
    uid: &Uid,
    since: i64,
) -> Result<Option<Vec<MemoryId>>, StoreError> {
    let current = search_generation(conn, uid)?;
    if !change_log_reaches(since, current) {
        return Ok(None);
    }
    conn.prepare_cached(
        "SELECT DISTINCT memory_id FROM search_changes WHERE uid = ?1 AND generation > ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![uid.as_str(), since], |r| {
            stored(MemoryId::parse(&r.get::<_, String>(0)?))
        })?
        .collect()
    })
    .map(Some)
    .map_err(db_error)
}

pub fn searchable_memories(
    conn: &Connection,
    uid: &Uid,
    model: Option<&VectorModel>,
    only: Option<&[MemoryId]>,
) -> Result<Vec<SearchableMemory>, StoreError> {
    let only_json = only.map(|ids| {
        serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    });
    // Two scans joined here rather than one SQL join: each reads its table in key order, where the
    // join looked every vector up at random and took five times as long at 100,000 memories.
    let mut vectors: HashMap<String, (String, Vec<f32>)> = HashMap::new();
    if let Some(model) = model {
        let mut statement = conn
            .prepare_cached(
                "SELECT memory_id, content_hash, vector FROM memory_embeddings
                 WHERE uid = ?1 AND model = ?2 AND revision = ?3 AND dim = ?4 AND vector IS NOT NULL
                   AND (?5 IS NULL OR memory_id IN (SELECT value FROM json_each(?5)))",
            )
            .map_err(db_error)?;
        let mut rows = statement
            .query(params![
                uid.as_str(),
                model.name,
                model.revision,
                model.dim as i64,
                only_json
            ])
            .map_err(db_error)?;
        while let Some(r) = rows.next().map_err(db_error)? {
            let id: String = r.get(0).map_err(db_error)?;
            let blob =
                r.get_ref(2).map_err(db_error)?.as_blob().map_err(|e| {
                    StoreError::Internal(format!("stored vector is not a blob: {e}"))
                })?;
            let vector = decode_vector(&id, blob, model.dim)?;
            vectors.insert(id, (r.get(1).map_err(db_error)?, vector));
        }
    }
    let mut statement = conn
        .prepare_cached(
            "SELECT id, content, tags, conversation_id, occurred_at, created_at, content_hash
             FROM memories
             WHERE uid = ?1 AND deleted_at IS NULL
               AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))",
        )
        .map_err(db_error)?;
    let mut rows = statement
        .query(params![uid.as_str(), only_json])
        .map_err(db_error)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db_error)? {
        let id: String = r.get(0).map_err(db_error)?;
        let content_hash: String = r.get(6).map_err(db_error)?;
        // Only a vector of the current content counts.
        let vector = vectors
            .remove(&id)
            .filter(|(hash, _)| *hash == content_hash)
            .map(|(_, v)| v);
        out.push(SearchableMemory {
            id: stored(MemoryId::parse(&id)).map_err(db_error)?,
            content: r.get(1).map_err(db_error)?,
            tags: r.get(2).map_err(db_error)?,
            conversation_id: r.get(3).map_err(db_error)?,
            occurred_at: Timestamp::from_micros(r.get(4).map_err(db_error)?),
            created_at: Timestamp::from_micros(r.get(5).map_err(db_error)?),
            vector,
        });
    }
    out.sort_unstable_by(|a, b| a.conversation_order().cmp(&b.conversation_order()));
    Ok(out)
}

pub fn enqueue_stale(conn: &Connection, model: &VectorModel) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO embedding_queue (uid, memory_id, next_attempt_at)
         SELECT m.uid, m.id, 0 FROM memories m
         LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
         WHERE m.deleted_at IS NULL
           AND (e.memory_id IS NULL OR e.model != ?1 OR e.revision != ?2 OR e.dim != ?3
                OR e.content_hash != m.content_hash)",
    )
    .and_then(|mut s| s.execute(params![model.name, model.revision, model.dim as i64]))
    .map(|n| n as u64)
    .map_err(db_error)
}

pub fn backlog(
    conn: &Connection,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<EmbeddingJob>, StoreError> {
    conn.prepare_cached(
        "SELECT q.uid, q.memory_id, m.content, m.content_hash, q.attempts FROM embedding_queue q
         JOIN memories m ON m.uid = q.uid AND m.id = q.memory_id
         WHERE q.next_attempt_at <= ?1 AND m.deleted_at IS NULL
         ORDER BY q.next_attempt_at LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![now.as_micros(), limit], |r| {
            Ok(EmbeddingJob {
                uid: stored(Uid::parse(r.get::<_, String>(0)?))?,
                memory_id: stored(MemoryId::parse(&r.get::<_, String>(1)?))?,
                content: r.get(2)?,
                content_hash: r.get(3)?,
                attempts: r.get(4)?,
            })
        })?
        .collect()
    })
    .map_err(db_error)
}

pub fn save_embeddings(
    conn: &Connection,
    model: &VectorModel,
    results: Vec<(EmbeddingJob, EmbeddingOutcome)>,
) -> Result<(), StoreError> {
    let now = Timestamp::now().as_micros();
    for (job, outcome) in results {
        let (uid, id) = (job.uid.as_str(), job.memory_id.to_string());
        // A memory edited (or deleted) while its old text was being embedded: the vector is stale and
        // the queue row stays for the new text.
        let current: Option<(String, Option<i64>)> = conn
            .prepare_cached(
                "SELECT content_hash, deleted_at FROM memories WHERE uid = ?1 AND id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![uid, id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db_error)?;
        let unchanged = matches!(&current, Some((hash, None)) if *hash == job.content_hash);
        if !unchanged {
            if !matches!(&current, Some((_, None))) {
                conn.prepare_cached(
                    "DELETE FROM embedding_queue WHERE uid = ?1 AND memory_id = ?2",
                )
                .and_then(|mut s| s.execute(params![uid, id]))
                .map_err(db_error)?;
            }
            continue;
        }
        let (vector, error) = match outcome {
            EmbeddingOutcome::Vector(v) => {
                if v.len() != model.dim {
                    return Err(StoreError::Internal(format!(
                        "vector of length {} for a model of dimension {}",
                        v.len(),
                        model.dim
                    )));
                }
                (Some(encode_vector(&v)), None)
            }
            EmbeddingOutcome::Failed(error) => (None, Some(error)),
            EmbeddingOutcome::Retry(at) => {
                conn.prepare_cached(
                    "UPDATE embedding_queue SET attempts = attempts + 1, next_attempt_at = ?3
                     WHERE uid = ?1 AND memory_id = ?2",
                )
                .and_then(|mut s| s.execute(params![uid, id, at.as_micros()]))
                .map_err(db_error)?;
                continue;
            }
        };
        conn.prepare_cached(
            "INSERT OR REPLACE INTO memory_embeddings
                 (uid, memory_id, model, revision, dim, content_hash, vector, error, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                uid,
                id,
                model.name,
                model.revision,
                model.dim as i64,
                job.content_hash,
                vector,
                error,
                now
            ])
        })
        .map_err(db_error)?;
        conn.prepare_cached("DELETE FROM embedding_queue WHERE uid = ?1 AND memory_id = ?2")
            .and_then(|mut s| s.execute(params![uid, id]))
            .map_err(db_error)?;
    }
    Ok(())
}

/// `ready`, `failed` or `pending` for one memory's row (if any) against the current model.
const STATUS_SQL: &str = "CASE
        WHEN e.memory_id IS NULL OR e.content_hash != m.content_hash
             OR (?2 IS NOT NULL AND (e.model != ?2 OR e.revision != ?3 OR e.dim != ?4)) THEN 'pending'
        WHEN e.vector IS NOT NULL THEN 'ready'
        ELSE 'failed' END";

fn status_of(raw: &str) -> EmbeddingStatus {
    match raw {
        "ready" => EmbeddingStatus::Ready,
        "failed" => EmbeddingStatus::Failed,
        _ => EmbeddingStatus::Pending,
    }
}

fn model_params(model: Option<&VectorModel>) -> (Option<String>, Option<String>, Option<i64>) {
    model.map_or((None, None, None), |m| {
        (
            Some(m.name.clone()),
            Some(m.revision.clone()),
            Some(m.dim as i64),
        )
    })
}

pub fn embedding_status(
    conn: &Connection,
    uid: &Uid,
    id: MemoryId,
    model: Option<&VectorModel>,
) -> Result<EmbeddingStatus, StoreError> {
    let (name, revision, dim) = model_params(model);
    conn.prepare_cached(&format!(
        "SELECT {STATUS_SQL} FROM memories m
         LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
         WHERE m.uid = ?1 AND m.id = ?5"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![uid.as_str(), name, revision, dim, id.to_string()],
            |r| r.get::<_, String>(0),
        )
        .optional()
    })
    .map_err(db_error)?
    .map(|raw| status_of(&raw))
    .ok_or(StoreError::NotFound)
}

pub fn embedding_counts(
    conn: &Connection,
    uid: &Uid,
    model: Option<&VectorModel>,
) -> Result<EmbeddingCounts, StoreError> {
    let (name, revision, dim) = model_params(model);
    let mut counts = EmbeddingCounts::default();
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {STATUS_SQL} AS status, COUNT(*) FROM memories m
             LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
             WHERE m.uid = ?1 AND m.deleted_at IS NULL GROUP BY status"
        ))
        .map_err(db_error)?;
    let mut rows = statement
        .query(params![uid.as_str(), name, revision, dim])
        .map_err(db_error)?;
    while let Some(r) = rows.next().map_err(db_error)? {
        let status: String = r.get(0).map_err(db_error)?;
        let count = r.get::<_, i64>(1).map_err(db_error)? as u64;
        match status_of(&status) {
            EmbeddingStatus::Pending => counts.pending += count,
            EmbeddingStatus::Ready => counts.ready += count,
            EmbeddingStatus::Failed => counts.failed += count,
        }
    }
    Ok(counts)
}
