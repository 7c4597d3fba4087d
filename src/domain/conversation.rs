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

/// A conversation's title, 1–500 characters after trimming (Omi's limit for a title set by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationTitle(String);

impl ConversationTitle {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(ValidationError::new("title", "must be 1–500 characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ConversationTitle {
    /// Characters kept when a title is taken from a conversation's own words.
    pub const DERIVED_CHARS: usize = 80;

    /// A title taken from the text itself, where Omi would ask a language model for one: its first
    /// sentence (or line), cut at a word boundary to at most 80 characters with "…". `None` for text
    /// without words.
    pub fn derive(text: &str) -> Option<Self> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        let sentence = line
            .char_indices()
            .find(|&(i, c)| {
                matches!(c, '.' | '!' | '?')
                    && line[i + c.len_utf8()..].starts_with(char::is_whitespace)
            })
            .map_or(line, |(i, c)| &line[..i + c.len_utf8()]);
        if sentence.chars().count() <= Self::DERIVED_CHARS {
            return Self::parse(sentence).ok();
        }
        let cut: String = sentence.chars().take(Self::DERIVED_CHARS - 1).collect();
        let cut = cut
            .rfind(char::is_whitespace)
            .filter(|&i| i > 0)
            .map_or(cut.as_str(), |i| &cut[..i])
            .trim_end();
        Self::parse(&format!("{cut}…")).ok()
    }
}

/// Omi's conversation categories (`structured.category`); Omi turns any other value into `other`.
pub const CONVERSATION_CATEGORIES: [&str; 33] = [
    "personal",
    "education",
    "health",
    "finance",
    "legal",
    "philosophy",
    "spiritual",
    "science",
    "entrepreneurship",
    "parenting",
    "romantic",
    "travel",
    "inspiration",
    "technology",
    "business",
    "social",
    "work",
    "sports",
    "politics",
    "literature",
    "history",
    "architecture",
    "music",
    "weather",
    "news",
    "entertainment",
    "psychology",
    "real",
    "design",
    "family",
    "economics",
    "environment",
    "other",
];

/// Omi's conversation sources.
pub const CONVERSATION_SOURCES: [&str; 20] = [
    "friend",
    "omi",
    "fieldy",
    "bee",
    "plaud",
    "frame",
    "friend_com",
    "apple_watch",
    "phone",
    "phone_call",
    "desktop",
    "openglass",
    "screenpipe",
    "workflow",
    "sdcard",
    "external_integration",
    "limitless",
    "rayban_meta",
    "onboarding",
    "unknown",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_titles_are_the_first_sentence_cut_at_a_word() {
        let t =
            ConversationTitle::derive("\n  Met Sam at the cafe. We talked about Lisbon.").unwrap();
        assert_eq!(t.as_str(), "Met Sam at the cafe.");
        let long = "word ".repeat(40);
        let t = ConversationTitle::derive(&long).unwrap();
        assert!(t.as_str().ends_with("word…"));
        assert!(t.as_str().chars().count() <= ConversationTitle::DERIVED_CHARS);
        assert!(ConversationTitle::derive(" \n ").is_none());
        assert_eq!(
            ConversationTitle::derive("v1.2 shipped").unwrap().as_str(),
            "v1.2 shipped"
        );
    }
}
