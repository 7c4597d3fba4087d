//! API keys: 256 random bits, shown once, stored only as a SHA-256 hash with a visible prefix.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct KeyId(Uuid);

impl KeyId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| ValidationError::new("key_id", "is not a UUID"))
    }
}

impl Default for KeyId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A human label for a key, 1–100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty()
            || trimmed.chars().count() > 100
            || trimmed.chars().any(char::is_control)
        {
            return Err(ValidationError::new(
                "name",
                "must be 1–100 characters without control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyName {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<KeyName> for String {
    fn from(value: KeyName) -> Self {
        value.0
    }
}

/// How a key is spelled. Keys of every format belong to one user and open the same data; the Omi
/// format exists because clients written for Omi's Developer API check for its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// `am_…`
    #[default]
    Native,
    /// `omi_dev_…`, as Omi's Developer API keys.
    OmiDev,
}

impl KeyFormat {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Native => ApiKeySecret::PREFIX,
            Self::OmiDev => ApiKeySecret::OMI_DEV_PREFIX,
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "native" => Ok(Self::Native),
            "omi_dev" | "omi-dev" => Ok(Self::OmiDev),
            _ => Err(ValidationError::new(
                "format",
                format!("{raw:?} is not one of native, omi_dev"),
            )),
        }
    }
}

/// The secret value of an API key. Never logged (`SecretString`); only its hash is stored.
pub struct ApiKeySecret(SecretString);

impl ApiKeySecret {
    pub const PREFIX: &'static str = "am_";
    /// Omi's Developer API key prefix: Omi's verifier refuses any key without it.
    pub const OMI_DEV_PREFIX: &'static str = "omi_dev_";
    /// How many random characters of the key are kept in clear, after its prefix, to recognise it
    /// in listings.
    const VISIBLE_CHARS: usize = 8;

    pub fn generate() -> Self {
        Self::generate_as(KeyFormat::Native)
    }

    pub fn generate_as(format: KeyFormat) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(SecretString::from(format!(
            "{}{}",
            format.prefix(),
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    /// Whether the key is spelled as an Omi Developer API key.
    pub fn is_omi_dev(&self) -> bool {
        self.expose().starts_with(Self::OMI_DEV_PREFIX)
    }

    /// Takes a presented bearer token. Format checks are deliberately loose: an unknown token simply
    /// matches no hash.
    pub fn from_presented(token: &str) -> Option<Self> {
        let ok =
            !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(SecretString::from(token.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.expose_secret().as_bytes()))
    }

    pub fn visible_prefix(&self) -> String {
        let secret = self.0.expose_secret();
        let prefix = [Self::OMI_DEV_PREFIX, Self::PREFIX]
            .into_iter()
            .find(|p| secret.starts_with(p))
            .map_or(0, str::len);
        secret.chars().take(prefix + Self::VISIBLE_CHARS).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_unique_and_hashable() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert!(a.expose().starts_with("am_"));
        assert_eq!(a.expose().len(), 3 + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash().len(), 64);
        assert_eq!(a.visible_prefix().len(), 11);
        assert!(ApiKeySecret::from_presented("has space").is_none());
    }

    #[test]
    fn omi_dev_keys_carry_omis_prefix() {
        let key = ApiKeySecret::generate_as(KeyFormat::OmiDev);
        assert!(key.expose().starts_with("omi_dev_"));
        assert_eq!(key.expose().len(), 8 + 43);
        assert!(key.is_omi_dev());
        assert!(!ApiKeySecret::generate().is_omi_dev());
        assert_eq!(key.visible_prefix().len(), 16);
    }
}
