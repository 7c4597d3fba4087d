//! Values for talking to Omi: the outbox of writes, per-user sync settings, pull checkpoints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Category, Source, Tag, Timestamp, Uid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    /// A memory to create in Omi (Integration API, explicit memory: Omi derives its id from the
    /// content, so sending it again upserts the same document).
    Memory,
    /// A push notification to the user (at most 10 per hour per app and user at Omi).
    Notification,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Notification => "notification",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Memory, Self::Notification]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Done,
    /// Failed for good or too often; waits for an operator.
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Dead]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// An item due for delivery, with what to send.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub uid: Uid,
    pub id: String,
    pub kind: OutboxKind,
    pub payload: serde_json::Value,
    pub attempts: i64,
    /// The request that caused it (when there was one).
    pub request_id: Option<String>,
}

/// What became of a delivery attempt.
#[derive(Debug, Clone)]
pub enum OutboxOutcome {
    Delivered,
    /// Try again at `at`. `counted` = false when the item was not at fault (rate limit, open breaker).
    Retry {
        at: Timestamp,
        counted: bool,
        error: String,
    },
    Dead {
        error: String,
    },
    /// Not tried: the round that claimed it stopped early (breaker, time budget). Due again at once,
    /// nothing counted or recorded; on a shared database this also gives its claim back.
    Released,
}

/// An outbox item as an operator sees it (never its content).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OutboxEntry {
    pub id: String,
    pub uid: Uid,
    pub kind: OutboxKind,
    pub state: OutboxState,
    pub memory_id: Option<String>,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// How many items wait, and the newest failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct OutboxCounts {
    pub pending: u64,
    pub dead: u64,
    pub delivered: u64,
    pub oldest_pending_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

/// Events a user can be notified of in Omi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A memory was stored ("Remembered: …").
    MemoryCreated,
    /// A conversation from Omi was processed for the first time ("Saved: <title>").
    ConversationProcessed,
}

/// A user's choices of what goes to Omi. Empty filters let everything through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct SyncSettings {
    /// Push new memories to Omi.
    pub push_memories: bool,
    /// Only memories with at least one of these tags.
    pub tags: Vec<Tag>,
    /// Only memories of these categories.
    pub categories: Vec<Category>,
    /// Only memories from these sources.
    pub sources: Vec<Source>,
    /// Send an Omi notification on these events.
    pub notify: Vec<NotifyEvent>,
    pub updated_at: Option<Timestamp>,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemoryCreated => "memory_created",
            Self::ConversationProcessed => "conversation_processed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::MemoryCreated, Self::ConversationProcessed]
            .into_iter()
            .find(|e| e.as_str() == raw)
    }
}

/// The filter lists of [`SyncSettings`] as both backends store them: JSON arrays of strings in text
/// columns (tags, categories, sources, notify events), which their triggers read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSyncLists {
    pub tags: String,
    pub categories: String,
    pub sources: String,
    pub notify: String,
}

impl SyncSettings {
    pub fn stored_lists(&self) -> StoredSyncLists {
        fn json(items: Vec<&str>) -> String {
            serde_json::to_string(&items).unwrap_or_else(|_| "[]".into())
        }
        StoredSyncLists {
            tags: json(self.tags.iter().map(Tag::as_str).collect()),
            categories: json(self.categories.iter().map(|c| c.as_str()).collect()),
            sources: json(self.sources.iter().map(|s| s.as_str()).collect()),
            notify: json(self.notify.iter().map(|e| e.as_str()).collect()),
        }
    }

    /// Settings read back; entries that no longer parse (a changed vocabulary) are left out.
    pub fn from_stored(push_memories: bool, lists: &StoredSyncLists, updated_at: i64) -> Self {
        fn parse<T>(json: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
            serde_json::from_str::<Vec<String>>(json)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| parse(s))
                .collect()
        }
        Self {
            push_memories,
            tags: parse(&lists.tags, |s| Tag::parse(s).ok()),
            categories: parse(&lists.categories, |s| Category::parse(s).ok()),
            sources: parse(&lists.sources, |s| s.parse::<Source>().ok()),
            notify: parse(&lists.notify, NotifyEvent::parse),
            updated_at: Some(Timestamp::from_micros(updated_at)),
        }
    }
}

/// What the server last recorded about an Omi upstream (breaker, last error).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UpstreamStatus {
    pub upstream: String,
    #[schema(value_type = Object)]
    pub status: serde_json::Value,
    pub recorded_at: Timestamp,
}
