//! Values for the Omi-compatible surfaces (Developer API, chat tools, MCP): offset pages in Omi's
//! orders, action items the user creates, and conversations created through the API.

use crate::domain::{
    Category, Conversation, ConversationTitle, Memory, Source, Timestamp, TranscriptSegment,
};

/// Omi's pagination: skip `offset` rows, return at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPage {
    pub limit: u32,
    pub offset: u32,
}

/// Active memories in Omi's `scoring` order (see [`OmiScoring`]), optionally of some categories.
#[derive(Debug, Clone)]
pub struct ScoredMemoryQuery {
    /// Empty: every category.
    pub categories: Vec<Category>,
    pub page: OffsetPage,
}

/// Omi's memory ranking string `"{manual:02d}_{999 − boost:02d}_{created_ts:010d}"`; lists are ordered
/// by it, descending. The store orders by the same three parts.
pub struct OmiScoring;

impl OmiScoring {
    /// Memories the user wrote themselves (Omi's `manually_added`): through the API or the CLI. What
    /// Omi's conversations derived, and imports, are not.
    pub const MANUAL_SOURCES: [Source; 2] = [Source::Manual, Source::Api];

    pub fn manually_added(memory: &Memory) -> bool {
        Self::MANUAL_SOURCES.contains(&memory.source)
    }

    /// Omi's newest `CATEGORY_BOOSTS`: interesting 1, system 0, manual 1, workflow 1.
    pub fn boost(category: Category) -> u32 {
        match category {
            Category::System => 0,
            Category::Interesting | Category::Manual | Category::Workflow => 1,
        }
    }

    /// The same order as an SQL `ORDER BY` list over `memories` (valid in SQLite and PostgreSQL):
    /// manual first, then the lower category boost (999 − boost is larger), then the newest.
    pub fn order_by() -> String {
        let manual = Self::MANUAL_SOURCES
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let boosts = Category::ALL
            .iter()
            .map(|c| format!("WHEN '{}' THEN {}", c.as_str(), Self::boost(*c)))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "(source IN ({manual})) DESC, (CASE category {boosts} ELSE 0 END) ASC, created_at / 1000000 DESC, id DESC"
        )
    }

    pub fn of(memory: &Memory) -> String {
        format!(
            "{:02}_{:02}_{:010}",
            u8::from(Self::manually_added(memory)),
            999 - Self::boost(memory.category),
            memory.created_at.as_micros().div_euclid(1_000_000)
        )
    }
}

/// Action items, newest first, with Omi's filters. Date bounds are inclusive, as Omi's are.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub completed: Option<bool>,
    pub conversation_id: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_until: Option<Timestamp>,
    pub page: Option<OffsetPage>,
}

/// Conversations, newest first, with Omi's Developer API filters. Date bounds are inclusive.
#[derive(Debug, Clone)]
pub struct ConversationQuery {
    pub created_from: Option<Timestamp>,
    pub created_until: Option<Timestamp>,
    /// Omi's conversation categories (`business`, `personal`, …); empty: every category.
    pub categories: Vec<String>,
    pub include_discarded: bool,
    pub page: OffsetPage,
}

/// What a create-from-text request carried: kept because no language model turns it into a summary
/// here (Omi keeps the same request as `external_data`).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceText {
    pub text: String,
    pub text_source: String,
    pub text_source_spec: Option<String>,
}

/// A conversation created through the API.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub conversation: Conversation,
    pub segments: Vec<TranscriptSegment>,
    pub source_text: Option<SourceText>,
    /// The client's id for this conversation: a retry with the same id creates nothing new.
    pub client_session_id: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ConversationCreated {
    New(Conversation),
    /// The client session id was seen before: the conversation it created.
    Existing(Conversation),
    /// The client session id created a conversation that has since been deleted.
    Deleted {
        id: String,
    },
}

/// A partial update of a conversation; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConversationPatch {
    pub title: Option<ConversationTitle>,
    pub discarded: Option<bool>,
}
