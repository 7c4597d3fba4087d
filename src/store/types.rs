//! Values that cross the store interface.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::domain::{
    Category, Content, ConversationId, Cursor, KeyId, KeyName, Memory, MemoryId, MemoryVersion,
    Metadata, Source, Tag, Tags, Timestamp, Uid, Visibility,
};

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("version conflict: the memory is at version {current}")]
    VersionConflict { current: i64 },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the memory is deleted; restore it first")]
    Deleted,
    #[error("unknown user")]
    UnknownUser,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

/// Who made a change, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Key(KeyId),
    Admin,
    Cli,
    System,
    /// A signed-in browser session of the app home.
    Session(uuid::Uuid),
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Self::Key(id) => format!("key:{id}"),
            Self::Admin => "admin".into(),
            Self::Cli => "cli".into(),
            Self::System => "system".into(),
            Self::Session(id) => format!("session:{id}"),
        }
    }
}

/// The circumstances of a change: recorded with it in the audit trail.
#[derive(Debug, Clone)]
pub struct Context {
    pub actor: Actor,
    pub request_id: Option<String>,
}

impl Context {
    pub fn new(actor: Actor, request_id: Option<String>) -> Self {
        Self { actor, request_id }
    }

    pub fn cli() -> Self {
        Self::new(Actor::Cli, None)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct User {
    pub uid: Uid,
    pub created_at: Timestamp,
}

pub struct NewApiKey {
    pub id: KeyId,
    pub name: KeyName,
    pub prefix: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: KeyId,
    pub uid: Uid,
    pub name: KeyName,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// The authenticated caller: the user every operation is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub uid: Uid,
    pub key_id: KeyId,
}

#[derive(Debug, Clone)]
pub struct NewMemory {
    pub content: Content,
    pub category: Category,
    pub tags: Tags,
    pub visibility: Visibility,
    pub source: Source,
    pub conversation_id: Option<ConversationId>,
    pub metadata: Metadata,
    pub occurred_at: Option<Timestamp>,
}

impl NewMemory {
    pub fn new(content: Content, source: Source) -> Self {
        Self {
            content,
            category: Category::Manual,
            tags: Tags::default(),
            visibility: Visibility::default(),
            source,
            conversation_id: None,
            metadata: Metadata::default(),
            occurred_at: None,
        }
    }
}

/// The result of a create: a new memory, or the existing active memory with identical content.
#[derive(Debug, Clone)]
pub enum Created {
    New(Memory),
    Duplicate(Memory),
}

impl Created {
    pub fn memory(&self) -> &Memory {
        match self {
            Self::New(m) | Self::Duplicate(m) => m,
        }
    }

    pub fn into_memory(self) -> Memory {
        match self {
            Self::New(m) | Self::Duplicate(m) => m,
        }
    }
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MemoryPatch {
    pub content: Option<Content>,
    pub category: Option<Category>,
    pub tags: Option<Tags>,
    pub visibility: Option<Visibility>,
    pub metadata: Option<Metadata>,
    pub occurred_at: Option<Timestamp>,
}

impl MemoryPatch {
    pub fn is_empty(&self) -> bool {
        self.content.is_none()
            && self.category.is_none()
            && self.tags.is_none()
            && self.visibility.is_none()
            && self.metadata.is_none()
            && self.occurred_at.is_none()
    }
}

#[derive(Debug, Clone)]
pub enum Deleted {
    Now(Memory),
    Already(Memory),
}

impl Deleted {
    pub fn memory(&self) -> &Memory {
        match self {
            Self::Now(m) | Self::Already(m) => m,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagMatch {
    #[default]
    Any,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    #[default]
    Active,
    Deleted,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    #[default]
    Desc,
    Asc,
}

/// A half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 200;

    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }

    /// Where the page starts: the cursor's position, or `start` (the far end) on the first page.
    pub fn position_or(&self, start: i64) -> (i64, String) {
        self.after
            .as_ref()
            .map_or((start, String::new()), |c| (c.position, c.id.clone()))
    }
}

/// Filters and position for listing memories, newest first by default.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub tags: Vec<Tag>,
    pub tag_match: TagMatch,
    pub category: Option<Category>,
    pub source: Option<Source>,
    pub conversation_id: Option<ConversationId>,
    pub created: TimeRange,
    pub updated: TimeRange,
    pub state: StateFilter,
    pub order: SortOrder,
    pub page: PageRequest,
}

impl ListQuery {
    pub fn new(page: PageRequest) -> Self {
        Self {
            tags: Vec::new(),
            tag_match: TagMatch::Any,
            category: None,
            source: None,
            conversation_id: None,
            created: TimeRange::default(),
            updated: TimeRange::default(),
            state: StateFilter::Active,
            order: SortOrder::Desc,
            page,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct PurgeReport {
    pub purged: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub active: u64,
    pub deleted: u64,
    pub versions: u64,
    /// UTF-8 bytes of active memories' content.
    pub bytes: u64,
    pub by_category: std::collections::BTreeMap<String, u64>,
    pub by_source: std::collections::BTreeMap<String, u64>,
    /// Active memories per tag, at most the 100 most used tags.
    pub by_tag: std::collections::BTreeMap<String, u64>,
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in this user's trail, increasing.
    pub seq: i64,
    pub at: Timestamp,
    /// e.g. `memory.create`, `memory.update`, `memory.delete`, `memory.restore`, `memory.purge`,
    /// `memory.import`, `key.create`, `key.revoke`.
    pub action: String,
    pub memory_id: Option<MemoryId>,
    pub actor: String,
    pub request_id: Option<String>,
    /// What changed (field names, versions, counts), never content.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A memory with every version it has had: one line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExportedMemory {
    pub memory: Memory,
    pub versions: Vec<MemoryVersion>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct ImportReport {
    pub imported: u64,
    /// Records already present with the same id and history.
    pub unchanged: u64,
    /// Records whose content duplicates another active memory, or whose id exists with another
    /// history; nothing of them was written.
    pub skipped: Vec<ImportSkip>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ImportSkip {
    pub id: MemoryId,
    pub reason: String,
}

/// A response kept for an idempotency key, replayed for repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyBegin {
    /// First use of the key: go ahead, then complete or abandon it.
    Started,
    Replay(StoredResponse),
    InFlight,
    /// The key was used with a different request.
    Mismatch,
}
