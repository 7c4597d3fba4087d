//! Search in the shared backend: what search holds in memory of each user and the log of its changes,
//! PostgreSQL text search (tsvector, GIN, `ts_rank_cd`) over conversations, stored vectors and the
//! embedding queue. Every query is scoped by the caller's uid.

use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::rows::{col, db_error, stored};
use super::{ingest, memories};
use crate::domain::{Memory, MemoryId, Timestamp, Uid};
use crate::store::{
    ConversationHit, EmbeddingCounts, EmbeddingJob, EmbeddingOutcome, EmbeddingStatus,
    SearchFilter, SearchableMemory, StoreError, VectorModel, change_log_reaches, decode_vector,
};

/// Weights of the tsvector classes {D, C, B, A}: conversations put title in A, overview in B,
/// transcript in C (4 : 2 : 1).
const CONVERSATION_WEIGHTS: &str = "{0.1, 0.25, 0.5, 1.0}";

/// A `to_tsquery` expression matching any of the expression's terms. The store interface hands over
/// an FTS5-style `"a" OR "b"` expression (see `search::query`); its terms are reduced to letters and
/// digits again here, so no text whatsoever can make `to_tsquery` fail.
fn tsquery(fts_query: &str) -> Option<String> {
    let terms: Vec<String> = crate::search::query::terms_of_fts(fts_query)
        .iter()
        .map(|t| {
            t.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    (!terms.is_empty()).then(|| terms.join(" | "))
}

/// Appends ` AND …` conditions on the memories alias `m` for the filter.
fn push_filter(filter: &SearchFilter, q: &mut QueryBuilder<'_, Postgres>) {
    if let Some(category) = filter.category {
        q.push(" AND m.category = ").push_bind(category.as_str());
    }
    if let Some(source) = filter.source {
        q.push(" AND m.source = ").push_bind(source.as_str());
    }
    if let Some(conversation_id) = &filter.conversation_id {
        q.push(" AND m.conversation_id = ")
            .push_bind(conversation_id.as_str().to_owned());
    }
    if let Some(from) = filter.created.from {
        q.push(" AND m.created_at >= ").push_bind(from.as_micros());
    }
    if let Some(to) = filter.created.to {
        q.push(" AND m.created_at < ").push_bind(to.as_micros());
    }
    memories::push_tag_filter(q, &filter.tags, filter.tag_match);
}

pub async fn memories_by_ids(
    c: &mut PgConnection,
    uid: &Uid,
    ids: &[MemoryId],
) -> Result<Vec<Memory>, StoreError> {
    let wanted: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let found = sqlx::query(&format!(
        "SELECT {} FROM memories m WHERE m.uid = $1 AND m.id = ANY($2) AND m.deleted_at IS NULL",
        memories::COLUMNS
    ))
    .bind(uid.as_str())
    .bind(&wanted)
    .fetch_all(c)
    .await
    .map_err(db_error)?
    .iter()
    .map(memories::memory_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    let mut by_id: std::collections::HashMap<MemoryId, Memory> =
        found.into_iter().map(|m| (m.id, m)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

pub async fn filtered_memory_ids(
    c: &mut PgConnection,
    uid: &Uid,
    filter: &SearchFilter,
) -> Result<Vec<MemoryId>, StoreError> {
    let mut q =
        QueryBuilder::new("SELECT m.id FROM memories m WHERE m.deleted_at IS NULL AND m.uid = ");
    q.push_bind(uid.as_str().to_owned());
    push_filter(filter, &mut q);
    q.build()
        .fetch_all(c)
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| stored(MemoryId::parse(&col::<String>(r, 0)?)))
        .collect()
}

pub async fn search_conversations(
    c: &mut PgConnection,
    uid: &Uid,
    fts_query: &str,
    limit: u32,
) -> Result<Vec<ConversationHit>, StoreError> {
    let Some(tsquery) = tsquery(fts_query).filter(|_| limit > 0) else {
        return Ok(Vec::new());
    };
    // Ranked first, highlighted after: ts_headline reads the whole document, so only for the few kept.
    let width = ingest::CONVERSATION_COLUMNS.split(',').count();
    let rows = sqlx::query(&format!(
        "SELECT {columns}, ranked.score,
                ts_headline('english', c.title || ' ' || c.overview || ' ' || c.transcript, ranked.tsq,
                            'StartSel=[, StopSel=], MaxWords=16, MinWords=6')
         FROM (SELECT c.uid, c.id, tsq, ts_rank_cd('{CONVERSATION_WEIGHTS}', c.search, tsq) AS score
               FROM conversations c, to_tsquery('english', $2) AS tsq
               WHERE c.uid = $1 AND c.search @@ tsq
               ORDER BY score DESC, c.created_at DESC LIMIT $3) AS ranked
         JOIN conversations c ON c.uid = ranked.uid AND c.id = ranked.id
         ORDER BY ranked.score DESC, c.created_at DESC",
        columns = ingest::CONVERSATION_COLUMNS
    ))
    .bind(uid.as_str())
    .bind(tsquery)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(ConversationHit {
                conversation: ingest::conversation_from_row(r)?,
                score: f64::from(col::<f32>(r, width)?),
                snippet: col(r, width + 1)?,
            })
        })
        .collect()
}

pub async fn search_generation(c: &mut PgConnection, uid: &Uid) -> Result<i64, StoreError> {
    sqlx::query_scalar::<_, i64>("SELECT generation FROM search_generations WHERE uid = $1")
        .bind(uid.as_str())
        .fetch_optional(c)
        .await
        .map(Option::unwrap_or_default)
        .map_err(db_error)
}

/// Vectors are stored as SQLite stores them, `dim` little-endian f32: a deployment moves between the
/// backends byte for byte.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub async fn search_changes(
    c: &mut PgConnection,
    uid: &Uid,
    since: i64,
) -> Result<Option<Vec<MemoryId>>, StoreError> {
    let current = search_generation(&mut *c, uid).await?;
    if !change_log_reaches(since, current) {
        return Ok(None);
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT memory_id FROM search_changes WHERE uid = $1 AND generation > $2",
    )
    .bind(uid.as_str())
    .bind(since)
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    ids.iter()
        .map(|id| stored(MemoryId::parse(id)))
        .collect::<Result<_, _>>()
        .map(Some)
}

pub async fn searchable_memories(
    c: &mut PgConnection,
    uid: &Uid,
    model: Option<&VectorModel>,
    only: Option<&[MemoryId]>,
) -> Result<Vec<SearchableMemory>, StoreError> {
    let (name, revision, dim) = model_params(model);
    let only: Option<Vec<String>> = only.map(|ids| ids.iter().map(ToString::to_string).collect());
    let rows = sqlx::query(
        "SELECT m.id, m.content, m.tags, m.conversation_id, m.occurred_at, m.created_at,
                CASE WHEN e.model = $2 AND e.revision = $3 AND e.dim = $4
                          AND e.content_hash = m.content_hash THEN e.vector END
         FROM memories m
         LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
         WHERE m.uid = $1 AND m.deleted_at IS NULL AND ($5::text[] IS NULL OR m.id = ANY($5))",
    )
    .bind(uid.as_str())
    .bind(name)
    .bind(revision)
    .bind(dim)
    .bind(only)
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = col(r, 0)?;
        let vector = match (col::<Option<Vec<u8>>>(r, 6)?, model) {
            (Some(blob), Some(model)) => Some(decode_vector(&id, &blob, model.dim)?),
            _ => None,
        };
        out.push(SearchableMemory {
            id: stored(MemoryId::parse(&id))?,
            content: col(r, 1)?,
            tags: col(r, 2)?,
            conversation_id: col(r, 3)?,
            occurred_at: Timestamp::from_micros(col(r, 4)?),
            created_at: Timestamp::from_micros(col(r, 5)?),
            vector,
        });
    }
    out.sort_unstable_by(|a, b| a.conversation_order().cmp(&b.conversation_order()));
    Ok(out)
}

pub async fn enqueue_stale(c: &mut PgConnection, model: &VectorModel) -> Result<u64, StoreError> {
    sqlx::query(
        "INSERT INTO embedding_queue (uid, memory_id, next_attempt_at)
         SELECT m.uid, m.id, 0 FROM memories m
         LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
         WHERE m.deleted_at IS NULL
           AND (e.memory_id IS NULL OR e.model != $1 OR e.revision != $2 OR e.dim != $3
                OR e.content_hash != m.content_hash)
         ON CONFLICT DO NOTHING",
    )
    .bind(&model.name)
    .bind(&model.revision)
    .bind(model.dim as i64)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    .map_err(db_error)
}

/// Takes due memories off the queue for this instance's embedder: their next attempt moves a lease
/// ahead, so other instances embed other memories; a job never saved (its instance died) comes due
/// again when the lease ends.
pub async fn claim_backlog(
    c: &mut PgConnection,
    now: Timestamp,
    lease_micros: i64,
    limit: u32,
) -> Result<Vec<EmbeddingJob>, StoreError> {
    let rows = sqlx::query(
        "WITH due AS (
             SELECT q.uid, q.memory_id, q.next_attempt_at FROM embedding_queue q
             JOIN memories m ON m.uid = q.uid AND m.id = q.memory_id
             WHERE q.next_attempt_at <= $1 AND m.deleted_at IS NULL
             ORDER BY q.next_attempt_at LIMIT $3
             FOR UPDATE OF q SKIP LOCKED)
         UPDATE embedding_queue q SET next_attempt_at = $1 + $2
         FROM due JOIN memories m ON m.uid = due.uid AND m.id = due.memory_id
         WHERE q.uid = due.uid AND q.memory_id = due.memory_id
         RETURNING q.uid, q.memory_id, m.content, m.content_hash, q.attempts, due.next_attempt_at",
    )
    .bind(now.as_micros())
    .bind(lease_micros)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let mut jobs = rows
        .iter()
        .map(|r| {
            Ok((
                col::<i64>(r, 5)?,
                EmbeddingJob {
                    uid: stored(Uid::parse(col::<String>(r, 0)?))?,
                    memory_id: stored(MemoryId::parse(&col::<String>(r, 1)?))?,
                    content: col(r, 2)?,
                    content_hash: col(r, 3)?,
                    attempts: col(r, 4)?,
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    jobs.sort_by_key(|(at, _)| *at);
    Ok(jobs.into_iter().map(|(_, job)| job).collect())
}

pub async fn save_embeddings(
    c: &mut PgConnection,
    model: &VectorModel,
    mut results: Vec<(EmbeddingJob, EmbeddingOutcome)>,
) -> Result<(), StoreError> {
    // Rows in one fixed order, so two instances saving overlapping batches cannot deadlock.
    results.sort_by(|(a, _), (b, _)| {
        (a.uid.as_str(), a.memory_id).cmp(&(b.uid.as_str(), b.memory_id))
    });
    let now = Timestamp::now().as_micros();
    for (job, outcome) in results {
        let (uid, id) = (job.uid.as_str(), job.memory_id.to_string());
        // A memory edited (or deleted) while its old text was being embedded: the vector is stale and
        // the queue row stays for the new text, due at once.
        let current: Option<(String, Option<i64>)> =
            sqlx::query("SELECT content_hash, deleted_at FROM memories WHERE uid = $1 AND id = $2")
                .bind(uid)
                .bind(&id)
                .fetch_optional(&mut *c)
                .await
                .map_err(db_error)?
                .map(|r| Ok::<_, StoreError>((col(&r, 0)?, col(&r, 1)?)))
                .transpose()?;
        let unchanged = matches!(&current, Some((hash, None)) if *hash == job.content_hash);
        if !unchanged {
            let statement = if matches!(&current, Some((_, None))) {
                "UPDATE embedding_queue SET next_attempt_at = 0 WHERE uid = $1 AND memory_id = $2"
            } else {
                "DELETE FROM embedding_queue WHERE uid = $1 AND memory_id = $2"
            };
            sqlx::query(statement)
                .bind(uid)
                .bind(&id)
                .execute(&mut *c)
                .await
                .map_err(db_error)?;
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
                sqlx::query(
                    "UPDATE embedding_queue SET attempts = attempts + 1, next_attempt_at = $3
                     WHERE uid = $1 AND memory_id = $2",
                )
                .bind(uid)
                .bind(&id)
                .bind(at.as_micros())
                .execute(&mut *c)
                .await
                .map_err(db_error)?;
                continue;
            }
        };
        sqlx::query(
            "INSERT INTO memory_embeddings (uid, memory_id, model, revision, dim, content_hash, vector, error, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (uid, memory_id) DO UPDATE SET model = excluded.model, revision = excluded.revision,
                 dim = excluded.dim, content_hash = excluded.content_hash, vector = excluded.vector,
                 error = excluded.error, created_at = excluded.created_at",
        )
        .bind(uid)
        .bind(&id)
        .bind(&model.name)
        .bind(&model.revision)
        .bind(model.dim as i64)
        .bind(&job.content_hash)
        .bind(vector)
        .bind(error)
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM embedding_queue WHERE uid = $1 AND memory_id = $2")
            .bind(uid)
            .bind(&id)
            .execute(&mut *c)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// `ready`, `failed` or `pending` for one memory's row (if any) against the current model.
const STATUS_SQL: &str = "CASE
        WHEN e.memory_id IS NULL OR e.content_hash != m.content_hash
             OR ($2::text IS NOT NULL AND (e.model != $2 OR e.revision != $3::text OR e.dim != $4::bigint))
             THEN 'pending'
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

pub async fn embedding_status(
    c: &mut PgConnection,
    uid: &Uid,
    id: MemoryId,
    model: Option<&VectorModel>,
) -> Result<EmbeddingStatus, StoreError> {
    let (name, revision, dim) = model_params(model);
    sqlx::query_scalar::<_, String>(&format!(
        "SELECT {STATUS_SQL} FROM memories m
         LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
         WHERE m.uid = $1 AND m.id = $5"
    ))
    .bind(uid.as_str())
    .bind(name)
    .bind(revision)
    .bind(dim)
    .bind(id.to_string())
    .fetch_optional(c)
    .await
    .map_err(db_error)?
    .map(|raw| status_of(&raw))
    .ok_or(StoreError::NotFound)
}

pub async fn embedding_counts(
    c: &mut PgConnection,
    uid: &Uid,
    model: Option<&VectorModel>,
) -> Result<EmbeddingCounts, StoreError> {
    let (name, revision, dim) = model_params(model);
    let rows = sqlx::query(&format!(
        "SELECT {STATUS_SQL} AS status, COUNT(*) FROM memories m
         LEFT JOIN memory_embeddings e ON e.uid = m.uid AND e.memory_id = m.id
         WHERE m.uid = $1 AND m.deleted_at IS NULL GROUP BY status"
    ))
    .bind(uid.as_str())
    .bind(name)
    .bind(revision)
    .bind(dim)
    .fetch_all(c)
    .await
    .map_err(db_error)?;
    let mut counts = EmbeddingCounts::default();
    for r in &rows {
        let count = col::<i64>(r, 1)? as u64;
        match status_of(&col::<String>(r, 0)?) {
            EmbeddingStatus::Pending => counts.pending += count,
            EmbeddingStatus::Ready => counts.ready += count,
            EmbeddingStatus::Failed => counts.failed += count,
        }
    }
    Ok(counts)
}
