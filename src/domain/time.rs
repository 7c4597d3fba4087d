use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::ValidationError;

/// A UTC instant with microsecond precision, stored as microseconds since the Unix epoch and shown
/// as RFC 3339 (`2026-11-24T10:32:47.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 with an offset or `Z`; a naive date-time (no offset) is taken as UTC, as Omi
    /// sends both.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
            return Ok(Self(dt.with_timezone(&Utc).timestamp_micros()));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(raw, format) {
                return Ok(Self(Utc.from_utc_datetime(&naive).timestamp_micros()));
            }
        }
        Err(ValidationError::new(
            field,
            format!("{raw:?} is not an RFC 3339 date-time"),
        ))
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    pub fn minus_days(self, days: u32) -> Self {
        Self(self.0 - i64::from(days) * 86_400_000_000)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse("timestamp", &raw).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}
impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_omi_and_rfc3339_forms() {
        let a = Timestamp::parse("t", "2024-07-22T23:59:45.910559+00:00").unwrap();
        let b = Timestamp::parse("t", "2024-07-22T23:59:45.910559Z").unwrap();
        let c = Timestamp::parse("t", "2024-07-22T23:59:45.910559").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.to_string(), "2024-07-22T23:59:45.910559Z");
        assert!(Timestamp::parse("t", "yesterday").is_err());
    }
}
