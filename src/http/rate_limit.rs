//! A token bucket per API key (GCRA, from `governor`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Arc;

use super::AppState;
use super::error::ApiError;
use crate::config::RateLimit;
use crate::domain::KeyId;
use crate::store::Principal;

pub type KeyedLimiter = DefaultKeyedRateLimiter<KeyId>;

pub fn limiter(config: &RateLimit) -> Option<Arc<KeyedLimiter>> {
    if !config.enabled {
        return None;
    }
    let per_second = NonZeroU32::new(config.per_second)?;
    let burst = NonZeroU32::new(config.burst)?;
    Some(Arc::new(KeyedLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    )))
}

/// Runs after authentication; answers 429 with `Retry-After` when the key's bucket is empty.
pub async fn limit_per_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let (Some(limiter), Some(principal)) = (&state.limiter, req.extensions().get::<Principal>())
        && let Err(not_until) = limiter.check_key(&principal.key_id)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after_seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(ApiError::RateLimited {
            retry_after_seconds: retry_after_seconds.max(1),
        });
    }
    Ok(next.run(req).await)
}
