//! `/v1/omi/*`: a user's sync settings and the state of the connection to Omi; and, for operators,
//! the outbox of writes to Omi (`/v1/admin/omi/outbox`, modelled on the inbox routes).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::pagination::{ListResponse, page_request};
use crate::domain::{Category, Source, Tag};
use crate::queue::outbox::WorkerStatus;
use crate::resilience::BreakerSnapshot;
use crate::store::{NotifyEvent, OutboxCounts, OutboxEntry, OutboxState, SyncSettings};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_sync, put_sync))
        .routes(routes!(status))
}

pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_outbox))
        .routes(routes!(retry_outbox_item))
}

#[utoipa::path(get, path = "/v1/omi/sync", tag = "omi",
    responses((status = 200, body = SyncSettings)), security(("api_key" = [])))]
async fn get_sync(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SyncSettings>, ApiError> {
    Ok(Json(state.store.omi_sync_settings(caller.uid()).await?))
}

/// The whole set of choices (a field left out is reset to its default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Push new memories to Omi (as explicit memories of this app).
    push_memories: bool,
    /// Only memories with at least one of these tags; empty = any.
    #[serde(default)]
    tags: Vec<String>,
    /// Only these categories (interesting, system, manual, workflow); empty = any.
    #[serde(default)]
    categories: Vec<String>,
    /// Only these sources (manual, api, omi_conversation, omi_realtime, omi_day_summary, import); empty = any.
    #[serde(default)]
    sources: Vec<String>,
    /// Notify in Omi on: memory_created, conversation_processed.
    #[serde(default)]
    notify: Vec<NotifyEvent>,
}

#[utoipa::path(put, path = "/v1/omi/sync", tag = "omi", request_body = SyncRequest,
    responses((status = 200, body = SyncSettings), (status = 400, body = ApiError)), security(("api_key" = [])))]
async fn put_sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SyncRequest>,
) -> Result<Json<SyncSettings>, ApiError> {
    let settings = SyncSettings {
        push_memories: body.push_memories,
        tags: body
            .tags
            .iter()
            .map(|t| Tag::parse(t))
            .collect::<Result<_, _>>()?,
        categories: body
            .categories
            .iter()
            .map(|c| Category::parse(c))
            .collect::<Result<_, _>>()?,
        sources: body
            .sources
            .iter()
            .map(|s| Source::from_str(s))
            .collect::<Result<_, _>>()?,
        notify: body.notify,
        updated_at: None,
    };
    Ok(Json(
        state
            .store
            .set_omi_sync_settings(caller.uid(), settings)
            .await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Configured {
    /// App id and app key: pushes, pulls and notifications.
    integration: bool,
    /// A developer key.
    developer: bool,
}

/// The connection to Omi: breaker, the caller's queue, the worker. Ingest, search and the API do not
/// depend on it: they keep working while Omi is down.
#[derive(Debug, Serialize, ToSchema)]
pub struct OmiStatus {
    configured: Configured,
    /// `null` when the Integration API is not configured.
    breaker: Option<BreakerSnapshot>,
    /// The caller's items in the outbox.
    outbox: OutboxCounts,
    worker: WorkerStatus,
}

#[utoipa::path(get, path = "/v1/omi/status", tag = "omi",
    responses((status = 200, body = OmiStatus)), security(("api_key" = [])))]
async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OmiStatus>, ApiError> {
    let omi = &state.config.omi;
    let client = state.outbox.client();
    Ok(Json(OmiStatus {
        configured: Configured {
            integration: client.is_some_and(|c| c.has_app()),
            developer: omi.dev_key.is_some(),
        },
        breaker: client.map(|c| c.breaker_snapshot()),
        outbox: state.store.outbox_counts(Some(caller.uid())).await?,
        worker: state.outbox.status(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// pending, done or dead (default dead: what needs an operator).
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/omi/outbox", tag = "admin", params(OutboxParams),
    responses((status = 200, description = "Oldest first", body = ListResponse<OutboxEntry>)), security(("admin_token" = [])))]
async fn list_outbox(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<OutboxParams>,
) -> Result<Json<ListResponse<OutboxEntry>>, ApiError> {
    let wanted = params.state.as_deref().unwrap_or("dead");
    let outbox_state = OutboxState::parse(wanted).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "state {wanted:?} is not one of pending, done, dead"
        ))
    })?;
    let page = page_request(params.limit, params.cursor.as_deref())?;
    Ok(Json(state.store.outbox(outbox_state, page).await?.into()))
}

#[utoipa::path(post, path = "/v1/admin/omi/outbox/{id}/retry", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "Queued again", body = OutboxEntry), (status = 404, body = ApiError),
              (status = 409, description = "The item is not dead", body = ApiError)), security(("admin_token" = [])))]
async fn retry_outbox_item(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OutboxEntry>, ApiError> {
    let entry = state.store.retry_outbox(&id).await?;
    state.outbox.wake();
    Ok(Json(entry))
}
