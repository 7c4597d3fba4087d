//! `/v1/conversations` and `/v1/tasks`: what Omi's events derived, read and tended by the user.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::data::PageParams;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::pagination::{ListResponse, page_request};
use crate::domain::{Conversation, Task, TaskDescription, Timestamp};
use crate::store::{ConversationDetail, TaskFilter, TaskPatch};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(list_tasks))
        .routes(routes!(update_task))
}

#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(PageParams),
    responses((status = 200, description = "Newest first", body = ListResponse<Conversation>)), security(("api_key" = [])))]
async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<Conversation>>, ApiError> {
    let (limit, cursor) = params.into_parts();
    Ok(Json(
        state
            .store
            .conversations(caller.uid(), page_request(limit, cursor.as_deref())?)
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, description = "With transcript, events and tasks", body = ConversationDetail),
              (status = 404, body = ApiError)), security(("api_key" = [])))]
async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    Ok(Json(state.store.conversation(caller.uid(), &id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskParams {
    limit: Option<u32>,
    cursor: Option<String>,
    completed: Option<bool>,
    conversation_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/tasks", tag = "conversations", params(TaskParams),
    responses((status = 200, description = "Newest first", body = ListResponse<Task>)), security(("api_key" = [])))]
async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<TaskParams>,
) -> Result<Json<ListResponse<Task>>, ApiError> {
    let page = page_request(params.limit, params.cursor.as_deref())?;
    let filter = TaskFilter {
        completed: params.completed,
        conversation_id: params.conversation_id,
    };
    Ok(Json(
        state.store.tasks(caller.uid(), filter, page).await?.into(),
    ))
}

/// Fields to change; `"due_at": null` clears the due date.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    description: Option<String>,
    completed: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    due_at: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "conversations", params(("id" = String, Path)),
    request_body = UpdateTaskRequest,
    responses((status = 200, body = Task), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("api_key" = [])))]
async fn update_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTaskRequest>,
) -> Result<Json<Task>, ApiError> {
    let patch = TaskPatch {
        description: body
            .description
            .as_deref()
            .map(TaskDescription::parse)
            .transpose()?,
        completed: body.completed,
        due_at: body
            .due_at
            .map(|d| d.map(|t| Timestamp::parse("due_at", &t)).transpose())
            .transpose()?,
    };
    if patch.description.is_none() && patch.completed.is_none() && patch.due_at.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to update: send description, completed or due_at".into(),
        ));
    }
    Ok(Json(
        state
            .store
            .update_task(caller.uid(), &id, patch, &caller.ctx)
            .await?,
    ))
}
