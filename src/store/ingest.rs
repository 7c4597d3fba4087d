//! Values for Omi ingest: the inbox of raw events, and the work derived from them.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    Conversation, ConversationEvent, NewTask, Task, TaskDescription, Timestamp, TranscriptSegment,
    Uid,
};
use crate::store::NewMemory;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Conversation,
    Transcript,
    DaySummary,
    Audio,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conversation => "conversation",
            Self::Transcript => "transcript",
            Self::DaySummary => "day_summary",
            Self::Audio => "audio",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Conversation,
            Self::Transcript,
            Self::DaySummary,
            Self::Audio,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboxState {
    /// Recorded and acknowledged; waiting to be processed (or retried).
    Pending,
    Done,
    /// Failed too often; waits for an operator to retry it.
    Dead,
}

impl InboxState {
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

/// A raw event to record before acknowledging it.
#[derive(Debug, Clone)]
pub struct NewInboxEvent {
    pub kind: EventKind,
    /// Identity for deduplication: the delivery header when present, else a hash of the body.
    pub dedupe_key: Option<String>,
    pub body: Vec<u8>,
}

/// A real-time transcript batch, processed in the same transaction that records it, because the
/// answer to Omi says what was remembered.
#[derive(Debug, Clone)]
pub struct TranscriptWork {
    pub session_id: Option<String>,
    /// Each segment, with the memory its trigger phrase asks for.
    pub segments: Vec<(TranscriptSegment, Option<NewMemory>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Recorded now; `response` is what to answer.
    New {
        event_id: String,
        response: serde_json::Value,
    },
    /// Seen before: answer exactly as the first time.
    Repeat {
        event_id: String,
        response: serde_json::Value,
    },
    /// The uid is unknown and users are not created by webhooks.
    UnknownUser,
}

/// An event due for processing.
#[derive(Debug, Clone)]
pub struct DueEvent {
    pub uid: Uid,
    pub id: String,
    pub kind: EventKind,
    pub attempts: i64,
    pub received_at: Timestamp,
    pub body: Vec<u8>,
}

/// Everything one conversation-created event turns into.
#[derive(Debug, Clone)]
pub struct ConversationWork {
    pub conversation: Conversation,
    pub segments: Vec<TranscriptSegment>,
    pub events: Vec<ConversationEvent>,
    /// The summary memory; `None` for discarded conversations, this app's own imports, or no text.
    pub summary: Option<NewMemory>,
    pub tasks: Vec<NewTask>,
}

/// Everything one day summary turns into.
#[derive(Debug, Clone)]
pub struct DaySummaryWork {
    /// `summary_json.id`, else its date: one record per day summary, however often it is delivered.
    pub key: String,
    pub date: String,
    pub summary: serde_json::Value,
    pub memories: Vec<NewMemory>,
    pub tasks: Vec<NewTask>,
}

#[derive(Debug, Clone)]
pub enum EventWork {
    Conversation(Box<ConversationWork>),
    DaySummary(DaySummaryWork),
    /// The event holds nothing to derive (e.g. a day summary without `summary_json`).
    Nothing,
}

/// An inbox entry as an operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InboxEntry {
    pub id: String,
    pub uid: Uid,
    pub kind: EventKind,
    pub state: InboxState,
    pub attempts: i64,
    pub received_at: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
    pub processed_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub body_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub transcript_segments: Vec<TranscriptSegment>,
    pub events: Vec<ConversationEvent>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub completed: Option<bool>,
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub description: Option<TaskDescription>,
    pub completed: Option<bool>,
    /// `Some(None)` clears the due date.
    pub due_at: Option<Option<Timestamp>>,
}

/// A WAV recording assembled from Omi's audio-bytes webhook.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Recording {
    pub id: String,
    pub sample_rate: u32,
    /// PCM bytes (16-bit mono), without the WAV header.
    pub bytes: i64,
    pub duration_seconds: f64,
    pub started_at: Timestamp,
    pub last_chunk_at: Timestamp,
    /// Where the file is, relative to the data directory.
    #[serde(skip)]
    pub file: String,
}
