//! A user's data as a whole: stats, audit trail, export and import.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::ApiQuery;
use super::pagination::{ListResponse, page_request};
use crate::store::{AuditEvent, ImportReport, Stats};
use crate::transfer;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(audit))
        .routes(routes!(export))
}

/// Import takes a larger body than other routes, so it gets its own body limit.
pub fn import_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import))
}

#[utoipa::path(get, path = "/v1/stats", tag = "data", responses((status = 200, body = Stats)), security(("api_key" = [])))]
async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.store.stats(caller.uid()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1–200, default 50.
    limit: Option<u32>,
    cursor: Option<String>,
}

impl PageParams {
    pub fn into_parts(self) -> (Option<u32>, Option<String>) {
        (self.limit, self.cursor)
    }
}

#[utoipa::path(get, path = "/v1/audit", tag = "data", params(PageParams),
    responses((status = 200, description = "Newest first", body = ListResponse<AuditEvent>)), security(("api_key" = [])))]
async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<AuditEvent>>, ApiError> {
    let (limit, cursor) = params.into_parts();
    let page = page_request(limit, cursor.as_deref())?;
    Ok(Json(
        state.store.audit_events(caller.uid(), page).await?.into(),
    ))
}

#[utoipa::path(get, path = "/v1/export", tag = "data",
    responses((status = 200, description = "JSONL: header, memories with every version, audit events, end line",
               content_type = "application/x-ndjson", body = String)), security(("api_key" = [])))]
async fn export(State(state): State<AppState>, caller: Caller) -> Response {
    let stream = transfer::export(Arc::clone(&state.store), caller.uid().clone()).map(|chunk| {
        chunk.map(Bytes::from).map_err(|error| {
            tracing::error!(%error, "export stopped early");
            std::io::Error::other("export failed")
        })
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    #[serde(flatten)]
    report: ImportReport,
    /// Audit events in the file; the import writes its own trail instead of copying them.
    audit_events_in_file: u64,
}

#[utoipa::path(post, path = "/v1/import", tag = "data",
    request_body(content = String, content_type = "application/x-ndjson", description = "A file made by GET /v1/export"),
    responses((status = 200, body = ImportResponse), (status = 400, description = "Nothing was imported", body = ApiError)),
    security(("api_key" = [])))]
async fn import(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportResponse>, ApiError> {
    let body = body.map_err(|_| {
        ApiError::PayloadTooLarge("the import is larger than limits.max_import_bytes".into())
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the import must be UTF-8 text".into()))?;
    let file = transfer::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let report = state
        .store
        .import_memories(caller.uid(), file.memories, &caller.ctx)
        .await?;
    Ok(Json(ImportResponse {
        report,
        audit_events_in_file: file.audit_events,
    }))
}
