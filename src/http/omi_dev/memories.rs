//! `/v1/dev/user/memories`: list (Omi's scoring order, limit/offset/categories), create, batch create
//! (≤ 25), update, delete. Omi's limits: content 1–500 characters.
//!
//! Omi asks a language model for the category when none is given; here such memories are `manual`
//! (the native API's default for what a person writes), never a guessed category. Deletes are soft, as
//! everywhere in Angel Memory: the memory stays restorable through the native API.

use axum::extract::{Path, State};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OmiError, OmiJson, OmiQuery, offset_page, success};
use crate::domain::{Category, Content, Memory, MemoryId, Source, Tags, Timestamp, Visibility};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::store::{Created, MemoryPatch, NewMemory, OmiScoring, ScoredMemoryQuery, StoreError};

/// Omi's limit on a memory's content, in characters.
pub const MAX_CONTENT_CHARS: usize = 500;
pub const MAX_BATCH: usize = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/dev/user/memories",
            get(list_memories).post(create_memory),
        )
        .route(
            "/v1/dev/user/memories/batch",
            axum::routing::post(create_batch),
        )
        .route(
            "/v1/dev/user/memories/{id}",
            patch(update_memory).delete(delete_memory),
        )
}

/// Omi's `MemoryResponse` (create).
#[derive(Debug, Serialize)]
pub struct MemoryResponse {
    id: String,
    content: String,
    category: Category,
    visibility: Visibility,
    tags: Vec<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    manually_added: bool,
    scoring: String,
}

impl From<Memory> for MemoryResponse {
    fn from(m: Memory) -> Self {
        Self {
            manually_added: OmiScoring::manually_added(&m),
            scoring: OmiScoring::of(&m),
            id: m.id.to_string(),
            content: m.content.into(),
            category: m.category,
            visibility: m.visibility,
            tags: m.tags.into(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Omi's `CleanerMemory` (list, update): the create fields and the review state.
#[derive(Debug, Serialize)]
pub struct CleanerMemory {
    #[serde(flatten)]
    memory: MemoryResponse,
    /// Angel Memory has no review step: nothing was reviewed.
    reviewed: bool,
    user_review: Option<bool>,
    /// Whether the memory was changed after it was created.
    edited: bool,
}

impl From<Memory> for CleanerMemory {
    fn from(m: Memory) -> Self {
        let edited = m.version > 1;
        Self {
            memory: m.into(),
            reviewed: false,
            user_review: None,
            edited,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<i64>,
    offset: Option<i64>,
    categories: Option<String>,
}

async fn list_memories(
    State(state): State<AppState>,
    caller: Caller,
    OmiQuery(params): OmiQuery<ListParams>,
) -> Result<Json<Vec<CleanerMemory>>, OmiError> {
    let categories = params
        .categories
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            Category::parse(c).map_err(|_| {
                OmiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    format!("Invalid category '{c}' is not a valid MemoryCategory"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let query = ScoredMemoryQuery {
        categories,
        page: offset_page(params.limit, params.offset, 25),
    };
    let memories = state.store.memories_by_score(caller.uid(), &query).await?;
    Ok(Json(
        memories.into_iter().map(CleanerMemory::from).collect(),
    ))
}

/// Omi's `CreateMemoryRequest`.
#[derive(Debug, Deserialize)]
pub struct CreateMemoryRequest {
    content: String,
    category: Option<String>,
    visibility: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Omi's pydantic limit on raw content (before it is stripped).
fn content_within_limit(raw: &str) -> Result<(), OmiError> {
    let chars = raw.chars().count();
    if chars == 0 || chars > MAX_CONTENT_CHARS {
        return Err(OmiError::invalid(
            "body",
            "content",
            format!("String should have 1 to {MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(())
}

fn visibility(raw: &str) -> Result<Visibility, OmiError> {
    raw.parse()
        .map_err(|_| OmiError::unprocessable("visibility must be 'public' or 'private'"))
}

impl CreateMemoryRequest {
    /// `blank` is the message Omi gives for content that is only whitespace.
    fn parse(self, blank: &str) -> Result<NewMemory, OmiError> {
        content_within_limit(&self.content)?;
        let category = self.category.as_deref().map(Category::parse).transpose()?;
        let tags = Tags::parse(&self.tags)?;
        let content = Content::parse(&self.content).map_err(|_| OmiError::unprocessable(blank))?;
        let mut new = NewMemory::new(content, Source::Api);
        new.category = category.unwrap_or(Category::Manual);
        new.visibility = self
            .visibility
            .as_deref()
            .map(visibility)
            .transpose()?
            .unwrap_or_default();
        new.tags = tags;
        Ok(new)
    }
}

async fn create_memory(
    State(state): State<AppState>,
    caller: Caller,
    OmiJson(body): OmiJson<CreateMemoryRequest>,
) -> Result<Json<MemoryResponse>, OmiError> {
    let new = body.parse("content cannot be empty")?;
    // Omi's memory id is its content's hash, so identical content returns the same memory; here the
    // store answers with the existing active memory.
    let created = state
        .store
        .create_memory(caller.uid(), new, &caller.ctx)
        .await?;
    state.search.wake();
    Ok(Json(created.into_memory().into()))
}

#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    memories: Vec<Value>,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    memories: Vec<MemoryResponse>,
    created_count: usize,
}

async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    OmiJson(body): OmiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, OmiError> {
    if body.memories.len() > MAX_BATCH {
        return Err(OmiError::unprocessable(format!(
            "Maximum {MAX_BATCH} memories per batch request"
        )));
    }
    // Omi checks every item before it stores any.
    let new = body
        .memories
        .into_iter()
        .map(|item| {
            serde_json::from_value::<CreateMemoryRequest>(item)
                .map_err(|e| OmiError::invalid("body", "memories", e.to_string()))?
                .parse("All memories must have non-empty content")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = state
        .store
        .create_memories(caller.uid(), new, &caller.ctx)
        .await?;
    state.search.wake();
    let memories = outcomes
        .into_iter()
        .map(|o| o.map(|c: Created| MemoryResponse::from(c.into_memory())))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Json(BatchResponse {
        created_count: memories.len(),
        memories,
    }))
}

/// Omi's `UpdateMemoryRequest`.
#[derive(Debug, Deserialize)]
pub struct UpdateMemoryRequest {
    content: Option<String>,
    visibility: Option<String>,
    tags: Option<Vec<String>>,
    category: Option<String>,
}

/// An active memory of the caller; anything else is Omi's 404.
async fn active_memory(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<Memory, OmiError> {
    let id = MemoryId::parse(raw_id).map_err(|_| OmiError::not_found("Memory"))?;
    let memory = state
        .store
        .get_memory(caller.uid(), id)
        .await
        .map_err(OmiError::store("Memory"))?;
    if memory.is_deleted() {
        return Err(OmiError::not_found("Memory"));
    }
    Ok(memory)
}

async fn update_memory(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OmiJson(body): OmiJson<UpdateMemoryRequest>,
) -> Result<Json<CleanerMemory>, OmiError> {
    // Omi's order: field validation, then existence, then "nothing to change", then visibility.
    if let Some(content) = &body.content {
        content_within_limit(content)?;
    }
    let category = body.category.as_deref().map(Category::parse).transpose()?;
    let tags = body.tags.as_deref().map(Tags::parse).transpose()?;
    let current = active_memory(&state, &caller, &id).await?;
    if body.content.is_none() && body.visibility.is_none() && tags.is_none() && category.is_none() {
        return Err(OmiError::unprocessable(
            "At least one field (content, visibility, tags, or category) must be provided",
        ));
    }
    let patch = MemoryPatch {
        content: body
            .content
            .as_deref()
            .map(Content::parse)
            .transpose()
            .map_err(|_| OmiError::unprocessable("content cannot be empty"))?,
        visibility: body.visibility.as_deref().map(visibility).transpose()?,
        tags,
        category,
        ..MemoryPatch::default()
    };
    // Omi has no versions: the change applies to whatever is current.
    let updated = state
        .store
        .update_memory(
            caller.uid(),
            current.id,
            current.version,
            patch,
            &caller.ctx,
        )
        .await
        .map_err(OmiError::store("Memory"))?;
    state.search.wake();
    Ok(Json(updated.into()))
}

async fn delete_memory(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, OmiError> {
    let current = active_memory(&state, &caller, &id).await?;
    state
        .store
        .delete_memory(caller.uid(), current.id, None, &caller.ctx)
        .await
        .map_err(OmiError::store("Memory"))?;
    Ok(success())
}
