//! Validated domain types. Everything here is parsed once at the edge (HTTP, CLI, import) and trusted
//! afterwards: a value of these types cannot be invalid.

mod conversation;
mod cursor;
mod error;
mod key;
mod memory;
mod time;
mod uid;

pub use conversation::{CONVERSATION_CATEGORIES, CONVERSATION_SOURCES};
pub use conversation::{
    Conversation, ConversationEvent, ConversationTitle, NewTask, Task, TaskDescription,
    TranscriptSegment,
};
pub use cursor::Cursor;
pub use error::ValidationError;
pub use key::{ApiKeySecret, KeyFormat, KeyId, KeyName};
pub use memory::{
    Category, Content, ContentHash, ConversationId, Memory, MemoryId, MemoryVersion, Metadata,
    Source, Tag, Tags, Visibility,
};
pub use time::Timestamp;
pub use uid::Uid;
