//! `Idempotency-Key` on POST, after the IETF draft: the first request runs and its response is kept;
//! a repeat gets the kept response; a repeat with another body is 422; a repeat while the first still
//! runs is 409. Keys are scoped to the authenticated user and kept for `retention.idempotency_hours`.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::domain::Timestamp;
use crate::store::{IdempotencyBegin, Principal, StoredResponse};

const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// A claim this old whose request never finished (the process died) may be taken over.
const IN_FLIGHT_STALE_SECONDS: i64 = 300;

/// Accepts a Structured-Field string (`"abc"`) or a bare token; 1–255 printable ASCII characters.
fn parse_key(value: &HeaderValue) -> Result<String, ApiError> {
    let raw = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))?;
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1–255 printable ASCII characters".into(),
        ));
    }
    Ok(key.to_owned())
}

pub async fn idempotency(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(value) = req.headers().get(&HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = parse_key(value)?;
    let uid = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.uid.clone())
        .ok_or_else(|| ApiError::Internal("idempotency layer ran before authentication".into()))?;

    let (parts, body) = req.into_parts();
    let limit = state.config.limits.max_import_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge("the request body is too large".into()))?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b" ");
    hasher.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    hasher.update(b"\n");
    hasher.update(&bytes);
    let fingerprint = hex::encode(hasher.finalize());

    let now = Timestamp::now();
    let stale_before =
        Timestamp::from_micros(now.as_micros() - IN_FLIGHT_STALE_SECONDS * 1_000_000);
    let expired_before = Timestamp::from_micros(
        now.as_micros() - i64::from(state.config.retention.idempotency_hours) * 3_600_000_000,
    );
    match state
        .store
        .idempotency_begin(&uid, &key, &fingerprint, stale_before, expired_before)
        .await?
    {
        IdempotencyBegin::Started => {}
        IdempotencyBegin::Replay(stored) => return Ok(replay(stored)),
        IdempotencyBegin::InFlight => return Err(ApiError::IdempotencyKeyInFlight),
        IdempotencyBegin::Mismatch => return Err(ApiError::IdempotencyKeyReused),
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    // Nothing was done for a 5xx (each change is one transaction) or a 429: the client may retry.
    if status.is_server_error() || status.as_u16() == 429 {
        state.store.idempotency_abandon(&uid, &key).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        state.store.idempotency_abandon(&uid, &key).await?;
        return Err(ApiError::Internal(
            "could not read the response to keep it".into(),
        ));
    };
    let header_text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        content_type: header_text(header::CONTENT_TYPE),
        location: header_text(header::LOCATION),
        body: body.to_vec(),
    };
    state.store.idempotency_complete(&uid, &key, stored).await?;
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn replay(stored: StoredResponse) -> Response {
    let status =
        axum::http::StatusCode::from_u16(stored.status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
