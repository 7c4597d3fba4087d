//! `/v1/dev/user/*`: Omi's Developer API, spoken over the same store as the native API, so a client
//! written for Omi works unchanged. Omi's limits, status codes, field names and `{"detail": …}` errors;
//! keys spelled `omi_dev_…`. Where Omi would run a language model (classifying a memory, structuring a
//! conversation) nothing is invented: see each module.

mod action_items;
mod conversations;
mod error;
mod memories;

pub use error::OmiError;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use chrono::NaiveDate;

use super::AppState;
use super::auth;
use crate::domain::{ApiKeySecret, Timestamp};
use crate::store::OffsetPage;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(memories::router())
        .merge(action_items::router())
        .merge(conversations::router())
        // Layers run outside-in: key → rate limit → handler.
        .layer(from_fn_with_state(state.clone(), rate_limit))
        .layer(from_fn_with_state(state.clone(), require_omi_dev_key))
}

/// Omi's verifier refuses any key that does not start with `omi_dev_`; so does this one. The user is
/// the key's.
async fn require_omi_dev_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, OmiError> {
    let token = auth::bearer(req.headers()).ok_or_else(|| {
        OmiError::new(
            StatusCode::UNAUTHORIZED,
            "Missing or invalid Authorization header. Must be 'Bearer API_KEY'",
        )
    })?;
    let invalid = || OmiError::new(StatusCode::UNAUTHORIZED, "Invalid API key");
    if !token.starts_with(ApiKeySecret::OMI_DEV_PREFIX) {
        return Err(invalid());
    }
    let principal = auth::principal(&state, token).await?.ok_or_else(invalid)?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

async fn rate_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, OmiError> {
    super::rate_limit::limit_per_key(State(state), req, next)
        .await
        .map_err(OmiError::from)
}

/// JSON body; malformed or mistyped input is FastAPI's 422.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(OmiError))]
pub struct OmiJson<T>(pub T);

/// Query string; a value of the wrong type is FastAPI's 422. Unknown parameters are ignored, as
/// FastAPI does.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(OmiError))]
pub struct OmiQuery<T>(pub T);

/// Omi's `limit`/`offset`, with the newest code's clamps: limit 1–1000, offset ≥ 0.
pub fn offset_page(limit: Option<i64>, offset: Option<i64>, default_limit: u32) -> OffsetPage {
    OffsetPage {
        limit: limit.map_or(default_limit, |l| l.clamp(1, 1000) as u32),
        offset: offset.map_or(0, |o| o.clamp(0, i64::from(u32::MAX)) as u32),
    }
}

/// A date-time as FastAPI (pydantic) reads one: RFC 3339, naive (taken as UTC), or a bare date
/// (midnight UTC).
pub fn date_time(location: &str, field: &'static str, raw: &str) -> Result<Timestamp, OmiError> {
    if let Ok(t) = Timestamp::parse(field, raw) {
        return Ok(t);
    }
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Timestamp::from_micros(dt.and_utc().timestamp_micros()))
        .ok_or_else(|| {
            OmiError::invalid(
                location,
                field,
                format!("Input should be a valid datetime, got {raw:?}"),
            )
        })
}

/// The response to a successful delete.
pub fn success() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"success": true}))
}
