//! Omi's webhook bodies, parsed leniently: unknown fields are ignored, optional fields default,
//! unknown enum values are kept as text, and timestamps may carry an offset, `Z`, or nothing.
//! (Never `deny_unknown_fields` here: Omi adds fields often.)

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::Timestamp;

fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let raw: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match raw {
        Some(serde_json::Value::String(s)) => Timestamp::parse("timestamp", &s).ok(),
        _ => None,
    })
}

/// `null` or absent become the default (Omi sends `null` for unset lists and strings).
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Conversation {
    pub id: String,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub started_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub finished_at: Option<Timestamp>,
    /// Omi's device/source enum, kept as sent (`omi`, `phone`, `external_integration`, …).
    #[serde(default, deserialize_with = "null_default")]
    pub source: String,
    #[serde(default, deserialize_with = "null_default")]
    pub language: String,
    #[serde(default, deserialize_with = "null_default")]
    pub structured: Structured,
    #[serde(default, deserialize_with = "null_default")]
    pub transcript_segments: Vec<Segment>,
    #[serde(default)]
    pub geolocation: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub apps_results: Vec<AppResult>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub discarded: bool,
    #[serde(default)]
    pub folder_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Structured {
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    #[serde(default, deserialize_with = "null_default")]
    pub overview: String,
    #[serde(default, deserialize_with = "null_default")]
    pub emoji: String,
    /// Omi's conversation category (`business`, `personal`, …; unknown values kept).
    #[serde(default, deserialize_with = "null_default")]
    pub category: String,
    #[serde(default, deserialize_with = "null_default")]
    pub action_items: Vec<ActionItem>,
    #[serde(default, deserialize_with = "null_default")]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ActionItem {
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_default")]
    pub completed: bool,
    #[serde(default, deserialize_with = "lenient_time")]
    pub due_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Event {
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "lenient_time")]
    pub start: Option<Timestamp>,
    /// Minutes; Omi's default is 30.
    #[serde(default)]
    pub duration: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AppResult {
    #[serde(default, deserialize_with = "null_default")]
    pub app_id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Segment {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub text: String,
    #[serde(default)]
    pub speaker: Option<String>,
    #[serde(default, alias = "speakerId")]
    pub speaker_id: Option<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub is_user: bool,
    #[serde(default)]
    pub person_id: Option<String>,
    #[serde(default)]
    pub speaker_name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub start: f64,
    #[serde(default, deserialize_with = "null_default")]
    pub end: f64,
}

/// The real-time transcript body: Omi sends `{"session_id", "segments"}`; its documentation shows a
/// bare array. Both are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TranscriptBatch {
    Object {
        #[serde(default)]
        session_id: Option<String>,
        #[serde(default, deserialize_with = "null_default")]
        segments: Vec<Segment>,
    },
    Legacy(Vec<Segment>),
}

impl TranscriptBatch {
    pub fn into_parts(self) -> (Option<String>, Vec<Segment>) {
        match self {
            Self::Object {
                session_id,
                segments,
            } => (session_id, segments),
            Self::Legacy(segments) => (None, segments),
        }
    }
}

/// The day-summary body. `summary` is a Python `str(dict)`, not JSON: only `summary_json` is read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DaySummaryBody {
    #[serde(default)]
    pub summary_json: Option<DaySummary>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DaySummary {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub date: String,
    #[serde(default, deserialize_with = "null_default")]
    pub headline: String,
    #[serde(default, deserialize_with = "null_default")]
    pub overview: String,
    #[serde(default, deserialize_with = "null_default")]
    pub action_items: Vec<DayActionItem>,
    #[serde(default, deserialize_with = "null_default")]
    pub decisions_made: Vec<Decision>,
    #[serde(default, deserialize_with = "null_default")]
    pub knowledge_nuggets: Vec<Nugget>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DayActionItem {
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_default")]
    pub completed: bool,
    #[serde(default)]
    pub source_conversation_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Decision {
    #[serde(default, deserialize_with = "null_default")]
    pub decision: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Nugget {
    #[serde(default, deserialize_with = "null_default")]
    pub insight: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../shared/fixtures/omi/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn parses_every_conversation_fixture() {
        let full: Conversation =
            serde_json::from_str(&fixture("conversation_created_full.json")).unwrap();
        assert_eq!(full.id, "11c4af5e-338a-4250-a16e-8e3b60bfe934");
        assert_eq!(full.transcript_segments.len(), 12);
        assert_eq!(full.structured.action_items.len(), 2);
        assert_eq!(full.structured.events.len(), 1);
        let minimal: Conversation =
            serde_json::from_str(&fixture("conversation_created_minimal.json")).unwrap();
        assert!(minimal.transcript_segments.iter().all(|s| s.id.is_none()));
        assert_eq!(minimal.source, "");
        let developer: Conversation =
            serde_json::from_str(&fixture("conversation_created_developer.json")).unwrap();
        assert!(
            developer
                .transcript_segments
                .iter()
                .all(|s| s.speaker_name.is_some())
        );
        let imported: Conversation =
            serde_json::from_str(&fixture("conversation_imported.json")).unwrap();
        assert_eq!(imported.source, "external_integration");
        let discarded: Conversation =
            serde_json::from_str(&fixture("conversation_discarded.json")).unwrap();
        assert!(discarded.discarded);
    }

    #[test]
    fn parses_both_transcript_shapes_and_the_day_summary() {
        let batch: TranscriptBatch =
            serde_json::from_str(&fixture("realtime_transcript_batch1.json")).unwrap();
        let (session, segments) = batch.into_parts();
        assert_eq!(session.as_deref(), Some("5Z9Lil2WHl1vvn5iP2pZw0fKm4BR"));
        assert_eq!(segments.len(), 3);
        let legacy: TranscriptBatch =
            serde_json::from_str(&fixture("realtime_transcript_legacy_array.json")).unwrap();
        let (_, segments) = legacy.into_parts();
        assert_eq!(segments[1].speaker_id, Some(1));
        let day: DaySummaryBody = serde_json::from_str(&fixture("day_summary.json")).unwrap();
        let summary = day.summary_json.unwrap();
        assert!(!summary.headline.is_empty());
        assert!(!summary.knowledge_nuggets.is_empty());
    }
}
