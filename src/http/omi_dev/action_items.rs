//! `/v1/dev/user/action-items`: Omi's action items are Angel Memory's tasks (those derived from
//! conversations and those the user writes). List with Omi's filters, create, batch create (≤ 50),
//! update, delete. Omi's limits: description 1–500 characters. Omi sends a push reminder for a due
//! date; there is no push channel here, so the due date is only stored.

use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{OmiError, OmiJson, OmiQuery, date_time, offset_page, success};
use crate::domain::{NewTask, Task, TaskDescription, Timestamp};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::store::{TaskPatch, TaskQuery};

pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_BATCH: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/dev/user/action-items",
            get(list_action_items).post(create_action_item),
        )
        .route("/v1/dev/user/action-items/batch", post(create_batch))
        .route(
            "/v1/dev/user/action-items/{id}",
            patch(update_action_item).delete(delete_action_item),
        )
}

/// Omi's `ActionItemResponse`: the task's fields, named as Omi names them.
pub type ActionItem = Task;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    conversation_id: Option<String>,
    completed: Option<bool>,
    start_date: Option<String>,
    end_date: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_action_items(
    State(state): State<AppState>,
    caller: Caller,
    OmiQuery(params): OmiQuery<ListParams>,
) -> Result<Json<Vec<ActionItem>>, OmiError> {
    let query = TaskQuery {
        completed: params.completed,
        conversation_id: params.conversation_id,
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
        page: Some(offset_page(params.limit, params.offset, 100)),
    };
    Ok(Json(state.store.find_tasks(caller.uid(), &query).await?))
}

/// Omi's pydantic limit on a raw description (before it is stripped).
fn description(raw: &str, blank: &str) -> Result<TaskDescription, OmiError> {
    let chars = raw.chars().count();
    if chars == 0 || chars > MAX_DESCRIPTION_CHARS {
        return Err(OmiError::invalid(
            "body",
            "description",
            format!("String should have 1 to {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    TaskDescription::parse(raw).map_err(|_| OmiError::unprocessable(blank))
}

/// Omi's `CreateActionItemRequest`.
#[derive(Debug, Deserialize)]
pub struct CreateActionItemRequest {
    description: String,
    #[serde(default)]
    completed: bool,
    due_at: Option<String>,
}

impl CreateActionItemRequest {
    fn parse(self, blank: &str) -> Result<NewTask, OmiError> {
        Ok(NewTask {
            // Written by the user: its own origin, so no re-delivered conversation ever merges into it.
            origin: format!("user:{}", Uuid::new_v4()),
            description: description(&self.description, blank)?,
            completed: self.completed,
            due_at: self
                .due_at
                .as_deref()
                .map(|d| date_time("body", "due_at", d))
                .transpose()?,
            conversation_id: None,
        })
    }
}

async fn create_action_item(
    State(state): State<AppState>,
    caller: Caller,
    OmiJson(body): OmiJson<CreateActionItemRequest>,
) -> Result<Json<ActionItem>, OmiError> {
    let new = body.parse("description cannot be empty")?;
    let mut created = state
        .store
        .create_tasks(caller.uid(), vec![new], &caller.ctx)
        .await?;
    created
        .pop()
        .map(Json)
        .ok_or_else(|| OmiError::from(crate::store::StoreError::Internal("no task created".into())))
}

#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    action_items: Vec<Value>,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    action_items: Vec<ActionItem>,
    created_count: usize,
}

async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    OmiJson(body): OmiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, OmiError> {
    if body.action_items.len() > MAX_BATCH {
        return Err(OmiError::unprocessable(format!(
            "Maximum {MAX_BATCH} action items per batch request"
        )));
    }
    let new = body
        .action_items
        .into_iter()
        .map(|item| {
            serde_json::from_value::<CreateActionItemRequest>(item)
                .map_err(|e| OmiError::invalid("body", "action_items", e.to_string()))?
                .parse("All action items must have non-empty descriptions")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let action_items = if new.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .create_tasks(caller.uid(), new, &caller.ctx)
            .await?
    };
    Ok(Json(BatchResponse {
        created_count: action_items.len(),
        action_items,
    }))
}

/// Omi's `UpdateActionItemRequest`. As in Omi, `"due_at": null` changes nothing.
#[derive(Debug, Deserialize)]
pub struct UpdateActionItemRequest {
    description: Option<String>,
    completed: Option<bool>,
    due_at: Option<String>,
}

async fn update_action_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OmiJson(body): OmiJson<UpdateActionItemRequest>,
) -> Result<Json<ActionItem>, OmiError> {
    let description = body
        .description
        .as_deref()
        .map(|d| description(d, "description cannot be empty"))
        .transpose()?;
    let due_at: Option<Timestamp> = body
        .due_at
        .as_deref()
        .map(|d| date_time("body", "due_at", d))
        .transpose()?;
    let patch = TaskPatch {
        description,
        completed: body.completed,
        due_at: due_at.map(Some),
    };
    let nothing =
        patch.description.is_none() && patch.completed.is_none() && patch.due_at.is_none();
    // An empty patch changes nothing and still tells whether the item exists: Omi answers 404 first.
    let updated = state
        .store
        .update_task(caller.uid(), &id, patch, &caller.ctx)
        .await
        .map_err(OmiError::store("Action item"))?;
    if nothing {
        return Err(OmiError::unprocessable(
            "At least one field must be provided",
        ));
    }
    Ok(Json(updated))
}

async fn delete_action_item(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, OmiError> {
    state
        .store
        .delete_task(caller.uid(), &id, &caller.ctx)
        .await
        .map_err(OmiError::store("Action item"))?;
    Ok(success())
}
