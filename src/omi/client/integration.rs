//! The Integration API (`/v2/integrations/{app_id}/…`, app key, one `uid` per call): Import, Read and
//! the notification (contract §5 and §7).

use futures_util::Stream;
use reqwest::Method;

use super::types::{
    Conversation, ConversationFilter, ConversationSearch, ConversationsEnvelope, MemoriesEnvelope,
    NewConversation, NewMemories, NotificationSent, OmiActionItem, OmiMemory, SearchResults,
    TaskFilter, TasksEnvelope,
};
use super::{Auth, Call, OmiClient, OmiError, PageFetch, paginate};
use crate::domain::Uid;

/// Omi's page size bounds for the read calls.
pub const MAX_PAGE: u32 = 1_000;

fn check_limit(limit: u32) -> Result<(), OmiError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(OmiError::Invalid(format!("limit must be 1–{MAX_PAGE}")));
    }
    Ok(())
}

/// An empty answer (`{}`): anything readable as JSON will do.
#[derive(serde::Deserialize)]
struct Ignored {}

impl OmiClient {
    fn integration(
        &self,
        method: Method,
        route: &'static str,
        tail: &[&str],
        uid: &Uid,
    ) -> Result<Call, OmiError> {
        let app_id = self.app_id()?;
        let mut segments = vec!["v2", "integrations", app_id];
        segments.extend_from_slice(tail);
        Ok(Call::new(method, route, Auth::App, &segments).query("uid", uid))
    }

    /// Creates a conversation from text. Omi runs its LLM before answering, hence the long timeout;
    /// the answer is `{}` (the id arrives through the app's webhook). Never retried: each call creates a
    /// new conversation.
    pub async fn create_conversation(
        &self,
        uid: &Uid,
        conversation: &NewConversation,
    ) -> Result<(), OmiError> {
        let call = self
            .integration(
                Method::POST,
                "integration.create_conversation",
                &["user", "conversations"],
                uid,
            )?
            .json(conversation)?
            .idempotent(false)
            .long();
        self.call::<Ignored>(call).await.map(drop)
    }

    /// Creates memories. Explicit memories without text are deduplicated by Omi (their id is a hash of
    /// their content), so only such calls are retried.
    pub async fn create_memories(&self, uid: &Uid, memories: &NewMemories) -> Result<(), OmiError> {
        let call = self
            .integration(
                Method::POST,
                "integration.create_memories",
                &["user", "memories"],
                uid,
            )?
            .json(memories)?
            .idempotent(memories.is_deduplicated());
        self.call::<Ignored>(call).await.map(drop)
    }

    /// One page of the user's memories (`limit` 1–1,000).
    pub async fn memories(
        &self,
        uid: &Uid,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<OmiMemory>, OmiError> {
        check_limit(limit)?;
        let call = self
            .integration(Method::GET, "integration.memories", &["memories"], uid)?
            .query("limit", limit)
            .query("offset", offset);
        Ok(self.call::<MemoriesEnvelope>(call).await?.memories)
    }

    /// One page of the user's conversations.
    pub async fn conversations(
        &self,
        uid: &Uid,
        filter: &ConversationFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Conversation>, OmiError> {
        check_limit(limit)?;
        if filter
            .max_transcript_segments
            .is_some_and(|m| !(-1..=1000).contains(&m))
        {
            return Err(OmiError::Invalid(
                "max_transcript_segments must be −1–1,000".into(),
            ));
        }
        let mut call = self
            .integration(
                Method::GET,
                "integration.conversations",
                &["conversations"],
                uid,
            )?
            .query("limit", limit)
            .query("offset", offset)
            .query("include_discarded", filter.include_discarded)
            .query_opt("start_date", filter.start_date.as_ref())
            .query_opt("end_date", filter.end_date.as_ref())
            .query_opt("max_transcript_segments", filter.max_transcript_segments);
        // A list parameter: repeated, as FastAPI reads `List[str]` query parameters.
        for status in &filter.statuses {
            call = call.query("statuses", status);
        }
        Ok(self
            .call::<ConversationsEnvelope>(call)
            .await?
            .conversations)
    }

    /// Full-text search over the user's conversations (Typesense at Omi). A read, so retried.
    pub async fn search_conversations(
        &self,
        uid: &Uid,
        search: &ConversationSearch,
        max_transcript_segments: Option<i32>,
    ) -> Result<SearchResults, OmiError> {
        let call = self
            .integration(
                Method::POST,
                "integration.search_conversations",
                &["search", "conversations"],
                uid,
            )?
            .query_opt("max_transcript_segments", max_transcript_segments)
            .json(search)?
            .idempotent(true);
        self.call(call).await
    }

    /// One page of the user's tasks (action items).
    pub async fn tasks(
        &self,
        uid: &Uid,
        filter: &TaskFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<OmiActionItem>, OmiError> {
        check_limit(limit)?;
        let call = self
            .integration(Method::GET, "integration.tasks", &["tasks"], uid)?
            .query("limit", limit)
            .query("offset", offset)
            .query_opt("completed", filter.completed)
            .query_opt("conversation_id", filter.conversation_id.as_ref())
            .query_opt("start_date", filter.start_date.as_ref())
            .query_opt("end_date", filter.end_date.as_ref())
            .query_opt("due_start_date", filter.due_start_date.as_ref())
            .query_opt("due_end_date", filter.due_end_date.as_ref());
        Ok(self.call::<TasksEnvelope>(call).await?.tasks)
    }

    /// Pushes a notification to the user (`message` as a query parameter, empty body). Omi allows 10
    /// per hour per app and user. Not retried here: a repeat after an unclear outcome may notify twice.
    pub async fn notify(&self, uid: &Uid, message: &str) -> Result<NotificationSent, OmiError> {
        if message.trim().is_empty() {
            return Err(OmiError::Invalid(
                "the notification message is empty".into(),
            ));
        }
        let call = self
            .integration(
                Method::POST,
                "integration.notification",
                &["notification"],
                uid,
            )?
            .query("message", message)
            .empty_body()
            .idempotent(false);
        self.call(call).await
    }

    /// Every memory of the user, page by page from `start`.
    pub fn memory_pages(
        &self,
        uid: &Uid,
        start: u32,
        limit: u32,
    ) -> impl Stream<Item = Result<PageFetch<OmiMemory>, OmiError>> + '_ {
        let uid = uid.clone();
        paginate(start, limit, move |offset, limit| {
            let uid = uid.clone();
            async move { self.memories(&uid, limit, offset).await }
        })
    }

    /// Every conversation of the user, page by page from `start`.
    pub fn conversation_pages<'a>(
        &'a self,
        uid: &Uid,
        filter: &'a ConversationFilter,
        start: u32,
        limit: u32,
    ) -> impl Stream<Item = Result<PageFetch<Conversation>, OmiError>> + 'a {
        let uid = uid.clone();
        paginate(start, limit, move |offset, limit| {
            let uid = uid.clone();
            async move { self.conversations(&uid, filter, limit, offset).await }
        })
    }

    /// Every task of the user, page by page from `start`.
    pub fn task_pages<'a>(
        &'a self,
        uid: &Uid,
        filter: &'a TaskFilter,
        start: u32,
        limit: u32,
    ) -> impl Stream<Item = Result<PageFetch<OmiActionItem>, OmiError>> + 'a {
        let uid = uid.clone();
        paginate(start, limit, move |offset, limit| {
            let uid = uid.clone();
            async move { self.tasks(&uid, filter, limit, offset).await }
        })
    }
}
