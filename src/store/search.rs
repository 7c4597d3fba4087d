//! Values that cross the store interface for search: filters, full-text hits, stored vectors and the
//! embedding queue.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    Category, Conversation, ConversationId, Memory, MemoryId, Source, Tag, Timestamp, Uid,
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

/// A full-text match: BM25 `score` (higher is better) and a snippet with the matches in `[` `]`.
#[derive(Debug, Clone)]
pub struct TextHit {
    pub memory: Memory,
    pub score: f64,
    pub snippet: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationHit {
    pub conversation: Conversation,
    /// BM25 (higher is better).
    pub score: f64,
    /// Where the words matched (title, overview or transcript), matches in `[` `]`.
    pub snippet: String,
}

/// One user's vectors for one model, contiguous: vector `i` is `data[i * dim .. (i + 1) * dim]`.
/// Ordered by conversation, then by when the memory happened and was written, so that the memories of
/// one conversation sit next to each other in order.
#[derive(Debug, Clone, Default)]
pub struct StoredVectors {
    pub ids: Vec<MemoryId>,
    pub conversation_ids: Vec<Option<String>>,
    /// Names that begin memories as `Name: …` (who spoke, in memories taken from conversations), at
    /// least three times each.
    pub speakers: Vec<String>,
    /// Each memory's speaker label (`Sam` in `Sam: …`), when it looks like a name.
    pub speaker_labels: Vec<Option<String>>,
    /// When each remembered thing happened.
    pub occurred_at: Vec<Timestamp>,
    pub dim: usize,
    pub data: Vec<f32>,
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
