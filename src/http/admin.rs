//! `/v1/admin/*`: users, their keys, and purge. Behind the admin token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::request_id;
use super::data::PageParams;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::pagination::{ListResponse, page_request};
use crate::domain::{ApiKeySecret, KeyFormat, KeyId, KeyName, Timestamp, Uid};
use crate::store::{
    Actor, ApiKeyInfo, Context, InboxEntry, InboxState, NewApiKey, PurgeReport, User,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(delete_user))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(purge))
        .routes(routes!(list_inbox))
        .routes(routes!(retry_inbox_event))
}

fn admin_context(headers: &axum::http::HeaderMap) -> Context {
    Context::new(Actor::Admin, request_id(headers))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The Omi uid: 1–128 bytes, no whitespace or control characters.
    uid: String,
}

#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 400, body = ApiError), (status = 409, body = ApiError)),
    security(("admin_token" = [])))]
async fn create_user(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let uid = Uid::parse(body.uid)?;
    Ok((
        StatusCode::CREATED,
        Json(state.store.create_user(&uid).await?),
    ))
}

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", params(PageParams),
    responses((status = 200, body = ListResponse<User>)), security(("admin_token" = [])))]
async fn list_users(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<User>>, ApiError> {
    let (limit, cursor) = params.into_parts();
    Ok(Json(
        state
            .store
            .list_users(page_request(limit, cursor.as_deref())?)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/v1/admin/users/{uid}", tag = "admin", params(("uid" = String, Path)),
    responses((status = 204, description = "The user and all their data are erased"), (status = 404, body = ApiError)),
    security(("admin_token" = [])))]
async fn delete_user(
    State(state): State<AppState>,
    ApiPath(uid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let uid = Uid::parse(uid)?;
    let files = state.store.recording_files(&uid).await?;
    state.store.delete_user(&uid).await?;
    state.recorder.remove_files(files).await;
    state.auth.forget_user(&uid);
    tracing::info!(uid = %uid, "user erased");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label to recognise the key by, 1–100 characters.
    name: String,
    /// native (`am_…`, default) or omi_dev (`omi_dev_…`, for clients of Omi's Developer API).
    #[schema(value_type = Option<String>)]
    format: Option<KeyFormat>,
}

/// The new key. `key` is shown only in this response; store it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    key: String,
    #[serde(flatten)]
    info: ApiKeyInfo,
}

#[utoipa::path(post, path = "/v1/admin/users/{uid}/keys", tag = "admin", params(("uid" = String, Path)),
    request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 404, body = ApiError)), security(("admin_token" = [])))]
async fn create_key(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiPath(uid): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let uid = Uid::parse(uid)?;
    let (secret, new) = new_key_as(KeyName::parse(&body.name)?, body.format.unwrap_or_default());
    let info = state
        .store
        .create_key(&uid, new, &admin_context(&headers))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: secret.expose().to_owned(),
            info,
        }),
    ))
}

/// Mints a key: the secret to show once, and what the store keeps of it.
pub fn new_key(name: KeyName) -> (ApiKeySecret, NewApiKey) {
    new_key_as(name, KeyFormat::Native)
}

/// Mints a key spelled in the given format.
pub fn new_key_as(name: KeyName, format: KeyFormat) -> (ApiKeySecret, NewApiKey) {
    let secret = ApiKeySecret::generate_as(format);
    let new = NewApiKey {
        id: KeyId::new(),
        name,
        prefix: secret.visible_prefix(),
        hash: secret.hash(),
    };
    (secret, new)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeysResponse {
    items: Vec<ApiKeyInfo>,
}

#[utoipa::path(get, path = "/v1/admin/users/{uid}/keys", tag = "admin", params(("uid" = String, Path)),
    responses((status = 200, body = KeysResponse), (status = 404, body = ApiError)), security(("admin_token" = [])))]
async fn list_keys(
    State(state): State<AppState>,
    ApiPath(uid): ApiPath<String>,
) -> Result<Json<KeysResponse>, ApiError> {
    let uid = Uid::parse(uid)?;
    Ok(Json(KeysResponse {
        items: state.store.list_keys(&uid).await?,
    }))
}

#[utoipa::path(delete, path = "/v1/admin/users/{uid}/keys/{key_id}", tag = "admin",
    params(("uid" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, description = "Revoked (revoking again changes nothing)", body = ApiKeyInfo),
              (status = 404, body = ApiError)), security(("admin_token" = [])))]
async fn revoke_key(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiPath((uid, key_id)): ApiPath<(String, String)>,
) -> Result<Json<ApiKeyInfo>, ApiError> {
    let uid = Uid::parse(uid)?;
    let key_id = KeyId::parse(&key_id)?;
    let info = state
        .store
        .revoke_key(&uid, key_id, &admin_context(&headers))
        .await?;
    state.auth.forget_user(&uid);
    Ok(Json(info))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Purge memories deleted more than this many days ago; default `retention.purge_deleted_after_days`.
    older_than_days: Option<u32>,
    /// Only this user's memories; default every user.
    uid: Option<String>,
}

#[utoipa::path(post, path = "/v1/admin/purge", tag = "admin", request_body = PurgeRequest,
    responses((status = 200, body = PurgeReport)), security(("admin_token" = [])))]
async fn purge(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<PurgeRequest>,
) -> Result<Json<PurgeReport>, ApiError> {
    let uid = body.uid.map(Uid::parse).transpose()?;
    let days = body
        .older_than_days
        .unwrap_or(state.config.retention.purge_deleted_after_days);
    let cutoff = Timestamp::now().minus_days(days);
    Ok(Json(
        state
            .store
            .purge_deleted(uid.as_ref(), cutoff, &admin_context(&headers))
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// pending, done or dead (default dead: what needs an operator).
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/inbox", tag = "admin", params(InboxParams),
    responses((status = 200, description = "Oldest first", body = ListResponse<InboxEntry>)), security(("admin_token" = [])))]
async fn list_inbox(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<InboxParams>,
) -> Result<Json<ListResponse<InboxEntry>>, ApiError> {
    let wanted = params.state.as_deref().unwrap_or("dead");
    let inbox_state = InboxState::parse(wanted).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "state {wanted:?} is not one of pending, done, dead"
        ))
    })?;
    let page = page_request(params.limit, params.cursor.as_deref())?;
    Ok(Json(state.store.inbox(inbox_state, page).await?.into()))
}

#[utoipa::path(post, path = "/v1/admin/inbox/{id}/retry", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "Queued again", body = InboxEntry), (status = 404, body = ApiError),
              (status = 409, description = "The event is not dead", body = ApiError)), security(("admin_token" = [])))]
async fn retry_inbox_event(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InboxEntry>, ApiError> {
    let entry = state.store.retry_event(&id).await?;
    state.inbox.wake();
    Ok(Json(entry))
}
