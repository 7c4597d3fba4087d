//! Errors as Omi's Developer API renders them (FastAPI): `{"detail": "…"}` with Omi's status codes,
//! or, for a request that fails field validation, 422 with `detail` a list of
//! `{type, loc, msg}`. Every other error of the service is mapped here once, from `ApiError`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::domain::ValidationError;
use crate::http::error::ApiError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct OmiError {
    status: StatusCode,
    detail: Value,
    retry_after_seconds: Option<u64>,
}

impl OmiError {
    /// Omi's `HTTPException(status_code, detail)`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Value::String(detail.into()),
            retry_after_seconds: None,
        }
    }

    /// 422 with a plain message, as Omi's handlers raise after validation.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    /// 422 in FastAPI's validation shape: `detail` is a list naming where the input is wrong.
    pub fn invalid(location: &str, field: &str, message: impl Into<String>) -> Self {
        let loc: Vec<&str> = if field.is_empty() {
            vec![location]
        } else {
            vec![location, field]
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: json!([{"type": "value_error", "loc": loc, "msg": message.into()}]),
            retry_after_seconds: None,
        }
    }

    /// A store failure where a missing row means `what` does not exist.
    pub fn store(what: &'static str) -> impl Fn(StoreError) -> Self {
        move |error| match error {
            StoreError::NotFound | StoreError::Deleted => Self::not_found(what),
            other => ApiError::from(other).into(),
        }
    }
}

/// A domain type refused a body field: FastAPI's 422 list, located in the body.
impl From<ValidationError> for OmiError {
    fn from(error: ValidationError) -> Self {
        Self::invalid("body", error.field, error.reason)
    }
}

impl From<StoreError> for OmiError {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<ApiError> for OmiError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Validation(e) => e.into(),
            ApiError::RateLimited {
                retry_after_seconds,
            } => Self {
                retry_after_seconds: Some(retry_after_seconds),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Rate limit exceeded. Try again in {retry_after_seconds}s."),
                )
            },
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
            }
            ApiError::NotFound => Self::new(StatusCode::NOT_FOUND, "Not found"),
            other => Self::new(other.status(), other.to_string()),
        }
    }
}

impl From<JsonRejection> for OmiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            ),
            _ => Self::invalid("body", "", rejection.body_text()),
        }
    }
}

impl From<QueryRejection> for OmiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid("query", "", rejection.body_text())
    }
}

impl IntoResponse for OmiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"detail": self.detail}))).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
