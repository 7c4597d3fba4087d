//! The Developer API (`/v1/dev/user/…`, one user's `omi_dev_` key; contract §6).

use reqwest::Method;

use super::types::{
    ActionItemBatch, ActionItemBatchBody, ActionItemFilter, ActionItemPatch, ActionItemsCreated,
    Conversation, ConversationCreated, Deleted, DevConversationFilter, DevConversationPatch,
    DevMemoriesCreated, DevMemoryBatch, DevMemoryBatchBody, DevMemoryPatch, NewActionItem,
    NewConversationFromSegments, NewDevConversation, NewDevMemory, OmiActionItem, OmiMemory,
};
use super::{Auth, Call, OmiClient, OmiError};

fn check_limit(limit: u32) -> Result<(), OmiError> {
    if limit == 0 || limit > 1_000 {
        return Err(OmiError::Invalid("limit must be 1–1,000".into()));
    }
    Ok(())
}

fn dev(method: Method, route: &'static str, tail: &[&str]) -> Call {
    let mut segments = vec!["v1", "dev", "user"];
    segments.extend_from_slice(tail);
    Call::new(method, route, Auth::Developer, &segments)
}

impl OmiClient {
    // Memories.

    /// One page of memories (`categories`: interesting, system, manual, workflow; empty = all).
    pub async fn dev_memories(
        &self,
        limit: u32,
        offset: u32,
        categories: &[String],
    ) -> Result<Vec<OmiMemory>, OmiError> {
        check_limit(limit)?;
        let call = dev(Method::GET, "dev.memories", &["memories"])
            .query("limit", limit)
            .query("offset", offset)
            .query_opt(
                "categories",
                (!categories.is_empty()).then(|| categories.join(",")),
            );
        self.call(call).await
    }

    /// Creates one memory. Retried: Omi's memory id is a hash of the content, so a repeat upserts.
    pub async fn dev_create_memory(&self, memory: &NewDevMemory) -> Result<OmiMemory, OmiError> {
        let call = dev(Method::POST, "dev.create_memory", &["memories"])
            .json(memory)?
            .idempotent(true);
        self.call(call).await
    }

    /// Creates up to 25 memories (the type refuses more). Retried, as above.
    pub async fn dev_create_memories(
        &self,
        batch: &DevMemoryBatch,
    ) -> Result<DevMemoriesCreated, OmiError> {
        if batch.items().is_empty() {
            // Omi answers an empty batch with nothing created; no need to ask.
            return Ok(DevMemoriesCreated::default());
        }
        let call = dev(Method::POST, "dev.create_memories", &["memories", "batch"])
            .json(&DevMemoryBatchBody { memories: batch })?
            .idempotent(true);
        self.call(call).await
    }

    pub async fn dev_update_memory(
        &self,
        id: &str,
        patch: &DevMemoryPatch,
    ) -> Result<OmiMemory, OmiError> {
        if patch.is_empty() {
            return Err(OmiError::Invalid(
                "a memory update needs content, visibility, tags or category".into(),
            ));
        }
        let call = dev(Method::PATCH, "dev.update_memory", &["memories", id]).json(patch)?;
        self.call(call).await
    }

    pub async fn dev_delete_memory(&self, id: &str) -> Result<Deleted, OmiError> {
        self.call(dev(Method::DELETE, "dev.delete_memory", &["memories", id]))
            .await
    }

    // Action items.

    pub async fn dev_action_items(
        &self,
        filter: &ActionItemFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<OmiActionItem>, OmiError> {
        check_limit(limit)?;
        let call = dev(Method::GET, "dev.action_items", &["action-items"])
            .query("limit", limit)
            .query("offset", offset)
            .query_opt("conversation_id", filter.conversation_id.as_ref())
            .query_opt("completed", filter.completed)
            .query_opt("start_date", filter.start_date.as_ref())
            .query_opt("end_date", filter.end_date.as_ref());
        self.call(call).await
    }

    /// Not retried: action items have random ids, a repeat would create a second one.
    pub async fn dev_create_action_item(
        &self,
        item: &NewActionItem,
    ) -> Result<OmiActionItem, OmiError> {
        let call = dev(Method::POST, "dev.create_action_item", &["action-items"])
            .json(item)?
            .idempotent(false);
        self.call(call).await
    }

    /// Up to 50 items (the type refuses more). Not retried, as above.
    pub async fn dev_create_action_items(
        &self,
        batch: &ActionItemBatch,
    ) -> Result<ActionItemsCreated, OmiError> {
        if batch.items().is_empty() {
            return Ok(ActionItemsCreated::default());
        }
        let call = dev(
            Method::POST,
            "dev.create_action_items",
            &["action-items", "batch"],
        )
        .json(&ActionItemBatchBody {
            action_items: batch,
        })?
        .idempotent(false);
        self.call(call).await
    }

    pub async fn dev_update_action_item(
        &self,
        id: &str,
        patch: &ActionItemPatch,
    ) -> Result<OmiActionItem, OmiError> {
        if patch.description.is_none() && patch.completed.is_none() && patch.due_at.is_none() {
            return Err(OmiError::Invalid(
                "an action item update needs description, completed or due_at".into(),
            ));
        }
        let call = dev(
            Method::PATCH,
            "dev.update_action_item",
            &["action-items", id],
        )
        .json(patch)?;
        self.call(call).await
    }

    pub async fn dev_delete_action_item(&self, id: &str) -> Result<Deleted, OmiError> {
        self.call(dev(
            Method::DELETE,
            "dev.delete_action_item",
            &["action-items", id],
        ))
        .await
    }

    // Conversations.

    /// One page of completed, non-discarded, unlocked conversations.
    pub async fn dev_conversations(
        &self,
        filter: &DevConversationFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Conversation>, OmiError> {
        check_limit(limit)?;
        let call = dev(Method::GET, "dev.conversations", &["conversations"])
            .query("limit", limit)
            .query("offset", offset)
            .query("include_transcript", filter.include_transcript)
            .query_opt("start_date", filter.start_date.as_ref())
            .query_opt("end_date", filter.end_date.as_ref())
            .query_opt(
                "categories",
                (!filter.categories.is_empty()).then(|| filter.categories.join(",")),
            );
        self.call(call).await
    }

    pub async fn dev_conversation(
        &self,
        id: &str,
        include_transcript: bool,
    ) -> Result<Conversation, OmiError> {
        let call = dev(Method::GET, "dev.conversation", &["conversations", id])
            .query("include_transcript", include_transcript);
        self.call(call).await
    }

    /// Not retried: each call creates a conversation.
    pub async fn dev_create_conversation(
        &self,
        conversation: &NewDevConversation,
    ) -> Result<ConversationCreated, OmiError> {
        let call = dev(Method::POST, "dev.create_conversation", &["conversations"])
            .json(conversation)?
            .idempotent(false);
        self.call(call).await
    }

    /// Retried only with a `client_session_id`, which makes Omi return the first result again.
    pub async fn dev_create_conversation_from_segments(
        &self,
        conversation: &NewConversationFromSegments,
    ) -> Result<ConversationCreated, OmiError> {
        let call = dev(
            Method::POST,
            "dev.create_conversation_from_segments",
            &["conversations", "from-segments"],
        )
        .json(conversation)?
        .idempotent(conversation.client_session_id.is_some());
        self.call(call).await
    }

    pub async fn dev_update_conversation(
        &self,
        id: &str,
        patch: &DevConversationPatch,
    ) -> Result<(), OmiError> {
        if patch.title.is_none() && patch.discarded.is_none() {
            return Err(OmiError::Invalid(
                "a conversation update needs title or discarded".into(),
            ));
        }
        let call = dev(
            Method::PATCH,
            "dev.update_conversation",
            &["conversations", id],
        )
        .json(patch)?;
        self.call::<serde_json::Value>(call).await.map(drop)
    }

    pub async fn dev_delete_conversation(&self, id: &str) -> Result<Deleted, OmiError> {
        self.call(dev(
            Method::DELETE,
            "dev.delete_conversation",
            &["conversations", id],
        ))
        .await
    }
}
