//! Conversations (as Omi delivers them, reduced to what Angel Memory keeps) and the tasks derived from
//! their action items.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{MemoryId, Timestamp, ValidationError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Conversation {
    pub id: String,
    pub title: String,
    pub overview: String,
    pub emoji: String,
    /// Omi's conversation category (`business`, `personal`, …).
    pub category: String,
    /// Omi's source (`omi`, `phone`, `external_integration`, …).
    pub source: String,
    pub language: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub discarded: bool,
    /// Created by this app through Omi's import API and delivered back: stored, nothing derived.
    pub imported_by_this_app: bool,
    #[schema(value_type = Option<Object>)]
    pub geolocation: Option<serde_json::Value>,
    pub folder_name: Option<String>,
    /// Summaries written by other Omi apps.
    #[schema(value_type = Vec<Object>)]
    pub apps_results: Vec<serde_json::Value>,
    /// The summary memory derived from this conversation, if any.
    pub memory_id: Option<MemoryId>,
    /// How many times Omi delivered a version of this conversation.
    pub deliveries: i64,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TranscriptSegment {
    pub id: String,
    pub text: String,
    pub speaker: Option<String>,
    pub speaker_id: Option<i64>,
    pub speaker_name: Option<String>,
    pub is_user: bool,
    pub person_id: Option<String>,
    /// Seconds from the start of the conversation.
    pub start: f64,
    pub end: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationEvent {
    pub title: String,
    pub description: String,
    pub start: Option<Timestamp>,
    pub duration_minutes: f64,
}

/// A task: an action item Omi found in a conversation or a day summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: String,
    pub description: String,
    pub completed: bool,
    pub due_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub conversation_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A task as derived from Omi, before it is stored. `origin` identifies it across re-deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub origin: String,
    pub description: TaskDescription,
    pub completed: bool,
    pub due_at: Option<Timestamp>,
    pub conversation_id: Option<String>,
}

/// 1–2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskDescription(String);

impl TaskDescription {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > 2_000 {
            return Err(ValidationError::new(
                "description",
                "must be 1–2,000 characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaskDescription {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TaskDescription> for String {
    fn from(value: TaskDescription) -> Self {
        value.0
    }
}
