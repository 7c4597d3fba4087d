//! Authentication: user API keys for `/v1/*`, the admin token for `/v1/admin/*` and `/metrics`.
//! The user of every request comes from its key, never from a path, query or body field.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::domain::{ApiKeySecret, Timestamp, Uid};
use crate::store::{Actor, Context, Principal, Store, StoreError};

/// How long a successful key lookup is trusted before the database is asked again. Revocations made
/// through this server take effect at once (the cache is cleared); ones made by another process
/// (the CLI, another instance) within this bound.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_used_at` is written at most this often per key, so reads do not turn into writes.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 10_000;

struct Cached {
    principal: Principal,
    checked_at: Instant,
    touched_at: Option<Instant>,
}

/// Key lookups with a short-lived cache. Hand-written because it is a few lines over a `HashMap`, and
/// it also throttles the `last_used_at` writes, which a generic cache would not do.
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn authenticate(
        &self,
        secret: &ApiKeySecret,
    ) -> Result<Option<Principal>, StoreError> {
        let hash = secret.hash();
        let now = Instant::now();
        let cached = self.cache.lock().ok().and_then(|mut cache| {
            let entry = cache
                .get_mut(&hash)
                .filter(|e| now.duration_since(e.checked_at) < CACHE_TTL)?;
            let touch = entry
                .touched_at
                .is_none_or(|t| now.duration_since(t) >= TOUCH_EVERY);
            if touch {
                entry.touched_at = Some(now);
            }
            Some((entry.principal.clone(), touch))
        });
        let (principal, touch) = match cached {
            Some(hit) => hit,
            None => {
                let Some(principal) = self.store.authenticate(&hash).await? else {
                    return Ok(None);
                };
                let previous_touch = self.remember(hash, principal.clone(), now);
                (
                    principal,
                    previous_touch.is_none_or(|t| now.duration_since(t) >= TOUCH_EVERY),
                )
            }
        };
        if touch {
            let (store, p) = (Arc::clone(&self.store), principal.clone());
            tokio::spawn(async move {
                if let Err(error) = store.touch_key(&p.uid, p.key_id, Timestamp::now()).await {
                    tracing::warn!(%error, "could not record a key's last use");
                }
            });
        }
        Ok(Some(principal))
    }

    /// Caches a lookup; returns when the key's use was last recorded.
    fn remember(&self, hash: String, principal: Principal, now: Instant) -> Option<Instant> {
        let mut cache = self.cache.lock().ok()?;
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, e| now.duration_since(e.checked_at) < CACHE_TTL);
        }
        let previous = cache.get(&hash).and_then(|e| e.touched_at);
        cache.insert(
            hash,
            Cached {
                principal,
                checked_at: now,
                touched_at: Some(previous.unwrap_or(now)),
            },
        );
        previous
    }

    /// Drops cached keys of a user whose keys changed (revocation, deletion).
    pub fn forget_user(&self, uid: &Uid) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, e| &e.principal.uid != uid);
        }
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware for user routes: resolves the key to its user and stores the `Principal`.
pub async fn require_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(req.headers()).ok_or(ApiError::Unauthorized(
        "send an API key as 'Authorization: Bearer <key>'",
    ))?;
    let principal = principal(&state, token)
        .await?
        .ok_or(ApiError::Unauthorized("the API key is not valid"))?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// The user a presented key belongs to (`None`: no live key), recorded on the request's span. Every
/// surface that takes user keys (native API, Omi's Developer API, MCP) resolves them here.
pub(super) async fn principal(
    state: &AppState,
    token: &str,
) -> Result<Option<Principal>, StoreError> {
    let Some(secret) = ApiKeySecret::from_presented(token) else {
        return Ok(None);
    };
    let principal = state.auth.authenticate(&secret).await?;
    if let Some(p) = &principal {
        tracing::Span::current().record("key_id", tracing::field::display(p.key_id));
    }
    Ok(principal)
}

/// Middleware for operator routes: the configured admin token, compared in constant time.
pub async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError::Forbidden(
            "the admin API is off: set ANGEL_MEMORY_ADMIN_TOKEN to enable it",
        ));
    };
    let presented = bearer(req.headers()).ok_or(ApiError::Unauthorized(
        "send the admin token as 'Authorization: Bearer <token>'",
    ))?;
    if !bool::from(
        presented
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        return Err(ApiError::Unauthorized("the admin token is not valid"));
    }
    Ok(next.run(req).await)
}

/// The authenticated caller of a user route, with the audit context of its request.
pub struct Caller {
    pub principal: Principal,
    pub ctx: Context,
}

impl Caller {
    pub fn uid(&self) -> &Uid {
        &self.principal.uid
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            parts
                .extensions
                .get::<Principal>()
                .cloned()
                .ok_or(ApiError::Unauthorized(
                    "send an API key as 'Authorization: Bearer <key>'",
                ))?;
        let ctx = Context::new(Actor::Key(principal.key_id), request_id(&parts.headers));
        Ok(Self { principal, ctx })
    }
}

pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(super::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
