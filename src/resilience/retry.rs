//! In-call retries with `backon`: only errors that say a retry may succeed, only for calls that are
//! idempotent (or deduplicated by the upstream), waiting full-jitter backoff or the upstream's
//! `Retry-After`, whichever it asks for. A `Retry-After` longer than the caller may wait ends the
//! retries: the error goes back to the caller (the outbox schedules it).

use backon::Retryable as _;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

use super::FullJitter;

/// What a retry loop needs to know about an error.
pub trait Retryable {
    /// A later attempt may succeed (transport errors, timeouts, 408, 425, 429, 5xx).
    fn is_retryable(&self) -> bool;
    /// How long the upstream asked us to wait.
    fn retry_after(&self) -> Option<Duration>;
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retries after the first attempt.
    pub retries: u32,
    pub base_ms: u64,
    pub cap_ms: u64,
    /// A longer `Retry-After` is not waited for inside a call.
    pub max_retry_after_seconds: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            retries: 3,
            base_ms: 500,
            cap_ms: 30_000,
            max_retry_after_seconds: 30,
        }
    }
}

impl RetrySettings {
    pub fn backoff(&self) -> FullJitter {
        FullJitter::new(
            Duration::from_millis(self.base_ms),
            Duration::from_millis(self.cap_ms),
        )
    }
}

/// `retries` full-jitter waits, as a `backon` builder.
struct Bounded {
    policy: FullJitter,
    retries: u32,
}

impl backon::BackoffBuilder for Bounded {
    type Backoff = super::backoff::FullJitterIter;
    fn build(self) -> Self::Backoff {
        self.policy.iter(self.retries)
    }
}

/// Runs `op`, retrying as described above. `idempotent = false` runs it exactly once.
pub async fn retry<T, E, F, Fut>(settings: &RetrySettings, idempotent: bool, op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Retryable + std::fmt::Display,
{
    let builder = Bounded {
        policy: settings.backoff(),
        retries: if idempotent { settings.retries } else { 0 },
    };
    let longest = Duration::from_secs(settings.max_retry_after_seconds);
    op.retry(builder)
        .sleep(tokio::time::sleep)
        .when(|e: &E| e.is_retryable())
        .adjust(move |e: &E, computed: Option<Duration>| {
            let computed = computed?;
            match e.retry_after() {
                Some(asked) if asked > longest => None,
                // The upstream's wish wins over our own guess.
                Some(asked) => Some(asked),
                None => Some(computed),
            }
        })
        .notify(|e: &E, wait: Duration| {
            tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Failure {
        retryable: bool,
        after: Option<Duration>,
    }
    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("failure")
        }
    }
    impl Retryable for Failure {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    async fn attempts(idempotent: bool, failure: impl Fn() -> Failure) -> (u32, Duration) {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let _ = retry(&RetrySettings::default(), idempotent, || {
            calls.fetch_add(1, Ordering::SeqCst);
            let f = failure();
            async move { Err::<(), _>(f) }
        })
        .await;
        (calls.load(Ordering::SeqCst), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_errors_of_idempotent_calls() {
        let retryable = || Failure {
            retryable: true,
            after: None,
        };
        assert_eq!(attempts(true, retryable).await.0, 4);
        assert_eq!(attempts(false, retryable).await.0, 1);
        assert_eq!(
            attempts(true, || Failure {
                retryable: false,
                after: None
            })
            .await
            .0,
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_for_and_a_long_one_ends_the_retries() {
        let (calls, waited) = attempts(true, || Failure {
            retryable: true,
            after: Some(Duration::from_secs(7)),
        })
        .await;
        assert_eq!(calls, 4);
        assert!(waited >= Duration::from_secs(21), "{waited:?}");
        let (calls, _) = attempts(true, || Failure {
            retryable: true,
            after: Some(Duration::from_secs(120)),
        })
        .await;
        assert_eq!(calls, 1);
    }
}
