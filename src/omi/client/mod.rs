//! A typed client for Omi's Integration API (app key), Developer API (developer key) and
//! notifications, exactly as `omi-contract.md` describes them; nothing else.
//!
//! Every call has a timeout (connect ~2 s; a normal limit; ~90 s for the Import API's
//! create-conversation, which waits for Omi's LLM), passes the upstream's circuit breaker, carries the
//! `X-Request-Id` of the request that caused it (logged with it), and is retried with full-jitter
//! backoff honouring `Retry-After` only when it is safe: reads, and writes Omi deduplicates.

mod developer;
mod error;
mod integration;
mod pages;
pub mod types;

pub use error::OmiError;
pub use pages::{PageFetch, Paginated, items, paginate};

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

use crate::config::OmiSettings;
use crate::resilience::{Breaker, BreakerSnapshot, RetrySettings, retry};

const REQUEST_ID: &str = "x-request-id";

/// Which credential a call presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// `Authorization: Bearer sk_…` of the app; the path carries the app id.
    App,
    /// `Authorization: Bearer omi_dev_…` of one user.
    Developer,
}

/// One HTTP call, described before it is made (and remade, when retried).
struct Call {
    method: Method,
    /// A stable name for logs and metrics (never the raw path, which holds ids).
    route: &'static str,
    auth: Auth,
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// Whether it is safe to send again after an unclear outcome.
    idempotent: bool,
    long: bool,
}

impl Call {
    fn new(method: Method, route: &'static str, auth: Auth, segments: &[&str]) -> Self {
        let idempotent =
            method == Method::GET || method == Method::DELETE || method == Method::PATCH;
        Self {
            method,
            route,
            auth,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            idempotent,
            long: false,
        }
    }

    fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    fn json(mut self, body: &impl serde::Serialize) -> Result<Self, OmiError> {
        self.body = Some(serde_json::to_vec(body).map_err(|e| OmiError::Invalid(e.to_string()))?);
        Ok(self)
    }

    /// An empty body with `Content-Length: 0` (the notification call).
    fn empty_body(mut self) -> Self {
        self.body = Some(Vec::new());
        self
    }

    fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    fn long(mut self) -> Self {
        self.long = true;
        self
    }
}

struct Shared {
    http: reqwest::Client,
    base: Url,
    app_id: Option<String>,
    app_key: Option<SecretString>,
    dev_key: Option<SecretString>,
    request_timeout: Duration,
    long_timeout: Duration,
    breaker: Breaker,
}

/// Cheap to clone; clones share the connection pool and the breaker.
#[derive(Clone)]
pub struct OmiClient {
    shared: Arc<Shared>,
    retry: RetrySettings,
    request_id: Option<Arc<str>>,
}

impl OmiClient {
    pub fn new(settings: &OmiSettings) -> Result<Self, OmiError> {
        crate::tls::install_crypto_provider();
        let base = Url::parse(&settings.base_url)
            .map_err(|e| OmiError::Invalid(format!("omi.base_url: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .user_agent(concat!("angel-memory/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OmiError::Transport {
                message: e.to_string(),
                connect: true,
            })?;
        let upstream = base.host_str().unwrap_or("omi").to_owned();
        Ok(Self {
            shared: Arc::new(Shared {
                http,
                base,
                app_id: settings.app_id.clone(),
                app_key: settings.app_key.clone(),
                dev_key: settings.dev_key.clone(),
                request_timeout: Duration::from_secs(settings.request_timeout_seconds),
                long_timeout: Duration::from_secs(settings.create_conversation_timeout_seconds),
                breaker: Breaker::new(&upstream, settings.breaker.clone()),
            }),
            retry: settings.retry.clone(),
            request_id: None,
        })
    }

    /// The same client, sending `X-Request-Id: <id>` (the request that caused these calls).
    pub fn for_request(&self, request_id: impl Into<Arc<str>>) -> Self {
        Self {
            request_id: Some(request_id.into()),
            ..self.clone()
        }
    }

    /// The same client, making each call once: for callers that keep their own durable retries.
    pub fn without_retries(&self) -> Self {
        let mut client = self.clone();
        client.retry.retries = 0;
        client
    }

    pub fn breaker(&self) -> &Breaker {
        &self.shared.breaker
    }

    pub fn breaker_snapshot(&self) -> BreakerSnapshot {
        self.shared.breaker.snapshot()
    }

    /// Whether the Integration API (app id and key) is configured.
    pub fn has_app(&self) -> bool {
        self.shared.app_id.is_some() && self.shared.app_key.is_some()
    }

    fn app_id(&self) -> Result<&str, OmiError> {
        self.shared
            .app_id
            .as_deref()
            .ok_or(OmiError::NotConfigured("omi.app_id"))
    }

    fn url(&self, segments: &[String], query: &[(&'static str, String)]) -> Result<Url, OmiError> {
        let mut url = self.shared.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| OmiError::Invalid("omi.base_url cannot carry a path".into()))?;
            path.pop_if_empty();
            // Each segment is percent-encoded on its own: an id can never change the path.
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, OmiError> {
        let request_id: Arc<str> = self
            .request_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().into());
        retry(&self.retry, call.idempotent, || {
            self.attempt(&call, &request_id)
        })
        .await
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call,
        request_id: &str,
    ) -> Result<T, OmiError> {
        let key = match call.auth {
            Auth::App => self
                .shared
                .app_key
                .as_ref()
                .ok_or(OmiError::NotConfigured("omi.app_key"))?,
            Auth::Developer => self
                .shared
                .dev_key
                .as_ref()
                .ok_or(OmiError::NotConfigured("omi.dev_key"))?,
        };
        let url = self.url(&call.segments, &call.query)?;
        let permit = self
            .shared
            .breaker
            .acquire()
            .map_err(|retry_in| OmiError::CircuitOpen { retry_in })?;
        let timeout = if call.long {
            self.shared.long_timeout
        } else {
            self.shared.request_timeout
        };
        let mut request = self
            .shared
            .http
            .request(call.method.clone(), url)
            .bearer_auth(key.expose_secret())
            .header(REQUEST_ID, request_id)
            .timeout(timeout);
        if let Some(body) = &call.body {
            request = if body.is_empty() {
                // Omi's notification call wants an empty body announced as such.
                request.header(reqwest::header::CONTENT_LENGTH, "0")
            } else {
                request.header(reqwest::header::CONTENT_TYPE, "application/json")
            };
            request = request.body(body.clone());
        }
        let started = tokio::time::Instant::now();
        let outcome = match request.send().await {
            Ok(response) => read(response, timeout).await,
            Err(error) => Err(transport_error(&error, timeout)),
        };
        let elapsed = started.elapsed();
        let label = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        match &outcome {
            Err(e) if e.is_upstream_failure() => permit.failure(),
            _ => permit.success(),
        }
        metrics::counter!("omi_requests_total", "route" => call.route, "outcome" => label)
            .increment(1);
        metrics::histogram!("omi_request_duration_seconds", "route" => call.route)
            .record(elapsed.as_secs_f64());
        match &outcome {
            Ok(_) => tracing::info!(
                request_id,
                route = call.route,
                elapsed_ms = elapsed.as_millis() as u64,
                "omi call"
            ),
            Err(error) => {
                // Omi's detail can echo what was sent (FastAPI's 422 does): only at debug.
                tracing::info!(request_id, route = call.route, elapsed_ms = elapsed.as_millis() as u64,
                    error = %error.summary(), "omi call failed");
                tracing::debug!(request_id, %error, "omi call failed");
            }
        }
        let body = outcome?;
        serde_json::from_slice(&body).map_err(|e| OmiError::Decode(format!("{}: {e}", call.route)))
    }
}

/// The body of a 2xx answer, or the error its status means.
async fn read(response: reqwest::Response, timeout: Duration) -> Result<Vec<u8>, OmiError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(error::parse_retry_after);
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_error(&e, timeout))?;
    if status.is_success() {
        // `{}`-answering calls and empty bodies read as an empty object.
        return Ok(if body.is_empty() {
            b"{}".to_vec()
        } else {
            body.to_vec()
        });
    }
    let detail = error::detail_of(&body);
    let code = status.as_u16();
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => OmiError::RateLimited { retry_after },
        StatusCode::UNAUTHORIZED => OmiError::Unauthorized { detail },
        StatusCode::FORBIDDEN | StatusCode::PAYMENT_REQUIRED => OmiError::Forbidden {
            status: code,
            detail,
        },
        StatusCode::NOT_FOUND => OmiError::NotFound { detail },
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => OmiError::Validation {
            status: code,
            detail,
        },
        _ => OmiError::Server {
            status: code,
            detail,
        },
    })
}

fn transport_error(error: &reqwest::Error, timeout: Duration) -> OmiError {
    if error.is_timeout() {
        OmiError::Timeout(timeout)
    } else {
        // Only a failed connect proves the request never reached Omi.
        OmiError::Transport {
            message: error.to_string(),
            connect: error.is_connect(),
        }
    }
}
