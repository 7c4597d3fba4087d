//! The app home: server-rendered pages under `/app` where a person reads, searches and tends their
//! memories, on a phone (inside Omi) or a computer.
//!
//! - Pages are HTML written with maud: templates are Rust expressions checked by the compiler, and
//!   every value put into a page is escaped, so no memory, transcript or query can become markup.
//!   A little vanilla JavaScript (confirm dialogs, infinite scroll) and hand-written CSS are built into
//!   the binary; every page works without them.
//! - Every page reads and writes through the same `Store` and `Searcher` functions as the REST API,
//!   scoped to the session's user.
//! - Sign-in needs proof (a signed link or an API key, see `sign_in`); sessions are server-side
//!   records behind an HttpOnly cookie (`session`); every POST carries the session's CSRF token
//!   (`csrf`).

mod activity;
mod assets;
mod charts;
mod conversations;
mod csrf;
mod error;
mod layout;
pub mod link;
mod memories;
mod search;
mod session;
mod sign_in;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

/// The pages and their form targets, all under `/app`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(sign_in::home))
        .route("/app/", get(sign_in::home))
        .route("/app/sign-in", get(sign_in::form).post(sign_in::with_key))
        .route("/app/sign-out", post(sign_in::sign_out))
        .route("/app/memories/{id}", get(memories::show))
        .route("/app/memories/{id}/edit", post(memories::edit))
        .route("/app/memories/{id}/delete", post(memories::delete))
        .route("/app/memories/{id}/restore", post(memories::restore))
        .route("/app/search", get(search::page))
        .route("/app/conversations", get(conversations::list))
        .route("/app/conversations/{id}", get(conversations::show))
        .route("/app/tasks", get(conversations::tasks))
        .route("/app/tasks/{id}", post(conversations::update_task))
        .route("/app/activity", get(activity::audit))
        .route("/app/charts", get(activity::charts))
        .route("/app/assets/{name}", get(assets::serve))
        .route("/app/{*rest}", get(error::not_found).post(error::not_found))
        .layer(
            // Outermost first: headers on every page, error pages rendered, panics caught.
            ServiceBuilder::new()
                .layer(from_fn(security_headers))
                .layer(from_fn(error::render_errors))
                .layer(CatchPanicLayer::custom(|_| -> Response {
                    error::PageError::Panicked.into_response()
                })),
        )
}

const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    // Sign-in links carry a signature in their query: never pass a page's address on.
    (header::REFERRER_POLICY, "no-referrer"),
    // Pages show private data: no shared or back-button cache keeps them (assets set their own).
    (header::CACHE_CONTROL, "no-store"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// Adds the pages' security headers where a handler did not set its own.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// `POST /v1/admin/users/{uid}/ui-link`: sign-in links minted for operators and setup notifications.
pub fn admin_router() -> OpenApiRouter<AppState> {
    link::admin_router()
}
