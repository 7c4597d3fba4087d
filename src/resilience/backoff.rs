//! Full-jitter exponential backoff (Marc Brooker, "Exponential Backoff and Jitter", 2015): the wait
//! before retry `n` is uniform in `[0, min(cap, base · 2^n)]`, so retries of many callers do not fire in
//! waves. One formula for every queue: the inbox and the outbox drive it from a persisted attempt count,
//! in-call retries through `backon` with the iterator below.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullJitter {
    pub base: Duration,
    pub cap: Duration,
}

impl FullJitter {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The upper bound of the wait before retry `attempt` (0 = the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.cap)
    }

    /// A random wait in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }

    /// The waits for `retries` retries, as `backon` takes them.
    pub fn iter(self, retries: u32) -> FullJitterIter {
        FullJitterIter {
            policy: self,
            attempt: 0,
            retries,
        }
    }
}

/// A `backon` backoff: `retries` full-jitter waits, then none (give up).
#[derive(Debug, Clone)]
pub struct FullJitterIter {
    policy: FullJitter,
    attempt: u32,
    retries: u32,
}

impl Iterator for FullJitterIter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        (self.attempt < self.retries).then(|| {
            let wait = self.policy.delay(self.attempt);
            self.attempt += 1;
            wait
        })
    }
}

impl backon::BackoffBuilder for FullJitter {
    type Backoff = FullJitterIter;

    /// Unbounded here; `RetrySettings` bounds the count with `iter`.
    fn build(self) -> Self::Backoff {
        self.iter(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_the_doubling_ceiling_and_the_cap() {
        let policy = FullJitter::new(Duration::from_millis(500), Duration::from_secs(30));
        for attempt in 0..20 {
            let ceiling =
                Duration::from_millis(500 * 2u64.pow(attempt.min(10))).min(Duration::from_secs(30));
            assert_eq!(policy.ceiling(attempt), ceiling);
            for _ in 0..50 {
                assert!(policy.delay(attempt) <= ceiling);
            }
        }
        // Full jitter: waits spread over the whole range, not just its top half.
        let low = (0..200)
            .filter(|_| policy.delay(6) < Duration::from_secs(15))
            .count();
        assert!(low > 40, "{low} of 200 below half the ceiling");
    }

    #[test]
    fn the_iterator_gives_exactly_the_retries_asked_for() {
        let policy = FullJitter::new(Duration::from_millis(10), Duration::from_millis(100));
        assert_eq!(policy.iter(3).count(), 3);
        assert!(policy.iter(5).all(|d| d <= Duration::from_millis(100)));
    }
}
