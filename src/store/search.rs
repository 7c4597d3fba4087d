//! Values that cross the store interface for search: filters, the memories search holds in memory,
//! conversation hits and the embedding queue.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    Category, Conversation, ConversationId, MemoryId, Source, Tag, Timestamp, Uid,
};
use crate::store::{TagMatch, TimeRange};

/// Which of a user's active memories a search may return. Applied before ranking.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub tags: Vec<Tag>,
    pub tag_match: TagMatch,
    pub category: Option<Category>,
    pub source: Option<Source>,
    pub conversation_id: Option<ConversationId>,
    pub created: TimeRange,
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.category.is_none()
            && self.source.is_none()
            && self.conversation_id.is_none()
            && self.created.from.is_none()
            && self.created.to.is_none()
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationHit {
    pub conversation: Conversation,
    /// BM25 (higher is better).
    pub score: f64,
    /// Where the words matched (title, overview or transcript), matches in `[` `]`.
    pub snippet: String,
}

/// One active memory as search holds it in memory (`search::index`).
#[derive(Debug, Clone)]
pub struct SearchableMemory {
    pub id: MemoryId,
    pub content: String,
    /// The tags as stored (their words are searched).
    pub tags: String,
    pub conversation_id: Option<String>,
    /// When the remembered thing happened.
    pub occurred_at: Timestamp,
    pub created_at: Timestamp,
    /// Its vector of the model asked for, when one is stored for its current content.
    pub vector: Option<Vec<f32>>,
}

impl SearchableMemory {
    /// The order search keeps memories in: by conversation (none first), then by when they happened
    /// and were written, so that a conversation's memories follow each other in order.
    pub fn conversation_order(&self) -> (Option<&str>, Timestamp, Timestamp, MemoryId) {
        (
            self.conversation_id.as_deref(),
            self.occurred_at,
            self.created_at,
            self.id,
        )
    }
}

/// How many generations of changes a user's log keeps (migration 9 trims it at the same number, on
/// both backends).
pub const SEARCH_CHANGES_KEPT: i64 = 10_000;

/// Whether a user's change log, now at generation `current`, still holds every change after `since`.
pub fn change_log_reaches(since: i64, current: i64) -> bool {
    since <= current && current - since < SEARCH_CHANGES_KEPT
}

/// Decodes a stored vector (`dim` little-endian f32, as both backends store it).
pub fn decode_vector(
    id: &str,
    blob: &[u8],
    dim: usize,
) -> Result<Vec<f32>, crate::store::StoreError> {
    if blob.len() != dim * 4 {
        return Err(crate::store::StoreError::Internal(format!(
            "stored vector of memory {id} has {} bytes, expected {}",
            blob.len(),
            dim * 4
        )));
    }
    Ok(blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The model a vector comes from, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorModel {
    pub name: String,
    pub revision: String,
    pub dim: usize,
}

/// A memory waiting for its vector.
#[derive(Debug, Clone)]
pub struct EmbeddingJob {
    pub uid: Uid,
    pub memory_id: MemoryId,
    pub content: String,
    pub content_hash: String,
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub enum EmbeddingOutcome {
    /// Unit-length, `dim` long.
    Vector(Vec<f32>),
    /// Will not succeed with this model: recorded as failed, not retried.
    Failed(String),
    /// Try again at this time.
    Retry(Timestamp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingStatus {
    Pending,
    Ready,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct EmbeddingCounts {
    pub pending: u64,
    pub ready: u64,
    pub failed: u64,
}
