//! Calling a remote service that fails: backoff with full jitter, retries that honour `Retry-After`,
//! and a circuit breaker per upstream. A leaf module: it knows nothing of Omi, HTTP or the store.

pub mod backoff;
pub mod breaker;
pub mod retry;

pub use backoff::FullJitter;
pub use breaker::{Breaker, BreakerSettings, BreakerSnapshot, BreakerState, Permit};
pub use retry::{RetrySettings, Retryable, retry};
