//! The HTTP service: router, middleware, and the `Application` that binds and serves it.

mod admin;
mod auth;
mod chat_tools;
mod conversations;
mod data;
mod error;
mod extract;
mod health;
mod idempotency;
mod memories;
mod omi;
mod omi_dev;
mod openapi;
mod pagination;
mod rate_limit;
mod recordings;
mod request_id;
mod search;
pub mod ui;
mod webhooks;

pub use admin::new_key;
pub use admin::new_key_as;
pub use chat_tools::MANIFEST_PATH as CHAT_TOOLS_MANIFEST_PATH;
pub use error::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::domain::Timestamp;
use crate::queue::inbox::InboxWorker;
use crate::queue::outbox::OutboxWorker;
use crate::recordings::Recorder;
use crate::search::Searcher;
use crate::store::{Actor, Context, Store, StoreError};
use auth::Authenticator;
use rate_limit::KeyedLimiter;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    auth: Arc<Authenticator>,
    limiter: Option<Arc<KeyedLimiter>>,
    metrics: PrometheusHandle,
    inbox: InboxWorker,
    recorder: Arc<Recorder>,
    pub search: Arc<Searcher>,
    /// Writes to Omi, and the client that makes them.
    outbox: OutboxWorker,
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bound, ready-to-serve instance. Binding happens in `build`, so a caller (or a test using port 0)
/// knows the address before serving starts.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let inbox = InboxWorker::new(
            Arc::clone(&store),
            config.omi.app_id.clone(),
            config.webhooks.max_attempts,
        );
        let recorder = Arc::new(Recorder::new(
            &config.data_dir,
            Arc::clone(&store),
            &config.webhooks,
        ));
        let search = Arc::new(Searcher::from_settings(Arc::clone(&store), &config.embedding).await);
        let outbox = OutboxWorker::new(
            Arc::clone(&store),
            omi_client(&config),
            config.omi.outbox.clone(),
        );
        let state = AppState {
            search,
            inbox,
            recorder,
            auth: Arc::new(Authenticator::new(Arc::clone(&store))),
            limiter: rate_limit::limiter(&config.rate_limit),
            metrics: health::metrics_handle(),
            config: Arc::new(config),
            store,
            outbox,
        };
        Ok(Self {
            listener,
            router: router(state.clone()),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let maintenance = tokio::spawn(maintenance(self.state.clone()));
        let worker = tokio::spawn(self.state.inbox.clone().run());
        let embedder = self
            .state
            .search
            .worker()
            .map(|w| tokio::spawn(w.clone().run()));
        let outbox = self
            .state
            .config
            .omi
            .outbox
            .enabled
            .then(|| tokio::spawn(self.state.outbox.clone().run()));
        let result = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        maintenance.abort();
        worker.abort();
        if let Some(outbox) = outbox {
            outbox.abort();
        }
        if let Some(embedder) = embedder {
            embedder.abort();
        }
        result
    }
}

pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let user_api = OpenApiRouter::new()
        .merge(search::router())
        .merge(memories::router())
        .merge(conversations::router())
        .merge(recordings::router())
        .merge(data::router())
        .merge(omi::router())
        .merge(data::import_router().layer(DefaultBodyLimit::max(limits.max_import_bytes)))
        // Layers run outside-in: key → rate limit → idempotency → handler.
        .layer(from_fn_with_state(state.clone(), idempotency::idempotency))
        .layer(from_fn_with_state(state.clone(), rate_limit::limit_per_key))
        .layer(from_fn_with_state(state.clone(), auth::require_key));
    let admin_api = admin::router()
        .merge(omi::admin_router())
        .merge(ui::admin_router())
        .layer(from_fn_with_state(state.clone(), auth::require_admin));
    // Without a way to tell Omi's requests from anyone's, the webhooks are not exposed at all.
    let webhook_api = if state.config.webhook_auth_configured()
        || state.config.webhooks.insecure_accept_unauthenticated
    {
        webhooks::router(&state.config.webhooks)
    } else {
        OpenApiRouter::new()
    };
    let (api, openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(user_api)
        .merge(admin_api)
        .merge(webhook_api)
        .split_for_parts();
    let openapi_json = openapi.to_pretty_json().unwrap_or_default();

    let timeout = Duration::from_secs(limits.request_timeout_seconds);
    Router::new()
        .merge(api)
        .merge(ui::router())
        .merge(omi_dev::router(&state))
        .merge(chat_tools::router())
        .merge(mcp_router(&state))
        .route("/metrics", get(health::metrics).layer(from_fn_with_state(state.clone(), auth::require_admin)))
        .route("/openapi.json", get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json) }))
        .route_layer(from_fn(health::record))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(request_id::sanitize))
                .layer(SetRequestIdLayer::new(request_id::HEADER, MakeRequestUuid))
                .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<_>| {
                            let id = req.headers().get(&request_id::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                            // The path only: query strings can carry what a person searched for.
                            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(),
                                request_id = %id, key_id = tracing::field::Empty)
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO))
                        .on_failure(DefaultOnFailure::new().level(Level::WARN)),
                )
                .layer(PropagateRequestIdLayer::new(request_id::HEADER))
                .layer(CatchPanicLayer::custom(|_| -> Response {
                    ApiError::Internal("a handler panicked".into()).into_response()
                }))
                .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout)),
        )
        .with_state(state)
}

/// `/mcp`: the Model Context Protocol endpoint, behind the same user keys and rate limit as `/v1`.
fn mcp_router(state: &AppState) -> Router<AppState> {
    let service = crate::mcp::service(Arc::clone(&state.store), Arc::clone(&state.search));
    Router::new()
        .route_service(crate::mcp::PATH, service)
        .layer(from_fn_with_state(state.clone(), rate_limit::limit_per_key))
        .layer(from_fn_with_state(state.clone(), auth::require_key))
}

/// Scheduled work: purge memories past their retention, expired idempotency keys, idle rate buckets.
async fn maintenance(state: AppState) {
    let minutes = state.config.retention.purge_interval_minutes;
    if minutes == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(minutes * 60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let retention = &state.config.retention;
        let cutoff = Timestamp::now().minus_days(retention.purge_deleted_after_days);
        match state
            .store
            .purge_deleted(None, cutoff, &Context::new(Actor::System, None))
            .await
        {
            Ok(report) if report.purged > 0 => {
                tracing::info!(purged = report.purged, "purged deleted memories")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "scheduled purge failed"),
        }
        let audio_cutoff = Timestamp::now().minus_days(state.config.webhooks.audio_retention_days);
        match state.recorder.expire(audio_cutoff).await {
            Ok(count) if count > 0 => tracing::info!(count, "expired recordings"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "recording cleanup failed"),
        }
        let inbox_cutoff = Timestamp::now().minus_days(state.config.webhooks.inbox_retention_days);
        if let Err(error) = state.store.forget_done_events(inbox_cutoff).await {
            tracing::warn!(%error, "inbox cleanup failed");
        }
        let expired = Timestamp::from_micros(
            Timestamp::now().as_micros() - i64::from(retention.idempotency_hours) * 3_600_000_000,
        );
        if let Err(error) = state.store.idempotency_purge(expired).await {
            tracing::warn!(%error, "idempotency key cleanup failed");
        }
        let delivered_cutoff = Timestamp::now().minus_days(state.config.omi.outbox.retention_days);
        if let Err(error) = state.store.forget_delivered_outbox(delivered_cutoff).await {
            tracing::warn!(%error, "Omi outbox cleanup failed");
        }
        if let Some(limiter) = &state.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The Omi client, when the Integration API is configured (app id and key); without it writes to Omi
/// wait in the outbox.
fn omi_client(config: &Config) -> Option<crate::omi::client::OmiClient> {
    let omi = &config.omi;
    if omi.app_id.is_none() || omi.app_key.is_none() {
        return None;
    }
    match crate::omi::client::OmiClient::new(omi) {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::warn!(%error, "the Omi client cannot start; writes to Omi wait in the outbox");
            None
        }
    }
}
