//! `/v1/memories`: create, read, list, update, delete, restore, history, batches.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::pagination::{ListResponse, page_request};
use crate::domain::{
    Category, Content, ConversationId, Memory, MemoryId, MemoryVersion, Metadata, Source, Tags,
    Timestamp, ValidationError, Visibility,
};
use crate::store::{
    Created, Deleted, ListQuery, MemoryPatch, NewMemory, SortOrder, StateFilter, StoreError,
    TagMatch, TimeRange,
};

pub const MAX_BATCH_CREATE: usize = 100;
pub const MAX_BATCH_DELETE: usize = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_memory, list_memories))
        .routes(routes!(get_memory, update_memory, delete_memory))
        .routes(routes!(restore_memory))
        .routes(routes!(memory_versions))
        .routes(routes!(create_batch))
        .routes(routes!(delete_batch))
}

/// A new memory. Only `content` is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMemoryRequest {
    /// 1–16,000 characters.
    content: String,
    /// interesting, system, manual (default) or workflow; Omi's legacy categories map to system.
    category: Option<String>,
    /// At most 50 tags of at most 100 characters; normalised to lower case.
    tags: Option<Vec<String>>,
    /// private (default) or public.
    visibility: Option<String>,
    /// manual or api (default); Omi sources are set by the webhook ingest.
    source: Option<String>,
    conversation_id: Option<String>,
    /// A JSON object, at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// When the remembered thing happened (RFC 3339); defaults to now.
    occurred_at: Option<String>,
}

impl CreateMemoryRequest {
    fn parse(self) -> Result<NewMemory, ValidationError> {
        let source = match self.source.as_deref() {
            None => Source::Api,
            Some("api") => Source::Api,
            Some("manual") => Source::Manual,
            Some(other) => {
                return Err(ValidationError::new(
                    "source",
                    format!("{other:?} cannot be set through the API; use manual or api"),
                ));
            }
        };
        Ok(NewMemory {
            content: Content::parse(&self.content)?,
            category: self
                .category
                .as_deref()
                .map(Category::parse)
                .transpose()?
                .unwrap_or(Category::Manual),
            tags: Tags::parse(&self.tags.unwrap_or_default())?,
            visibility: self
                .visibility
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            source,
            conversation_id: self
                .conversation_id
                .as_deref()
                .map(ConversationId::parse)
                .transpose()?,
            metadata: self
                .metadata
                .map(Metadata::parse)
                .transpose()?
                .unwrap_or_default(),
            occurred_at: self
                .occurred_at
                .as_deref()
                .map(|t| Timestamp::parse("occurred_at", t))
                .transpose()?,
        })
    }
}

/// The memory, and whether it already existed with identical content (then nothing was created).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedMemory {
    #[serde(flatten)]
    memory: Memory,
    duplicate: bool,
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, memory: Memory) -> Response {
    let tag = etag(memory.version);
    let mut response = (status, Json(memory)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    response
}

#[utoipa::path(post, path = "/v1/memories", tag = "memories", request_body = CreateMemoryRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, description = "Created", body = CreatedMemory),
              (status = 200, description = "An active memory with identical content exists; returned as is", body = CreatedMemory),
              (status = 400, body = ApiError)), security(("api_key" = [])))]
async fn create_memory(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateMemoryRequest>,
) -> Result<Response, ApiError> {
    let new = body.parse()?;
    let created = state
        .store
        .create_memory(caller.uid(), new, &caller.ctx)
        .await?;
    state.search.wake();
    let (status, duplicate) = match &created {
        Created::New(_) => (StatusCode::CREATED, false),
        Created::Duplicate(_) => (StatusCode::OK, true),
    };
    let memory = created.into_memory();
    let location = HeaderValue::from_str(&format!("/v1/memories/{}", memory.id)).ok();
    let tag = etag(memory.version);
    let mut response = (status, Json(CreatedMemory { memory, duplicate })).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    if let Some(location) = location.filter(|_| status == StatusCode::CREATED) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1–200, default 50.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Comma-separated tags.
    tags: Option<String>,
    /// any (default) or all of `tags`.
    #[param(value_type = Option<String>)]
    tags_mode: Option<TagMatch>,
    category: Option<String>,
    source: Option<String>,
    conversation_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    updated_after: Option<String>,
    updated_before: Option<String>,
    /// active (default), deleted or all.
    #[param(value_type = Option<String>)]
    state: Option<StateFilter>,
    /// desc (newest first, default) or asc.
    #[param(value_type = Option<String>)]
    order: Option<SortOrder>,
}

impl ListParams {
    fn parse(self) -> Result<ListQuery, ValidationError> {
        let time =
            |field, raw: Option<String>| raw.map(|t| Timestamp::parse(field, &t)).transpose();
        let tags: Vec<String> = self
            .tags
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let mut query = ListQuery::new(page_request(self.limit, self.cursor.as_deref())?);
        query.tags = Tags::parse(&tags)?.iter().cloned().collect();
        query.tag_match = self.tags_mode.unwrap_or_default();
        query.category = self.category.as_deref().map(Category::parse).transpose()?;
        query.source = self.source.as_deref().map(str::parse).transpose()?;
        query.conversation_id = self
            .conversation_id
            .as_deref()
            .map(ConversationId::parse)
            .transpose()?;
        query.created = TimeRange {
            from: time("created_after", self.created_after)?,
            to: time("created_before", self.created_before)?,
        };
        query.updated = TimeRange {
            from: time("updated_after", self.updated_after)?,
            to: time("updated_before", self.updated_before)?,
        };
        query.state = self.state.unwrap_or_default();
        query.order = self.order.unwrap_or_default();
        Ok(query)
    }
}

#[utoipa::path(get, path = "/v1/memories", tag = "memories", params(ListParams),
    responses((status = 200, body = ListResponse<Memory>), (status = 400, body = ApiError)), security(("api_key" = [])))]
async fn list_memories(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<Memory>>, ApiError> {
    let query = params.parse()?;
    let page = state.store.list_memories(caller.uid(), &query).await?;
    Ok(Json(page.into()))
}

fn memory_id(raw: &str) -> Result<MemoryId, ApiError> {
    Ok(MemoryId::parse(raw)?)
}

#[utoipa::path(get, path = "/v1/memories/{id}", tag = "memories", params(("id" = String, Path)),
    responses((status = 200, body = Memory), (status = 404, body = ApiError)), security(("api_key" = [])))]
async fn get_memory(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let memory = state
        .store
        .get_memory(caller.uid(), memory_id(&id)?)
        .await?;
    Ok(with_etag(StatusCode::OK, memory))
}

/// Fields to change; absent fields stay as they are. The version being updated must be sent, as
/// `If-Match: "<version>"` or as `expected_version`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemoryRequest {
    content: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    visibility: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    occurred_at: Option<String>,
    expected_version: Option<i64>,
}

impl UpdateMemoryRequest {
    fn parse(self) -> Result<MemoryPatch, ValidationError> {
        Ok(MemoryPatch {
            content: self.content.as_deref().map(Content::parse).transpose()?,
            category: self.category.as_deref().map(Category::parse).transpose()?,
            tags: self.tags.as_deref().map(Tags::parse).transpose()?,
            visibility: self
                .visibility
                .as_deref()
                .map(str::parse::<Visibility>)
                .transpose()?,
            metadata: self.metadata.map(Metadata::parse).transpose()?,
            occurred_at: self
                .occurred_at
                .as_deref()
                .map(|t| Timestamp::parse("occurred_at", t))
                .transpose()?,
        })
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"` or `3`), if the header is present.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or_default().trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw);
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    raw.parse()
        .map(Some)
        .map_err(|_| ApiError::BadRequest("If-Match must name a memory version, like \"3\"".into()))
}

#[utoipa::path(patch, path = "/v1/memories/{id}", tag = "memories", params(("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "The version being updated, e.g. \"3\"")),
    request_body = UpdateMemoryRequest,
    responses((status = 200, body = Memory), (status = 404, body = ApiError), (status = 409, body = ApiError),
              (status = 412, body = ApiError), (status = 428, body = ApiError)), security(("api_key" = [])))]
async fn update_memory(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateMemoryRequest>,
) -> Result<Response, ApiError> {
    let id = memory_id(&id)?;
    let header_version = if_match(&headers)?;
    let body_version = body.expected_version;
    let expected = header_version
        .or(body_version)
        .ok_or(ApiError::PreconditionRequired)?;
    if header_version
        .zip(body_version)
        .is_some_and(|(h, b)| h != b)
    {
        return Err(ApiError::BadRequest(
            "If-Match and expected_version disagree".into(),
        ));
    }
    let patch = body.parse()?;
    if patch.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to update: send at least one field".into(),
        ));
    }
    match state
        .store
        .update_memory(caller.uid(), id, expected, patch, &caller.ctx)
        .await
    {
        Ok(memory) => {
            state.search.wake();
            Ok(with_etag(StatusCode::OK, memory))
        }
        Err(StoreError::VersionConflict { current }) if header_version.is_some() => {
            Err(ApiError::PreconditionFailed { current })
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(delete, path = "/v1/memories/{id}", tag = "memories", params(("id" = String, Path),
        ("If-Match" = Option<String>, Header, description = "Delete only if still at this version")),
    responses((status = 200, description = "Deleted (or already deleted: nothing changes)", body = Memory),
              (status = 404, body = ApiError), (status = 412, body = ApiError)), security(("api_key" = [])))]
async fn delete_memory(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    match state
        .store
        .delete_memory(caller.uid(), memory_id(&id)?, expected, &caller.ctx)
        .await
    {
        Ok(deleted) => Ok(with_etag(StatusCode::OK, deleted.memory().clone())),
        Err(StoreError::VersionConflict { current }) => {
            Err(ApiError::PreconditionFailed { current })
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/v1/memories/{id}/restore", tag = "memories", params(("id" = String, Path)),
    responses((status = 200, body = Memory), (status = 404, body = ApiError),
              (status = 409, description = "An active memory has the same content", body = ApiError)),
    security(("api_key" = [])))]
async fn restore_memory(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let memory = state
        .store
        .restore_memory(caller.uid(), memory_id(&id)?, &caller.ctx)
        .await?;
    state.search.wake();
    Ok(with_etag(StatusCode::OK, memory))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsResponse {
    items: Vec<MemoryVersion>,
}

#[utoipa::path(get, path = "/v1/memories/{id}/versions", tag = "memories", params(("id" = String, Path)),
    responses((status = 200, description = "Every version, oldest first", body = VersionsResponse),
              (status = 404, body = ApiError)), security(("api_key" = [])))]
async fn memory_versions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VersionsResponse>, ApiError> {
    let items = state
        .store
        .memory_versions(caller.uid(), memory_id(&id)?)
        .await?;
    Ok(Json(VersionsResponse { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreateRequest {
    /// At most 100; each is checked on its own, so one bad item does not stop the others.
    #[schema(value_type = Vec<CreateMemoryRequest>)]
    memories: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Created,
    Duplicate,
    Deleted,
    AlreadyDeleted,
    NotFound,
    Error,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemResult {
    /// Position in the request.
    index: usize,
    status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Why the item failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl BatchItemResult {
    fn error(index: usize, id: Option<String>, error: String) -> Self {
        Self {
            index,
            status: ItemStatus::Error,
            memory: None,
            id,
            error: Some(error),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    results: Vec<BatchItemResult>,
    succeeded: usize,
    failed: usize,
}

impl BatchResponse {
    fn new(results: Vec<BatchItemResult>) -> Self {
        let failed = results
            .iter()
            .filter(|r| matches!(r.status, ItemStatus::Error | ItemStatus::NotFound))
            .count();
        Self {
            succeeded: results.len() - failed,
            failed,
            results,
        }
    }
}

/// Why a store failure happened, in words fit for a per-item result.
fn item_error(error: StoreError) -> String {
    match ApiError::from(error) {
        ApiError::Internal(_) | ApiError::Unavailable(_) => {
            "the item could not be stored; retry it".into()
        }
        other => other.to_string(),
    }
}

#[utoipa::path(post, path = "/v1/memories/batch", tag = "memories", request_body = BatchCreateRequest,
    responses((status = 200, description = "One result per item", body = BatchResponse), (status = 400, body = ApiError)),
    security(("api_key" = [])))]
async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchCreateRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if body.memories.len() > MAX_BATCH_CREATE {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_BATCH_CREATE} memories per batch"
        )));
    }
    let mut results = Vec::with_capacity(body.memories.len());
    let mut valid = Vec::new();
    for (index, item) in body.memories.into_iter().enumerate() {
        let parsed = serde_json::from_value::<CreateMemoryRequest>(item)
            .map_err(|e| e.to_string())
            .and_then(|r| r.parse().map_err(|e| e.to_string()));
        match parsed {
            Ok(new) => valid.push((index, new)),
            Err(error) => results.push(BatchItemResult::error(index, None, error)),
        }
    }
    let (indexes, new): (Vec<usize>, Vec<NewMemory>) = valid.into_iter().unzip();
    let outcomes = state
        .store
        .create_memories(caller.uid(), new, &caller.ctx)
        .await?;
    state.search.wake();
    for (index, outcome) in indexes.into_iter().zip(outcomes) {
        results.push(match outcome {
            Ok(Created::New(m)) => BatchItemResult {
                index,
                status: ItemStatus::Created,
                memory: Some(m),
                id: None,
                error: None,
            },
            Ok(Created::Duplicate(m)) => BatchItemResult {
                index,
                status: ItemStatus::Duplicate,
                memory: Some(m),
                id: None,
                error: None,
            },
            Err(e) => BatchItemResult::error(index, None, item_error(e)),
        });
    }
    results.sort_by_key(|r| r.index);
    Ok(Json(BatchResponse::new(results)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchDeleteRequest {
    /// At most 1,000 memory ids.
    ids: Vec<String>,
}

#[utoipa::path(post, path = "/v1/memories/batch-delete", tag = "memories", request_body = BatchDeleteRequest,
    responses((status = 200, description = "One result per id", body = BatchResponse), (status = 400, body = ApiError)),
    security(("api_key" = [])))]
async fn delete_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchDeleteRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if body.ids.len() > MAX_BATCH_DELETE {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_BATCH_DELETE} ids per batch"
        )));
    }
    let mut results = Vec::with_capacity(body.ids.len());
    let mut valid = Vec::new();
    for (index, raw) in body.ids.into_iter().enumerate() {
        match MemoryId::parse(&raw) {
            Ok(id) => valid.push((index, raw, id)),
            Err(e) => results.push(BatchItemResult::error(index, Some(raw), e.to_string())),
        }
    }
    let ids = valid.iter().map(|(_, _, id)| *id).collect();
    let outcomes = state
        .store
        .delete_memories(caller.uid(), ids, &caller.ctx)
        .await?;
    for ((index, raw, _), outcome) in valid.into_iter().zip(outcomes) {
        let status = match outcome {
            Ok(Deleted::Now(_)) => ItemStatus::Deleted,
            Ok(Deleted::Already(_)) => ItemStatus::AlreadyDeleted,
            Err(StoreError::NotFound) => ItemStatus::NotFound,
            Err(e) => {
                results.push(BatchItemResult::error(index, Some(raw), item_error(e)));
                continue;
            }
        };
        results.push(BatchItemResult {
            index,
            status,
            memory: None,
            id: Some(raw),
            error: None,
        });
    }
    results.sort_by_key(|r| r.index);
    Ok(Json(BatchResponse::new(results)))
}
