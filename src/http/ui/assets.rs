//! The stylesheet and script, built into the binary.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::{PageError, PagePath};
use crate::http::error::ApiError;

pub const CSS_PATH: &str = "/app/assets/app.css";
pub const JS_PATH: &str = "/app/assets/app.js";

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// `GET /app/assets/{name}`.
pub async fn serve(PagePath(name): PagePath<String>) -> Result<Response, PageError> {
    let (body, content_type) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return Err(PageError::Api(ApiError::NotFound)),
    };
    // Short: a new release's assets reach browsers within minutes.
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}
