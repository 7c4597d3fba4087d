//! Values for the app home (the web UI under `/app`): browser sessions, and the counts its charts
//! draw.

use serde::Serialize;
use uuid::Uuid;

use crate::domain::{Timestamp, Uid};

/// How a browser proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// A signed, expiring link issued by this service.
    Link,
    /// One of the user's API keys, typed into the sign-in form.
    ApiKey,
}

impl SignInMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::ApiKey => "api_key",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Link, Self::ApiKey]
            .into_iter()
            .find(|m| m.as_str() == raw)
    }
}

/// A session to record. Only the hash of its cookie token is stored, so the table alone cannot be used
/// to sign in.
#[derive(Debug, Clone)]
pub struct NewUiSession {
    pub id: Uuid,
    pub token_hash: String,
    /// The synchronizer token every form of this session must send back.
    pub csrf_token: String,
    pub method: SignInMethod,
    pub expires_at: Timestamp,
}

/// A live browser session: whose it is, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    pub id: Uuid,
    pub uid: Uid,
    pub csrf_token: String,
    pub method: SignInMethod,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Active memories created in the week (Monday 00:00 UTC) starting at `week_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekCount {
    pub week_start: Timestamp,
    pub count: u64,
}

impl WeekCount {
    /// A week, in the microseconds timestamps are stored in.
    pub const WEEK_MICROS: i64 = 7 * 86_400_000_000;
    /// The Unix epoch was a Thursday; weeks start on the Monday four days later. Both stores number a
    /// memory's week as `(created_at - MONDAY_OFFSET_MICROS) / WEEK_MICROS` in SQL.
    pub const MONDAY_OFFSET_MICROS: i64 = 4 * 86_400_000_000;

    /// The count of the week numbered `week` as above.
    pub fn of_week(week: i64, count: i64) -> Self {
        Self {
            week_start: Timestamp::from_micros(
                week * Self::WEEK_MICROS + Self::MONDAY_OFFSET_MICROS,
            ),
            count: count.max(0) as u64,
        }
    }
}
