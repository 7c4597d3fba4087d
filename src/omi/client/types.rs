//! What goes to Omi and what comes back, as `omi-contract.md` §5–7 describe it.
//!
//! Requests are built from types that cannot break Omi's documented limits (lengths, batch sizes,
//! required fields), so a call is refused here with a reason instead of costing a round trip and a
//! rate-limit token. Responses are read leniently like every Omi payload: unknown fields ignored,
//! optional fields defaulted.

use serde::{Deserialize, Serialize};

use crate::domain::{Timestamp, ValidationError};
pub use crate::omi::payload::Conversation;

/// Trimmed text of 1–`MAX` characters (Omi strips content before checking it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > MAX {
            return Err(ValidationError::new(
                field,
                format!("must be 1–{MAX} characters, is {chars}"),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A list of `MIN`–`MAX` items: Omi's batch limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Batch<T, const MIN: usize, const MAX: usize>(Vec<T>);

impl<T, const MIN: usize, const MAX: usize> Batch<T, MIN, MAX> {
    pub fn new(field: &'static str, items: Vec<T>) -> Result<Self, ValidationError> {
        if items.len() < MIN || items.len() > MAX {
            return Err(ValidationError::new(
                field,
                format!("must hold {MIN}–{MAX} items, holds {}", items.len()),
            ));
        }
        Ok(Self(items))
    }

    pub fn items(&self) -> &[T] {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geolocation {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_place_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_type: Option<String>,
}

/// `text_source` of a conversation (not the memories enum: a value valid for one is invalid for the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationTextSource {
    AudioTranscript,
    Message,
    OtherText,
}

/// `text_source` of the Integration API's create-memories call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryTextSource {
    Email,
    SocialPost,
    Other,
}

// ---------------------------------------------------------------------------------------------
// Integration API (app key)

/// `POST /v2/integrations/{app_id}/user/conversations`: Omi processes the text synchronously (an LLM
/// call) and answers `{}`; the new conversation's id arrives later through the app's own webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewConversation {
    pub text: Text<100_000>,
    pub text_source: ConversationTextSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_source_spec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geolocation: Option<Geolocation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_platform: Option<String>,
}

impl NewConversation {
    pub fn new(text: Text<100_000>, text_source: ConversationTextSource) -> Self {
        Self {
            text,
            text_source,
            text_source_spec: None,
            started_at: None,
            finished_at: None,
            language: None,
            geolocation: None,
            client_device_id: None,
            client_platform: None,
        }
    }
}

/// One explicit memory: stored by Omi as category `system`, its id derived from its content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplicitMemory {
    pub content: Text<{ crate::domain::Content::MAX_CHARS }>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_ref: Option<String>,
}

/// `POST /v2/integrations/{app_id}/user/memories`: explicit memories and/or text for Omi to extract
/// memories from. One of them must be non-empty (else Omi answers 422).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewMemories {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Text<100_000>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_source: Option<MemoryTextSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_source_spec: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    memories: Vec<ExplicitMemory>,
}

impl NewMemories {
    /// Explicit memories only: no LLM extraction, and a repeat upserts the same documents.
    pub fn explicit(memories: Vec<ExplicitMemory>) -> Result<Self, ValidationError> {
        if memories.is_empty() {
            return Err(ValidationError::new("memories", "must not be empty"));
        }
        Ok(Self {
            text: None,
            text_source: None,
            text_source_spec: None,
            memories,
        })
    }

    /// Text for Omi to extract memories from (an LLM decides what they are).
    pub fn from_text(text: Text<100_000>, source: MemoryTextSource, spec: Option<String>) -> Self {
        Self {
            text: Some(text),
            text_source: Some(source),
            text_source_spec: spec,
            memories: Vec::new(),
        }
    }

    /// Without text, every memory's id is a hash of its content: sending again cannot duplicate.
    pub fn is_deduplicated(&self) -> bool {
        self.text.is_none()
    }

    pub fn len(&self) -> usize {
        self.memories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memories.is_empty() && self.text.is_none()
    }
}

/// Filters of `GET /v2/integrations/{app_id}/conversations` (besides `limit`/`offset`, which paging sets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationFilter {
    pub include_discarded: bool,
    /// `in_progress`, `processing`, `merging`, `completed`, `failed`; empty = Omi's default.
    pub statuses: Vec<String>,
    /// ISO date-time or `YYYY-MM-DD` (Omi answers 400 to anything else).
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    /// −1 (all) to 1,000; Omi's default is 100.
    pub max_transcript_segments: Option<i32>,
}

/// `POST /v2/integrations/{app_id}/search/conversations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationSearch {
    pub query: String,
    pub page: u32,
    /// At most 250 (Omi clamps larger values; we refuse them).
    pub per_page: u32,
    pub include_discarded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<i64>,
}

impl ConversationSearch {
    pub fn new(query: &str, page: u32, per_page: u32) -> Result<Self, ValidationError> {
        if page == 0 {
            return Err(ValidationError::new("page", "starts at 1"));
        }
        if per_page == 0 || per_page > 250 {
            return Err(ValidationError::new("per_page", "must be 1–250"));
        }
        Ok(Self {
            query: query.to_owned(),
            page,
            per_page,
            include_discarded: true,
            start_date: None,
            end_date: None,
            speaker_id: None,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchResults {
    #[serde(default)]
    pub conversations: Vec<Conversation>,
    #[serde(default)]
    pub total_pages: u32,
    #[serde(default)]
    pub current_page: u32,
    #[serde(default)]
    pub per_page: u32,
}

/// Filters of `GET /v2/integrations/{app_id}/tasks`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub completed: Option<bool>,
    pub conversation_id: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub due_start_date: Option<String>,
    pub due_end_date: Option<String>,
}

/// A memory as Omi lists it (Integration `MemoryItem`, Developer memory).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OmiMemory {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default, deserialize_with = "crate::omi::payload::null_default")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub manually_added: Option<bool>,
    #[serde(default)]
    pub scoring: Option<String>,
    #[serde(default)]
    pub is_locked: Option<bool>,
}

/// An action item (Integration `tasks`, Developer `action-items`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OmiActionItem {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub due_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MemoriesEnvelope {
    #[serde(default)]
    pub memories: Vec<OmiMemory>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConversationsEnvelope {
    #[serde(default)]
    pub conversations: Vec<Conversation>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TasksEnvelope {
    #[serde(default)]
    pub tasks: Vec<OmiActionItem>,
}

/// The notification call's answer: `{"status": "Ok"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NotificationSent {
    #[serde(default)]
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// Developer API (developer key)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DevCategory {
    Interesting,
    System,
    Manual,
}

/// `POST /v1/dev/user/memories` (and each item of the batch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDevMemory {
    pub content: Text<500>,
    /// Omi classifies with an LLM when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<DevCategory>,
    pub visibility: crate::domain::Visibility,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// At most 25 memories per batch call.
pub type DevMemoryBatch = Batch<NewDevMemory, 0, 25>;

#[derive(Debug, Serialize)]
pub(super) struct DevMemoryBatchBody<'a> {
    pub memories: &'a DevMemoryBatch,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DevMemoriesCreated {
    #[serde(default)]
    pub memories: Vec<OmiMemory>,
    #[serde(default)]
    pub created_count: u32,
}

/// `PATCH /v1/dev/user/memories/{id}`: at least one field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DevMemoryPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Text<500>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<crate::domain::Visibility>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<DevCategory>,
}

impl DevMemoryPatch {
    pub fn is_empty(&self) -> bool {
        self.content.is_none()
            && self.visibility.is_none()
            && self.tags.is_none()
            && self.category.is_none()
    }
}

/// `POST /v1/dev/user/action-items` (and each item of the batch).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewActionItem {
    pub description: Text<500>,
    pub completed: bool,
    /// With a due date Omi sends the user a reminder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
}

/// At most 50 action items per batch call.
pub type ActionItemBatch = Batch<NewActionItem, 0, 50>;

#[derive(Debug, Serialize)]
pub(super) struct ActionItemBatchBody<'a> {
    pub action_items: &'a ActionItemBatch,
}

/// The batch answer. The contract gives no shape for it; read leniently, like the memories batch.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionItemsCreated {
    #[serde(default)]
    pub action_items: Vec<OmiActionItem>,
    #[serde(default)]
    pub created_count: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActionItemPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Text<500>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
}

/// Filters of `GET /v1/dev/user/action-items`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionItemFilter {
    pub conversation_id: Option<String>,
    pub completed: Option<bool>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

/// Filters of `GET /v1/dev/user/conversations`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DevConversationFilter {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub categories: Vec<String>,
    pub include_transcript: bool,
}

/// `POST /v1/dev/user/conversations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDevConversation {
    pub text: Text<100_000>,
    pub text_source: ConversationTextSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_source_spec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Timestamp>,
    pub language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geolocation: Option<Geolocation>,
}

impl NewDevConversation {
    pub fn new(text: Text<100_000>) -> Self {
        Self {
            text,
            text_source: ConversationTextSource::OtherText,
            text_source_spec: None,
            started_at: None,
            finished_at: None,
            language: "en".into(),
            geolocation: None,
        }
    }

    /// Omi refuses a finish before the start (422).
    pub fn between(
        mut self,
        started_at: Timestamp,
        finished_at: Option<Timestamp>,
    ) -> Result<Self, ValidationError> {
        if finished_at.is_some_and(|f| f < started_at) {
            return Err(ValidationError::new(
                "finished_at",
                "must not be before started_at",
            ));
        }
        self.started_at = Some(started_at);
        self.finished_at = finished_at;
        Ok(self)
    }
}

/// One segment of `POST /v1/dev/user/conversations/from-segments`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewSegment {
    text: String,
    speaker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    speaker_id: Option<i64>,
    is_user: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    person_id: Option<String>,
    start: f64,
    end: f64,
}

impl NewSegment {
    /// Non-empty text, `start ≥ 0`, `end > start` (else Omi answers 422).
    pub fn new(text: &str, start: f64, end: f64, is_user: bool) -> Result<Self, ValidationError> {
        if text.trim().is_empty() {
            return Err(ValidationError::new("text", "must not be empty"));
        }
        if !(start >= 0.0 && end > start && end.is_finite()) {
            return Err(ValidationError::new("end", "needs 0 ≤ start < end"));
        }
        Ok(Self {
            text: text.to_owned(),
            speaker: "SPEAKER_00".into(),
            speaker_id: None,
            is_user,
            person_id: None,
            start,
            end,
        })
    }

    pub fn speaker(mut self, speaker: &str, speaker_id: Option<i64>) -> Self {
        speaker.clone_into(&mut self.speaker);
        self.speaker_id = speaker_id;
        self
    }
}

/// 1–500 segments.
pub type SegmentBatch = Batch<NewSegment, 1, 500>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewConversationFromSegments {
    pub transcript_segments: SegmentBatch,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    pub language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geolocation: Option<Geolocation>,
    /// Newest docs: makes a retry return the first result instead of a second conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_session_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConversationCreated {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub discarded: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DevConversationPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discarded: Option<bool>,
}

/// `{"success": true}` from the delete calls.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Deleted {
    #[serde(default)]
    pub success: bool,
}
