//! Failures as pages: the status and reason come from the API's one mapping (`ApiError`), and the
//! page names the request id so a report can be matched to the logs. Never a stack trace, never a
//! blank page.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use thiserror::Error;

use super::layout;
use crate::domain::ValidationError;
use crate::http::auth::request_id;
use crate::http::error::ApiError;
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum PageError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No live session: the browser is sent to the sign-in page.
    #[error("sign in to see this page")]
    SignInRequired,
    /// A form came without this session's CSRF token (or with another one).
    #[error(
        "this form did not come from your current session (it may be older than your last sign-in); \
         reload the page and try again"
    )]
    Csrf,
    #[error("something went wrong on our side while showing this page")]
    Panicked,
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        Self::Api(error.into())
    }
}

impl From<ValidationError> for PageError {
    fn from(error: ValidationError) -> Self {
        Self::Api(error.into())
    }
}

impl From<QueryRejection> for PageError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Api(rejection.into())
    }
}

impl From<PathRejection> for PageError {
    fn from(rejection: PathRejection) -> Self {
        Self::Api(rejection.into())
    }
}

/// Query string for a page; a malformed one is a 400 page.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(PageError))]
pub struct PageQuery<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(PageError))]
pub struct PagePath<T>(pub T);

impl PageError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::Api(ApiError::BadRequest(reason.into()))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Api(error) => error.status(),
            Self::SignInRequired => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What `render_errors` turns into a page; set by `PageError` so that the page, rendered outside the
/// handler, can name the request.
#[derive(Debug, Clone)]
struct ErrorPage {
    reason: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match &self {
            Self::SignInRequired => return Redirect::to("/app/sign-in").into_response(),
            Self::Api(ApiError::Internal(cause)) => tracing::error!(%cause, "page failed"),
            Self::Api(ApiError::Unavailable(cause)) => {
                tracing::warn!(%cause, "database unavailable")
            }
            Self::Panicked => tracing::error!("a page handler panicked"),
            _ => {}
        }
        let reason = match &self {
            Self::Api(ApiError::NotFound) => {
                "there is nothing here: the page does not exist, or it is not yours".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = self.status().into_response();
        response.extensions_mut().insert(ErrorPage { reason });
        response
    }
}

/// Renders error responses of the pages as HTML with the request id.
pub async fn render_errors(req: Request, next: Next) -> Response {
    let request = request_id(req.headers());
    let response = next.run(req).await;
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let status = response.status();
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (title) }
        p.error-reason role="alert" { (page.reason.trim_end_matches('.')) "." }
        @if let Some(id) = &request {
            p.request-id { "Request id: " code { (id) } " — mention it if you report this problem." }
        }
        p { a href="/app" { "Back to your memories" } }
    };
    let mut rendered = (status, Html(layout::bare(title, body).into_string())).into_response();
    for (name, value) in response.headers() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

/// Any other address under `/app`.
pub async fn not_found() -> PageError {
    PageError::Api(ApiError::NotFound)
}
