//! `/v1/memories/search` and `/v1/conversations/search`: full text, meaning, or both.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiPath;
use super::extract::ApiQuery;
use crate::domain::{Category, ConversationId, MemoryId, Tags, Timestamp, ValidationError};
use crate::search::service::MAX_LIMIT;
use crate::search::{Mode, SearchRequest, SearchResults};
use crate::store::{ConversationHit, EmbeddingStatus, SearchFilter, TagMatch, TimeRange};

/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;
const DEFAULT_LIMIT: usize = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_memories))
        .routes(routes!(search_conversations))
        .routes(routes!(embedding_status))
}

fn query_text(q: &str) -> Result<String, ValidationError> {
    if q.trim().is_empty() {
        return Err(ValidationError::new("q", "must not be empty"));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ValidationError::new(
            "q",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(q.to_owned())
}

fn limit(raw: Option<usize>) -> Result<usize, ValidationError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for, in any words (1–1,000 characters).
    q: String,
    /// text, semantic or hybrid (default).
    #[param(value_type = Option<String>)]
    mode: Option<Mode>,
    /// 1–100, default 20.
    limit: Option<usize>,
    /// Comma-separated tags.
    tags: Option<String>,
    /// any (default) or all of `tags`.
    #[param(value_type = Option<String>)]
    tags_mode: Option<TagMatch>,
    category: Option<String>,
    source: Option<String>,
    conversation_id: Option<String>,
    /// RFC 3339.
    created_after: Option<String>,
    /// RFC 3339.
    created_before: Option<String>,
}

impl SearchParams {
    fn parse(self) -> Result<SearchRequest, ValidationError> {
        let time =
            |field, raw: Option<String>| raw.map(|t| Timestamp::parse(field, &t)).transpose();
        let tags: Vec<String> = self
            .tags
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let filter = SearchFilter {
            tags: Tags::parse(&tags)?.iter().cloned().collect(),
            tag_match: self.tags_mode.unwrap_or_default(),
            category: self.category.as_deref().map(Category::parse).transpose()?,
            source: self.source.as_deref().map(str::parse).transpose()?,
            conversation_id: self
                .conversation_id
                .as_deref()
                .map(ConversationId::parse)
                .transpose()?,
            created: TimeRange {
                from: time("created_after", self.created_after)?,
                to: time("created_before", self.created_before)?,
            },
        };
        Ok(SearchRequest {
            query: query_text(&self.q)?,
            mode: self.mode.unwrap_or_default(),
            limit: limit(self.limit)?,
            filter,
            tuning: Default::default(),
        })
    }
}

#[utoipa::path(get, path = "/v1/memories/search", tag = "search", params(SearchParams),
    responses((status = 200, description = "Best first, each with the signals that ranked it", body = SearchResults),
              (status = 400, body = ApiError)), security(("api_key" = [])))]
async fn search_memories(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let request = params.parse()?;
    Ok(Json(
        state.search.search_memories(caller.uid(), &request).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConversationSearchParams {
    /// Words to find in titles, overviews and transcripts.
    q: String,
    /// 1–100, default 20.
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationSearchResults {
    items: Vec<ConversationHit>,
}

#[utoipa::path(get, path = "/v1/conversations/search", tag = "search", params(ConversationSearchParams),
    responses((status = 200, description = "Best BM25 match first", body = ConversationSearchResults),
              (status = 400, body = ApiError)), security(("api_key" = [])))]
async fn search_conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ConversationSearchParams>,
) -> Result<Json<ConversationSearchResults>, ApiError> {
    let q = query_text(&params.q)?;
    let items = state
        .search
        .search_conversations(caller.uid(), &q, limit(params.limit)?)
        .await?;
    Ok(Json(ConversationSearchResults { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingState {
    /// pending (waiting for the worker, or no model loaded), ready, or failed.
    status: EmbeddingStatus,
    /// The model whose vector counts, when one is loaded.
    model: Option<String>,
    semantic_available: bool,
}

#[utoipa::path(get, path = "/v1/memories/{id}/embedding", tag = "search", params(("id" = String, Path)),
    responses((status = 200, description = "Whether the memory is in semantic search yet", body = EmbeddingState),
              (status = 404, body = ApiError)), security(("api_key" = [])))]
async fn embedding_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EmbeddingState>, ApiError> {
    let id = MemoryId::parse(&id)?;
    let model = state.search.model();
    let status = state
        .store
        .embedding_status(caller.uid(), id, model)
        .await?;
    // Without a model nothing is searchable by meaning, whatever was stored before.
    let status = if model.is_none() && status == EmbeddingStatus::Ready {
        EmbeddingStatus::Pending
    } else {
        status
    };
    Ok(Json(EmbeddingState {
        status,
        model: model.map(|m| m.name.clone()),
        semantic_available: state.search.semantic_available(),
    }))
}
