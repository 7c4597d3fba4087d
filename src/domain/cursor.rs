use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ValidationError;

/// An opaque pagination position: the sort key (a time in microseconds, or a sequence number) and the
/// id that breaks ties. It carries no user: every query is scoped by the authenticated user, so a
/// cursor can never reach another user's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub position: i64,
    pub id: String,
}

impl Cursor {
    pub fn new(position: i64, id: impl Into<String>) -> Self {
        Self {
            position,
            id: id.into(),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", self.position, self.id))
    }

    pub fn decode(raw: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("cursor", "is not a cursor returned by this API");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let rest = text.strip_prefix("v1:").ok_or_else(invalid)?;
        let (position, id) = rest.split_once(':').ok_or_else(invalid)?;
        Ok(Self {
            position: position.parse().map_err(|_| invalid())?,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let c = Cursor::new(
            1_700_000_000_000_000,
            "0193a0c4-0000-7000-8000-000000000000",
        );
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not-a-cursor").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("v1:abc:x")).is_err());
    }
}
