//! A circuit breaker for one upstream: closed → open → half-open → closed.
//!
//! Written by hand (a hundred lines) because none of the crates offers this exact contract: `failsafe`
//! reads the wall clock through its own `Instant` and exposes no state, and `tower-resilience` is young,
//! breaks its API often and wraps `tower` services rather than a client's calls. Here the clock is
//! `tokio::time::Instant` (monotonic, and paused time moves it in tests), half-open admits a bounded number
//! of probes, thresholds are settings, and the state is observable for status pages and metrics.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Opens after this many failures in a row.
    pub consecutive_failures: u32,
    /// …or when this share (percent) of the last `window` calls failed,
    pub failure_rate_percent: u32,
    /// …counted only once that many calls were seen.
    pub window: u32,
    /// How long it stays open before letting probes through.
    pub open_seconds: u64,
    /// Calls let through at once while half-open; that many successes close it again.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate_percent: 50,
            window: 20,
            open_seconds: 30,
            half_open_probes: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value of the `omi_breaker_state` gauge.
    fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// What the breaker looks like now.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BreakerSnapshot {
    pub upstream: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// While open: milliseconds until probes are let through.
    pub retry_in_ms: Option<u64>,
    /// Times it opened since the process started.
    pub opened: u64,
    /// Calls refused without reaching the upstream.
    pub rejected: u64,
}

enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

struct Inner {
    phase: Phase,
    consecutive: u32,
    /// The last `window` outcomes, `true` for a failure.
    recent: VecDeque<bool>,
    /// Bumped on every transition: outcomes of calls let through in an earlier phase are ignored.
    generation: u64,
    opened: u64,
    rejected: u64,
}

#[derive(Clone)]
pub struct Breaker {
    upstream: Arc<str>,
    settings: BreakerSettings,
    inner: Arc<Mutex<Inner>>,
}

/// A call let through. Report how it went; dropping it unreported counts as neither outcome.
pub struct Permit {
    breaker: Breaker,
    generation: u64,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub fn new(upstream: &str, settings: BreakerSettings) -> Self {
        let breaker = Self {
            upstream: upstream.into(),
            settings,
            inner: Arc::new(Mutex::new(Inner {
                phase: Phase::Closed,
                consecutive: 0,
                recent: VecDeque::new(),
                generation: 0,
                opened: 0,
                rejected: 0,
            })),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters inconsistent enough to matter.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_for(&self) -> Duration {
        Duration::from_secs(self.settings.open_seconds)
    }

    /// Lets a call through, or says how long to wait before asking again.
    pub fn acquire(&self) -> Result<Permit, Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Phase::Open { until } = inner.phase {
            if now < until {
                inner.rejected += 1;
                metrics::counter!("omi_breaker_rejected_total", "upstream" => self.upstream.to_string()).increment(1);
                return Err(until - now);
            }
            self.transition(
                &mut inner,
                Phase::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                },
            );
        }
        let probe = match &mut inner.phase {
            Phase::HalfOpen { in_flight, .. } => {
                if *in_flight >= self.settings.half_open_probes.max(1) {
                    inner.rejected += 1;
                    metrics::counter!("omi_breaker_rejected_total", "upstream" => self.upstream.to_string()).increment(1);
                    // The probes decide soon; ask again shortly.
                    return Err(Duration::from_millis(250).min(self.open_for()));
                }
                *in_flight += 1;
                true
            }
            _ => false,
        };
        Ok(Permit {
            breaker: self.clone(),
            generation: inner.generation,
            probe,
            reported: false,
        })
    }

    fn record(&self, generation: u64, probe: bool, failed: Option<bool>) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        match (&mut inner.phase, failed) {
            (Phase::HalfOpen { in_flight, .. }, None) if probe => *in_flight -= 1,
            (Phase::HalfOpen { .. }, Some(true)) => self.trip(&mut inner),
            (
                Phase::HalfOpen {
                    in_flight,
                    successes,
                },
                Some(false),
            ) => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= self.settings.half_open_probes.max(1) {
                    self.transition(&mut inner, Phase::Closed);
                }
            }
            (Phase::Closed, Some(failure)) => {
                inner.consecutive = if failure { inner.consecutive + 1 } else { 0 };
                inner.recent.push_back(failure);
                while inner.recent.len() > self.settings.window.max(1) as usize {
                    inner.recent.pop_front();
                }
                let failures = inner.recent.iter().filter(|f| **f).count() as u64;
                let seen = inner.recent.len() as u64;
                let rate_exceeded = seen >= u64::from(self.settings.window)
                    && failures * 100 >= u64::from(self.settings.failure_rate_percent) * seen;
                if failure
                    && (inner.consecutive >= self.settings.consecutive_failures || rate_exceeded)
                {
                    self.trip(&mut inner);
                }
            }
            _ => {}
        }
    }

    fn trip(&self, inner: &mut Inner) {
        inner.opened += 1;
        let until = Instant::now() + self.open_for();
        self.transition(inner, Phase::Open { until });
    }

    fn transition(&self, inner: &mut Inner, phase: Phase) {
        inner.phase = phase;
        inner.generation += 1;
        if matches!(inner.phase, Phase::Closed) {
            inner.consecutive = 0;
            inner.recent.clear();
        }
        let state = state_of(&inner.phase);
        tracing::warn!(upstream = %self.upstream, state = state.as_str(), "circuit breaker changed state");
        metrics::counter!("omi_breaker_transitions_total", "upstream" => self.upstream.to_string(), "to" => state.as_str()).increment(1);
        self.publish(state);
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("omi_breaker_state", "upstream" => self.upstream.to_string())
            .set(state.gauge());
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let inner = self.lock();
        let retry_in_ms = match inner.phase {
            Phase::Open { until } => Some(
                u64::try_from(until.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(u64::MAX),
            ),
            _ => None,
        };
        BreakerSnapshot {
            upstream: self.upstream.to_string(),
            state: state_of(&inner.phase),
            consecutive_failures: inner.consecutive,
            retry_in_ms,
            opened: inner.opened,
            rejected: inner.rejected,
        }
    }

    /// How long until a call may be let through (zero when it may now).
    pub fn wait_time(&self) -> Duration {
        match self.lock().phase {
            Phase::Open { until } => until.saturating_duration_since(Instant::now()),
            _ => Duration::ZERO,
        }
    }
}

fn state_of(phase: &Phase) -> BreakerState {
    match phase {
        Phase::Closed => BreakerState::Closed,
        Phase::Open { .. } => BreakerState::Open,
        Phase::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

impl Permit {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker
            .record(self.generation, self.probe, Some(false));
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.generation, self.probe, Some(true));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(self.generation, self.probe, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_rate_percent: 50,
            window: 10,
            open_seconds: 30,
            half_open_probes: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_probes_a_bounded_number_and_closes() {
        let b = Breaker::new("test", settings());
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        assert_eq!(b.snapshot().state, BreakerState::Open);
        let wait = b.acquire().err().unwrap();
        assert_eq!(wait, Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.acquire().is_err(), "still open before the wait ends");
        tokio::time::advance(Duration::from_secs(1)).await;
        let p1 = b.acquire().unwrap();
        let p2 = b.acquire().unwrap();
        assert_eq!(b.snapshot().state, BreakerState::HalfOpen);
        assert!(b.acquire().is_err(), "only two probes at once");
        p1.success();
        assert_eq!(b.snapshot().state, BreakerState::HalfOpen);
        p2.success();
        assert_eq!(b.snapshot().state, BreakerState::Closed);
        assert_eq!(b.snapshot().opened, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_for_a_full_wait() {
        let b = Breaker::new("test", settings());
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        b.acquire().unwrap().failure();
        assert_eq!(b.snapshot().state, BreakerState::Open);
        assert_eq!(b.acquire().err(), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_failure_rate_and_ignores_unreported_and_stale_calls() {
        let b = Breaker::new("test", settings());
        for i in 0..10 {
            let p = b.acquire().unwrap();
            if i % 2 == 1 { p.failure() } else { p.success() }
        }
        assert_eq!(b.snapshot().state, BreakerState::Open, "5 of 10 failed");

        let b = Breaker::new("test", settings());
        let stale = b.acquire().unwrap();
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        stale.success();
        assert_eq!(
            b.snapshot().state,
            BreakerState::Open,
            "a call from before the trip changes nothing"
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(b.acquire().unwrap());
        assert!(b.acquire().is_ok(), "an unreported probe frees its slot");
    }
}
