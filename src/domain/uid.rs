use super::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An Omi user id: 1–128 bytes, no whitespace or control characters. Compared exactly (no trimming,
/// no case folding): `" B "` and `"B"` are different inputs, and the first is rejected.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String)]
pub struct Uid(String);

impl Uid {
    pub const MAX_BYTES: usize = 128;

    pub fn parse(raw: impl Into<String>) -> Result<Self, ValidationError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(ValidationError::new("uid", "must not be empty"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(ValidationError::new(
                "uid",
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::new(
                "uid",
                "must not contain whitespace or control characters",
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Uid {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Uid> for String {
    fn from(value: Uid) -> Self {
        value.0
    }
}

impl AsRef<str> for Uid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_omi_uids() {
        assert!(Uid::parse("5Z9Lil2WHl1vvn5iP2pZw0fKm4BR").is_ok());
        assert!(Uid::parse("a").is_ok());
        assert!(Uid::parse("é".repeat(64)).is_ok()); // 128 bytes
    }

    #[test]
    fn rejects_bad_uids() {
        for bad in [
            "",
            " B ",
            "a b",
            "tab\there",
            "nul\0",
            &"x".repeat(129),
            &"é".repeat(65),
        ] {
            assert!(Uid::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
