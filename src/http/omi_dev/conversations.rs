//! `/v1/dev/user/conversations`: list (Omi's filters, optional transcript), get, create from text,
//! create from transcript segments (idempotent per client session id), update, delete.
//!
//! Omi runs a new conversation through a language model that writes its title, overview, category,
//! action items, events and memories. There is none here, and nothing is invented in its place: the
//! title is the text's own first sentence, the overview stays empty, the category is Omi's fallback
//! `other`, and no action items, events or memories are derived. The text of a create-from-text
//! request is kept as received.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{OmiError, OmiJson, OmiQuery, date_time, offset_page, success};
use crate::domain::{
    CONVERSATION_CATEGORIES, CONVERSATION_SOURCES, Conversation, ConversationEvent,
    ConversationTitle, Task, Timestamp, TranscriptSegment,
};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::store::{
    ConversationCreated, ConversationDetail, ConversationPatch, ConversationQuery, NewConversation,
    SourceText,
};

pub const MAX_TEXT_CHARS: usize = 100_000;
pub const MAX_SEGMENTS: usize = 500;
/// Omi's default length of a text conversation without `finished_at`.
const DEFAULT_SECONDS: i64 = 300;
/// Omi's default emoji for a conversation.
const DEFAULT_EMOJI: &str = "🧠";
const TEXT_SOURCES: [&str; 3] = ["audio_transcript", "message", "other_text"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/dev/user/conversations",
            get(list_conversations).post(create_from_text),
        )
        .route(
            "/v1/dev/user/conversations/from-segments",
            post(create_from_segments),
        )
        .route(
            "/v1/dev/user/conversations/{id}",
            get(get_conversation)
                .patch(update_conversation)
                .delete(delete_conversation),
        )
}

/// An action item inside `structured` (Omi's `ActionItem`: no id).
#[derive(Debug, Serialize)]
struct StructuredActionItem {
    description: String,
    completed: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    due_at: Option<Timestamp>,
    completed_at: Option<Timestamp>,
    conversation_id: Option<String>,
}

impl From<Task> for StructuredActionItem {
    fn from(t: Task) -> Self {
        Self {
            description: t.description,
            completed: t.completed,
            created_at: t.created_at,
            updated_at: t.updated_at,
            due_at: t.due_at,
            completed_at: t.completed_at,
            conversation_id: t.conversation_id,
        }
    }
}

/// Omi's `Event`.
#[derive(Debug, Serialize)]
struct Event {
    title: String,
    description: String,
    start: Option<Timestamp>,
    /// Minutes.
    duration: i64,
    /// Whether Omi added it to a calendar: never here.
    created: bool,
}

impl From<ConversationEvent> for Event {
    fn from(e: ConversationEvent) -> Self {
        Self {
            title: e.title,
            description: e.description,
            start: e.start,
            duration: e.duration_minutes.round() as i64,
            created: false,
        }
    }
}

#[derive(Debug, Serialize)]
struct Structured {
    title: String,
    overview: String,
    emoji: String,
    category: String,
    action_items: Vec<StructuredActionItem>,
    events: Vec<Event>,
}

/// Omi's `SimpleTranscriptSegment`.
#[derive(Debug, Serialize)]
struct Segment {
    id: String,
    text: String,
    speaker_id: Option<i64>,
    speaker_name: String,
    start: f64,
    end: f64,
}

impl From<TranscriptSegment> for Segment {
    fn from(s: TranscriptSegment) -> Self {
        // Omi names a speaker by the user's profile ("User" without one), a known person, or else
        // "Speaker <n>"; a name Omi delivered with the segment comes first.
        let speaker_name = s.speaker_name.clone().unwrap_or_else(|| {
            if s.is_user {
                "User".to_owned()
            } else {
                format!("Speaker {}", s.speaker_id.unwrap_or(0))
            }
        });
        Self {
            id: s.id,
            text: s.text,
            speaker_id: s.speaker_id,
            speaker_name,
            start: s.start,
            end: s.end,
        }
    }
}

/// Omi's Developer API `Conversation`.
#[derive(Debug, Serialize)]
pub struct ConversationResponse {
    id: String,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    structured: Structured,
    language: Option<String>,
    source: Option<String>,
    /// `null` unless asked for with `include_transcript`.
    transcript_segments: Option<Vec<Segment>>,
    geolocation: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folder_name: Option<String>,
}

impl ConversationResponse {
    fn new(detail: ConversationDetail, include_transcript: bool) -> Self {
        let ConversationDetail {
            conversation: c,
            transcript_segments,
            events,
            tasks,
        } = detail;
        Self {
            id: c.id,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            structured: Structured {
                title: c.title,
                overview: c.overview,
                emoji: c.emoji,
                category: c.category,
                action_items: tasks.into_iter().map(Into::into).collect(),
                events: events.into_iter().map(Into::into).collect(),
            },
            language: Some(c.language).filter(|l| !l.is_empty()),
            source: Some(c.source).filter(|s| !s.is_empty()),
            transcript_segments: include_transcript
                .then(|| transcript_segments.into_iter().map(Into::into).collect()),
            geolocation: c.geolocation,
            folder_name: c.folder_name,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    start_date: Option<String>,
    end_date: Option<String>,
    categories: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    #[serde(default)]
    include_transcript: bool,
}

async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    OmiQuery(params): OmiQuery<ListParams>,
) -> Result<Json<Vec<ConversationResponse>>, OmiError> {
    let categories = params
        .categories
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            if CONVERSATION_CATEGORIES.contains(&c) {
                Ok(c.to_owned())
            } else {
                Err(OmiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("Invalid category '{c}' is not a valid CategoryEnum"),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = ConversationQuery {
        created_from: params
            .start_date
            .as_deref()
            .map(|d| date_time("query", "start_date", d))
            .transpose()?,
        created_until: params
            .end_date
            .as_deref()
            .map(|d| date_time("query", "end_date", d))
            .transpose()?,
        categories,
        include_discarded: false,
        page: offset_page(params.limit, params.offset, 25),
    };
    let found = state.store.find_conversations(caller.uid(), &query).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|d| ConversationResponse::new(d, params.include_transcript))
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
pub struct TranscriptParam {
    #[serde(default)]
    include_transcript: bool,
}

async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OmiQuery(params): OmiQuery<TranscriptParam>,
) -> Result<Json<ConversationResponse>, OmiError> {
    let detail = state
        .store
        .conversation(caller.uid(), &id)
        .await
        .map_err(OmiError::store("Conversation"))?;
    Ok(Json(ConversationResponse::new(
        detail,
        params.include_transcript,
    )))
}

/// Omi's `ConversationResponse` to a create.
#[derive(Debug, Serialize)]
pub struct Created {
    id: String,
    status: &'static str,
    discarded: bool,
}

fn optional_time(field: &'static str, raw: Option<&str>) -> Result<Option<Timestamp>, OmiError> {
    raw.map(|t| date_time("body", field, t)).transpose()
}

fn plus_seconds(t: Timestamp, seconds: f64) -> Timestamp {
    Timestamp::from_micros(t.as_micros() + (seconds * 1_000_000.0) as i64)
}

/// A conversation as the API creates it: completed, Omi's defaults, and the derived title.
fn new_conversation(
    title: ConversationTitle,
    source: String,
    language: String,
    started_at: Timestamp,
    finished_at: Timestamp,
    geolocation: Option<Value>,
) -> Conversation {
    let now = Timestamp::now();
    Conversation {
        id: Uuid::new_v4().to_string(),
        title: title.as_str().to_owned(),
        overview: String::new(),
        emoji: DEFAULT_EMOJI.to_owned(),
        category: "other".to_owned(),
        source,
        language,
        // Omi: an external conversation's created_at is its started_at.
        created_at: started_at,
        started_at: Some(started_at),
        finished_at: Some(finished_at),
        discarded: false,
        imported_by_this_app: false,
        geolocation,
        folder_name: None,
        apps_results: Vec::new(),
        memory_id: None,
        deliveries: 1,
        updated_at: now,
    }
}

/// Omi's `CreateConversationRequest`.
#[derive(Debug, Deserialize)]
pub struct CreateFromText {
    text: String,
    text_source: Option<String>,
    text_source_spec: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    language: Option<String>,
    geolocation: Option<Value>,
}

async fn create_from_text(
    State(state): State<AppState>,
    caller: Caller,
    OmiJson(body): OmiJson<CreateFromText>,
) -> Result<Json<Created>, OmiError> {
    let chars = body.text.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        return Err(OmiError::invalid(
            "body",
            "text",
            format!("String should have 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    let text_source = body.text_source.unwrap_or_else(|| "other_text".into());
    if !TEXT_SOURCES.contains(&text_source.as_str()) {
        return Err(OmiError::invalid(
            "body",
            "text_source",
            "Input should be 'audio_transcript', 'message' or 'other_text'",
        ));
    }
    let started_at = optional_time("started_at", body.started_at.as_deref())?;
    let finished_at = optional_time("finished_at", body.finished_at.as_deref())?;
    let text = body.text.trim();
    let title = ConversationTitle::derive(text)
        .ok_or_else(|| OmiError::unprocessable("text cannot be empty"))?;
    let started_at = started_at.unwrap_or_else(Timestamp::now);
    let finished_at = finished_at.unwrap_or(plus_seconds(started_at, DEFAULT_SECONDS as f64));
    if finished_at < started_at {
        return Err(OmiError::unprocessable(
            "finished_at must be after started_at",
        ));
    }
    let conversation = new_conversation(
        title,
        "external_integration".into(),
        body.language.unwrap_or_else(|| "en".into()),
        started_at,
        finished_at,
        body.geolocation,
    );
    let new = NewConversation {
        conversation,
        segments: Vec::new(),
        source_text: Some(SourceText {
            text: text.to_owned(),
            text_source,
            text_source_spec: body.text_source_spec,
        }),
        client_session_id: None,
    };
    let created = state
        .store
        .create_conversation(caller.uid(), new, &caller.ctx)
        .await?;
    Ok(Json(created_response(created)))
}

fn created_response(created: ConversationCreated) -> Created {
    match created {
        ConversationCreated::New(c) | ConversationCreated::Existing(c) => Created {
            id: c.id,
            status: "completed",
            discarded: c.discarded,
        },
        ConversationCreated::Deleted { id } => Created {
            id,
            status: "deleted",
            discarded: false,
        },
    }
}

/// Omi's `DevTranscriptSegment`.
#[derive(Debug, Deserialize)]
pub struct NewSegment {
    text: String,
    speaker: Option<String>,
    speaker_id: Option<i64>,
    #[serde(default)]
    is_user: bool,
    person_id: Option<String>,
    start: f64,
    end: f64,
}

/// Omi's `CreateConversationFromTranscriptRequest`, with the client session id of Omi's newest docs
/// under each of its names.
#[derive(Debug, Deserialize)]
pub struct CreateFromSegments {
    transcript_segments: Vec<NewSegment>,
    source: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    language: Option<String>,
    geolocation: Option<Value>,
    #[serde(
        alias = "client_conversation_id",
        alias = "session_id",
        alias = "client_id"
    )]
    client_session_id: Option<String>,
}

/// `SPEAKER_01` → 1, as Omi derives `speaker_id` from the label.
fn speaker_number(label: &str) -> Option<i64> {
    label.rsplit('_').next()?.parse().ok()
}

async fn create_from_segments(
    State(state): State<AppState>,
    caller: Caller,
    OmiJson(body): OmiJson<CreateFromSegments>,
) -> Result<Json<Created>, OmiError> {
    let source = body.source.unwrap_or_else(|| "external_integration".into());
    if !CONVERSATION_SOURCES.contains(&source.as_str()) {
        return Err(OmiError::invalid(
            "body",
            "source",
            format!("Input should be one of {}", CONVERSATION_SOURCES.join(", ")),
        ));
    }
    let started_at = optional_time("started_at", body.started_at.as_deref())?;
    let finished_at = optional_time("finished_at", body.finished_at.as_deref())?;
    if body.transcript_segments.is_empty() {
        return Err(OmiError::unprocessable(
            "transcript_segments cannot be empty",
        ));
    }
    if body.transcript_segments.len() > MAX_SEGMENTS {
        return Err(OmiError::unprocessable(format!(
            "Maximum {MAX_SEGMENTS} transcript segments allowed"
        )));
    }
    for (i, s) in body.transcript_segments.iter().enumerate() {
        if s.end <= s.start {
            return Err(OmiError::unprocessable(format!(
                "Segment {i}: end time must be after start time"
            )));
        }
        if s.start < 0.0 {
            return Err(OmiError::unprocessable(format!(
                "Segment {i}: start time cannot be negative"
            )));
        }
        if s.text.trim().is_empty() {
            return Err(OmiError::unprocessable(format!(
                "Segment {i}: text cannot be empty"
            )));
        }
    }
    let client_session_id = body
        .client_session_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let started_at = started_at.unwrap_or_else(Timestamp::now);
    let last_end = body.transcript_segments.last().map_or(0.0, |s| s.end);
    let finished_at = finished_at.unwrap_or(plus_seconds(started_at, last_end));
    if finished_at <= started_at {
        return Err(OmiError::unprocessable(
            "finished_at must be after started_at",
        ));
    }
    let segments: Vec<TranscriptSegment> = body
        .transcript_segments
        .into_iter()
        .map(|s| {
            let speaker = s.speaker.unwrap_or_else(|| "SPEAKER_00".into());
            TranscriptSegment {
                id: Uuid::new_v4().to_string(),
                text: s.text.trim().to_owned(),
                speaker_id: s.speaker_id.or_else(|| speaker_number(&speaker)),
                speaker: Some(speaker),
                speaker_name: None,
                is_user: s.is_user,
                person_id: s.person_id,
                start: s.start,
                end: s.end,
            }
        })
        .collect();
    let spoken: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let title = ConversationTitle::derive(&spoken.join(" "))
        .ok_or_else(|| OmiError::unprocessable("transcript_segments cannot be empty"))?;
    let conversation = new_conversation(
        title,
        source,
        body.language.unwrap_or_else(|| "en".into()),
        started_at,
        finished_at,
        body.geolocation,
    );
    let new = NewConversation {
        conversation,
        segments,
        source_text: None,
        client_session_id,
    };
    let created = state
        .store
        .create_conversation(caller.uid(), new, &caller.ctx)
        .await?;
    Ok(Json(created_response(created)))
}

/// Omi's `UpdateConversationRequest`.
#[derive(Debug, Deserialize)]
pub struct UpdateRequest {
    title: Option<String>,
    discarded: Option<bool>,
}

async fn update_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OmiJson(body): OmiJson<UpdateRequest>,
) -> Result<Json<ConversationResponse>, OmiError> {
    let title = body
        .title
        .as_deref()
        .map(|t| {
            let chars = t.chars().count();
            if chars == 0 || chars > ConversationTitle::MAX_CHARS {
                return Err(OmiError::invalid(
                    "body",
                    "title",
                    "String should have 1 to 500 characters",
                ));
            }
            ConversationTitle::parse(t).map_err(OmiError::from)
        })
        .transpose()?;
    let patch = ConversationPatch {
        title,
        discarded: body.discarded,
    };
    if patch.title.is_none() && patch.discarded.is_none() {
        // Omi answers 404 for an unknown conversation before it looks at the body.
        state
            .store
            .conversation(caller.uid(), &id)
            .await
            .map_err(OmiError::store("Conversation"))?;
        return Err(OmiError::unprocessable(
            "At least one field (title or discarded) must be provided",
        ));
    }
    let updated = state
        .store
        .update_conversation(caller.uid(), &id, patch, &caller.ctx)
        .await
        .map_err(OmiError::store("Conversation"))?;
    // Omi answers with the stored conversation, transcript included.
    Ok(Json(ConversationResponse::new(updated, true)))
}

async fn delete_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, OmiError> {
    state
        .store
        .delete_conversation(caller.uid(), &id, &caller.ctx)
        .await
        .map_err(OmiError::store("Conversation"))?;
    Ok(success())
}
