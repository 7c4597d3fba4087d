//! A memory and the values it is made of.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Timestamp, Uid, ValidationError};

/// Memory ids are UUIDv7: unique without coordination and roughly time-ordered.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
pub struct MemoryId(Uuid);

impl MemoryId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| ValidationError::new("id", "is not a UUID"))
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for MemoryId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MemoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The text of a memory: 1–16,000 characters after trimming, with control characters other than tab
/// and newlines removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, min_length = 1, max_length = 16000)]
pub struct Content(String);

impl Content {
    pub const MAX_CHARS: usize = 16_000;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let cleaned: String = raw
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .collect();
        let trimmed = cleaned.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("content", "must not be empty"));
        }
        let chars = trimmed.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "content",
                format!(
                    "is {chars} characters; at most {} are allowed",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> ContentHash {
        ContentHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl TryFrom<String> for Content {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Content> for String {
    fn from(value: Content) -> Self {
        value.0
    }
}

/// SHA-256 (hex) of a memory's normalised content: the identity used to refuse duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Omi's memory categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Interesting,
    System,
    Manual,
    Workflow,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Self::Interesting,
        Self::System,
        Self::Manual,
        Self::Workflow,
    ];

    /// Omi's legacy categories, which Omi maps to `system` on write.
    const LEGACY: [&'static str; 10] = [
        "core",
        "hobbies",
        "lifestyle",
        "interests",
        "habits",
        "work",
        "skills",
        "learnings",
        "other",
        "auto",
    ];

    /// Strict parse for our own API: the four current values, or a legacy value mapped as Omi does.
    /// Anything else is an error (a typo must not silently become a category).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let lower = raw.trim().to_ascii_lowercase();
        match lower.as_str() {
            "interesting" => Ok(Self::Interesting),
            "system" => Ok(Self::System),
            "manual" => Ok(Self::Manual),
            "workflow" => Ok(Self::Workflow),
            legacy if Self::LEGACY.contains(&legacy) => Ok(Self::System),
            _ => Err(ValidationError::new(
                "category",
                format!(
                    "{raw:?} is not one of interesting, system, manual, workflow (or an Omi legacy category)"
                ),
            )),
        }
    }

    /// Omi's own lenient mapping for payloads that come from Omi: unknown values become `interesting`.
    pub fn from_omi(raw: &str) -> Self {
        Self::parse(raw).unwrap_or(Self::Interesting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interesting => "interesting",
            Self::System => "system",
            Self::Manual => "manual",
            Self::Workflow => "workflow",
        }
    }
}

impl FromStr for Category {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a memory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Manual,
    Api,
    OmiConversation,
    OmiRealtime,
    OmiDaySummary,
    Import,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Self::Manual,
        Self::Api,
        Self::OmiConversation,
        Self::OmiRealtime,
        Self::OmiDaySummary,
        Self::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Api => "api",
            Self::OmiConversation => "omi_conversation",
            Self::OmiRealtime => "omi_realtime",
            Self::OmiDaySummary => "omi_day_summary",
            Self::Import => "import",
        }
    }
}

impl FromStr for Source {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            ValidationError::new(
                "source",
                format!("{s:?} is not one of manual, api, omi_conversation, omi_realtime, omi_day_summary, import"),
            )
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may see a memory when it is shared onwards (Omi's `visibility`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Private,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
        }
    }
}

impl FromStr for Visibility {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private" => Ok(Self::Private),
            "public" => Ok(Self::Public),
            _ => Err(ValidationError::new(
                "visibility",
                format!("{s:?} is not one of private, public"),
            )),
        }
    }
}

/// A tag, normalised: trimmed, lower-cased, inner whitespace runs turned into `-`; 1–100 characters;
/// no commas (lists of tags are comma-separated in queries) and no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, min_length = 1, max_length = 100)]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let normalised = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
            .to_lowercase();
        if normalised.is_empty() {
            return Err(ValidationError::new("tags", "a tag must not be empty"));
        }
        if normalised.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "tags",
                format!("a tag may have at most {} characters", Self::MAX_CHARS),
            ));
        }
        if normalised.chars().any(|c| c == ',' || c.is_control()) {
            return Err(ValidationError::new(
                "tags",
                format!("{raw:?} contains a comma or a control character"),
            ));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Tag> for String {
    fn from(value: Tag) -> Self {
        value.0
    }
}

/// A memory's tags: at most 50, sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
#[schema(value_type = Vec<String>, max_items = 50)]
pub struct Tags(Vec<Tag>);

impl Tags {
    pub const MAX_COUNT: usize = 50;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        let mut tags = raw
            .iter()
            .map(|t| Tag::parse(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        tags.sort();
        tags.dedup();
        if tags.len() > Self::MAX_COUNT {
            return Err(ValidationError::new(
                "tags",
                format!("at most {} tags are allowed", Self::MAX_COUNT),
            ));
        }
        Ok(Self(tags))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }

    /// Reads tags written by this service (already normalised).
    pub fn from_stored_json(json: &str) -> Self {
        Self(serde_json::from_str(json).unwrap_or_default())
    }
}

impl TryFrom<Vec<String>> for Tags {
    type Error = ValidationError;
    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Tags> for Vec<String> {
    fn from(value: Tags) -> Self {
        value.0.into_iter().map(String::from).collect()
    }
}

/// A free-form JSON object attached to a memory, at most 16 KiB when serialised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
#[schema(value_type = Object)]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);

impl Metadata {
    pub const MAX_BYTES: usize = 16 * 1024;

    pub fn parse(value: serde_json::Value) -> Result<Self, ValidationError> {
        let serde_json::Value::Object(map) = value else {
            return Err(ValidationError::new("metadata", "must be a JSON object"));
        };
        let size = serde_json::to_vec(&map)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > Self::MAX_BYTES {
            return Err(ValidationError::new(
                "metadata",
                format!("is {size} bytes; at most {} are allowed", Self::MAX_BYTES),
            ));
        }
        Ok(Self(map))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    pub fn from_stored_json(json: &str) -> Self {
        Self(serde_json::from_str(json).unwrap_or_default())
    }

    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }
}

impl TryFrom<serde_json::Value> for Metadata {
    type Error = ValidationError;
    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Metadata> for serde_json::Value {
    fn from(value: Metadata) -> Self {
        serde_json::Value::Object(value.0)
    }
}

/// The id of the Omi conversation a memory was derived from: 1–128 visible characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String)]
pub struct ConversationId(String);

impl ConversationId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty()
            || raw.len() > 128
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ValidationError::new(
                "conversation_id",
                "must be 1–128 bytes without whitespace or control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConversationId {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ConversationId> for String {
    fn from(value: ConversationId) -> Self {
        value.0
    }
}

/// A memory as stored: the current state plus its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Memory {
    pub id: MemoryId,
    pub uid: Uid,
    pub content: Content,
    pub category: Category,
    pub tags: Tags,
    pub visibility: Visibility,
    pub source: Source,
    pub conversation_id: Option<ConversationId>,
    pub metadata: Metadata,
    /// When the remembered thing happened; defaults to `created_at`.
    pub occurred_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    /// Starts at 1; every update adds one. Send it back as `If-Match` to update.
    pub version: i64,
    pub content_hash: ContentHash,
}

impl Memory {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// One past or present state of a memory. Version 1 is the state it was created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemoryVersion {
    pub memory_id: MemoryId,
    pub version: i64,
    pub content: Content,
    pub category: Category,
    pub tags: Tags,
    pub visibility: Visibility,
    pub conversation_id: Option<ConversationId>,
    pub metadata: Metadata,
    pub occurred_at: Timestamp,
    pub content_hash: ContentHash,
    /// When this version was written.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_trimmed_and_cleaned() {
        let c = Content::parse("  hello\u{0}\u{7} world\n ").unwrap();
        assert_eq!(c.as_str(), "hello world");
        assert!(Content::parse(" \n\t ").is_err());
        assert!(Content::parse(&"a".repeat(16_000)).is_ok());
        assert!(Content::parse(&"a".repeat(16_001)).is_err());
        assert_eq!(
            Content::parse("x").unwrap().hash(),
            Content::parse(" x ").unwrap().hash()
        );
    }

    #[test]
    fn categories_follow_omi() {
        assert_eq!(Category::parse("System").unwrap(), Category::System);
        assert_eq!(Category::parse("hobbies").unwrap(), Category::System);
        assert!(Category::parse("nonsense").is_err());
        assert_eq!(Category::from_omi("nonsense"), Category::Interesting);
    }

    #[test]
    fn tags_are_normalised() {
        let tags = Tags::parse(&["  Work  Trip ", "b", "work-trip", "A"]).unwrap();
        let names: Vec<String> = tags.into();
        assert_eq!(names, vec!["a", "b", "work-trip"]);
        assert!(Tags::parse(&["a,b"]).is_err());
        assert!(Tags::parse(&[" "]).is_err());
        let many: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
        assert!(Tags::parse(&many).is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(Metadata::parse(serde_json::json!({"a": 1})).is_ok());
        assert!(Metadata::parse(serde_json::json!([1])).is_err());
        assert!(Metadata::parse(serde_json::json!({"a": "x".repeat(17_000)})).is_err());
    }
}
