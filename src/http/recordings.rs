//! `/v1/recordings`: the user's audio, as WAV.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::data::PageParams;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery};
use super::pagination::{ListResponse, page_request};
use crate::store::Recording;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_recordings))
        .routes(routes!(download_recording))
}

#[utoipa::path(get, path = "/v1/recordings", tag = "conversations", params(PageParams),
    responses((status = 200, description = "Newest first", body = ListResponse<Recording>)), security(("api_key" = [])))]
async fn list_recordings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<Recording>>, ApiError> {
    let (limit, cursor) = params.into_parts();
    Ok(Json(
        state
            .store
            .recordings(caller.uid(), page_request(limit, cursor.as_deref())?)
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, description = "The recording", content_type = "audio/wav", body = Vec<u8>),
              (status = 404, body = ApiError)), security(("api_key" = [])))]
async fn download_recording(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let recording = state.store.recording(caller.uid(), &id).await?;
    let file = tokio::fs::File::open(state.recorder.path(&recording))
        .await
        .map_err(|_| ApiError::NotFound)?;
    let disposition = format!("attachment; filename=\"{}.wav\"", recording.id);
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(ReaderStream::new(file)),
    )
        .into_response())
}
