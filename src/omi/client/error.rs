//! One error for every Omi call, shaped by what a caller does next: retry (transport, timeout,
//! rate limited, server), wait for the breaker (circuit open), fix configuration (unauthorized,
//! forbidden, not configured), or give up on this item (not found, validation, decode).

use std::time::Duration;
use thiserror::Error;

use crate::resilience::Retryable;

#[derive(Debug, Clone, Error)]
pub enum OmiError {
    /// The app key, app id or developer key this call needs is not configured.
    #[error("Omi is not configured for this call: set {0}")]
    NotConfigured(&'static str),
    /// Refused before sending: the request breaks one of Omi's documented limits.
    #[error("invalid request to Omi: {0}")]
    Invalid(String),
    /// No answer: connection refused or reset, DNS, TLS. `connect` means nothing reached Omi.
    #[error("cannot reach Omi: {message}")]
    Transport { message: String, connect: bool },
    #[error("Omi did not answer within {0:?}")]
    Timeout(Duration),
    /// 429; wait `retry_after` (Omi always sends it; absent means the header was missing or unreadable).
    #[error("Omi rate limit reached; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    /// 401: the key is missing or malformed.
    #[error("Omi refused the credentials (401): {detail}")]
    Unauthorized { detail: String },
    /// 403 (wrong key for the app, app not enabled by the user, missing capability or scope) or
    /// 402 (a paid plan is needed for this item).
    #[error("Omi refused the call ({status}): {detail}")]
    Forbidden { status: u16, detail: String },
    #[error("Omi has no such item (404): {detail}")]
    NotFound { detail: String },
    /// 400 or 422, with Omi's `detail` (a string, FastAPI's list of problems, or an object).
    #[error("Omi rejected the request ({status}): {detail}")]
    Validation { status: u16, detail: String },
    /// 5xx, 408, 425 and other unexpected statuses.
    #[error("Omi failed ({status}): {detail}")]
    Server { status: u16, detail: String },
    /// The breaker for Omi is open: the call was not made.
    #[error("Omi circuit breaker is open; next try in {retry_in:?}")]
    CircuitOpen { retry_in: Duration },
    /// Omi answered 2xx with a body this client cannot read.
    #[error("cannot read Omi's answer: {0}")]
    Decode(String),
    /// A paginated list returned the same page again: the server ignores `offset`.
    #[error("Omi returned the same page again at offset {offset}; it ignores the offset")]
    PageRepeated { offset: u32 },
}

impl OmiError {
    /// The call certainly did not take effect at Omi, so even a non-idempotent call may be repeated.
    pub fn not_applied(&self) -> bool {
        matches!(
            self,
            Self::NotConfigured(_)
                | Self::Invalid(_)
                | Self::RateLimited { .. }
                | Self::CircuitOpen { .. }
                | Self::Unauthorized { .. }
                | Self::Forbidden { .. }
                | Self::Validation { .. }
                | Self::Transport { connect: true, .. }
        )
    }

    /// Whether this outcome says Omi itself is unhealthy (what the breaker counts).
    pub(super) fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::Timeout(_) | Self::Server { .. }
        )
    }

    /// The kind and status without Omi's detail (which can echo one user's content): for logs at info
    /// level and for status shown to every user.
    pub fn summary(&self) -> String {
        match self {
            Self::Server { status, .. }
            | Self::Forbidden { status, .. }
            | Self::Validation { status, .. } => format!("{} ({status})", self.kind()),
            _ => self.kind().to_owned(),
        }
    }

    /// A short stable name, for metrics labels and status.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotConfigured(_) => "not_configured",
            Self::Invalid(_) => "invalid",
            Self::Transport { .. } => "transport",
            Self::Timeout(_) => "timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Validation { .. } => "validation",
            Self::Server { .. } => "server",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Decode(_) => "decode",
            Self::PageRepeated { .. } => "page_repeated",
        }
    }
}

impl Retryable for OmiError {
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. }
                | Self::Timeout(_)
                | Self::RateLimited { .. }
                | Self::Server { .. }
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            Self::CircuitOpen { retry_in } => Some(*retry_in),
            _ => None,
        }
    }
}

/// `Retry-After` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(super) fn parse_retry_after(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Omi's `{"detail": …}` as text: a string as is, a list or object as compact JSON; bounded, because
/// FastAPI echoes the offending input and that must not end up whole in logs or the outbox.
pub(super) fn detail_of(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut map)) => match map.remove("detail") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => serde_json::Value::Object(map).to_string(),
        },
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = parse_retry_after(&later).unwrap();
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn details_are_read_in_every_shape_omi_sends() {
        assert_eq!(detail_of(br#"{"detail":"App not found"}"#), "App not found");
        assert!(
            detail_of(br#"{"detail":[{"loc":["body","text"],"msg":"field required"}]}"#)
                .contains("field required")
        );
        assert!(
            detail_of(br#"{"detail":{"enabled":false,"reason":"no grant"}}"#).contains("no grant")
        );
        assert_eq!(detail_of(b"Bad Gateway"), "Bad Gateway");
        assert!(detail_of("x".repeat(1000).as_bytes()).chars().count() <= 301);
    }
}
