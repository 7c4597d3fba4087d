//! The store of record. One trait, one implementation per backend; callers never know which runs.
//! Every per-user operation takes the caller's `Uid` first and scopes every query by it.

mod ingest;
pub mod migrate_data;
mod omi_dev;
mod outbox;
pub mod postgres;
mod search;
pub mod sqlite;
mod types;
mod ui;

pub use ingest::*;
pub use omi_dev::*;
pub use outbox::*;
pub use search::*;
pub use types::*;
pub use ui::*;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, DatabaseLocation};

use crate::domain::NewTask;
use crate::domain::{Conversation, KeyId, Memory, MemoryId, MemoryVersion, Task, Timestamp, Uid};

/// Opens the database the configuration names (connecting and migrating, for PostgreSQL).
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let location = config
        .database()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    match location {
        DatabaseLocation::Sqlite(path) => {
            let options = sqlite::PoolOptions {
                readers: config.sqlite.readers,
                synchronous: config.sqlite.synchronous,
                busy_timeout: Duration::from_millis(config.sqlite.busy_timeout_ms),
                // SQLite's default page is 4 KiB: 256 frames per MiB.
                restart_log_after_frames: (config.sqlite.restart_log_after_mb > 0).then(|| {
                    i64::try_from(config.sqlite.restart_log_after_mb.saturating_mul(256))
                        .unwrap_or(i64::MAX)
                }),
            };
            Ok(Arc::new(sqlite::SqliteStore::open(&path, &options)?))
        }
        DatabaseLocation::Postgres(url) => {
            let options = postgres::PgOptions {
                max_connections: config.postgres.max_connections,
                claim_lease: Duration::from_millis(config.postgres.claim_lease_ms),
            };
            Ok(Arc::new(
                postgres::PostgresStore::open(&url, options).await?,
            ))
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Fails when the database cannot serve queries (used by `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// A short description for start-up output, e.g. `sqlite:/data/angel-memory.db`.
    fn describe(&self) -> String;

    // Users and keys (administration).
    async fn create_user(&self, uid: &Uid) -> Result<User, StoreError>;
    async fn get_user(&self, uid: &Uid) -> Result<User, StoreError>;
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, StoreError>;
    /// Erases the user and everything they own (memories, versions, keys, audit trail).
    async fn delete_user(&self, uid: &Uid) -> Result<(), StoreError>;
    async fn create_key(
        &self,
        uid: &Uid,
        key: NewApiKey,
        ctx: &Context,
    ) -> Result<ApiKeyInfo, StoreError>;
    async fn list_keys(&self, uid: &Uid) -> Result<Vec<ApiKeyInfo>, StoreError>;
    async fn revoke_key(
        &self,
        uid: &Uid,
        key_id: KeyId,
        ctx: &Context,
    ) -> Result<ApiKeyInfo, StoreError>;
    /// Finds the live (unrevoked) key with this hash.
    async fn authenticate(&self, key_hash: &str) -> Result<Option<Principal>, StoreError>;
    async fn touch_key(&self, uid: &Uid, key_id: KeyId, at: Timestamp) -> Result<(), StoreError>;

    // Memories.
    async fn create_memory(
        &self,
        uid: &Uid,
        new: NewMemory,
        ctx: &Context,
    ) -> Result<Created, StoreError>;
    /// Each item succeeds or fails on its own.
    async fn create_memories(
        &self,
        uid: &Uid,
        new: Vec<NewMemory>,
        ctx: &Context,
    ) -> Result<Vec<Result<Created, StoreError>>, StoreError>;
    /// Returns the memory whether or not it is soft-deleted.
    async fn get_memory(&self, uid: &Uid, id: MemoryId) -> Result<Memory, StoreError>;
    async fn list_memories(&self, uid: &Uid, query: &ListQuery)
    -> Result<Page<Memory>, StoreError>;
    async fn update_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        expected_version: i64,
        patch: MemoryPatch,
        ctx: &Context,
    ) -> Result<Memory, StoreError>;
    /// Soft delete; deleting an already deleted memory changes nothing.
    async fn delete_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<Deleted, StoreError>;
    async fn delete_memories(
        &self,
        uid: &Uid,
        ids: Vec<MemoryId>,
        ctx: &Context,
    ) -> Result<Vec<Result<Deleted, StoreError>>, StoreError>;
    async fn restore_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        ctx: &Context,
    ) -> Result<Memory, StoreError>;
    async fn memory_versions(
        &self,
        uid: &Uid,
        id: MemoryId,
    ) -> Result<Vec<MemoryVersion>, StoreError>;
    /// Hard-deletes memories soft-deleted before `deleted_before`, with their versions and tags; the
    /// audit trail keeps a `memory.purge` record without content. `None` purges every user.
    async fn purge_deleted(
        &self,
        uid: Option<&Uid>,
        deleted_before: Timestamp,
        ctx: &Context,
    ) -> Result<PurgeReport, StoreError>;

    async fn stats(&self, uid: &Uid) -> Result<Stats, StoreError>;
    async fn audit_events(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError>;

    /// Memories with their full history, in a stable order, for export.
    async fn export_memories(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<ExportedMemory>, StoreError>;
    /// All-or-nothing: either every record is applied (or reported as skipped) or nothing is written.
    async fn import_memories(
        &self,
        uid: &Uid,
        records: Vec<ExportedMemory>,
        ctx: &Context,
    ) -> Result<ImportReport, StoreError>;

    // Idempotency keys (per user).
    async fn idempotency_begin(
        &self,
        uid: &Uid,
        key: &str,
        fingerprint: &str,
        stale_before: Timestamp,
        expired_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError>;
    async fn idempotency_complete(
        &self,
        uid: &Uid,
        key: &str,
        response: StoredResponse,
    ) -> Result<(), StoreError>;
    async fn idempotency_abandon(&self, uid: &Uid, key: &str) -> Result<(), StoreError>;
    async fn idempotency_purge(&self, created_before: Timestamp) -> Result<u64, StoreError>;

    // Omi ingest: the inbox, and what its events derive.
    /// Records a webhook event before it is acknowledged (or finds its earlier copy). A transcript batch
    /// is processed in the same transaction. Unknown users are created when `auto_create_user`.
    async fn ingest(
        &self,
        uid: &Uid,
        auto_create_user: bool,
        event: NewInboxEvent,
        transcript: Option<TranscriptWork>,
        ctx: &Context,
    ) -> Result<Ingested, StoreError>;
    /// Pending events whose next attempt is due, oldest first.
    async fn due_events(&self, now: Timestamp, limit: u32) -> Result<Vec<DueEvent>, StoreError>;
    /// Applies an event's work and marks it done; its work is applied at most once, however the
    /// process stops. `false` if it was no longer pending, or its work was applied already.
    async fn complete_event(
        &self,
        uid: &Uid,
        id: &str,
        work: EventWork,
        ctx: &Context,
    ) -> Result<bool, StoreError>;
    /// Records a failed attempt; the event is retried at `retry_at`, or dead without one.
    async fn fail_event(
        &self,
        uid: &Uid,
        id: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    async fn inbox(
        &self,
        state: InboxState,
        page: PageRequest,
    ) -> Result<Page<InboxEntry>, StoreError>;
    /// Puts a dead event back in the queue.
    async fn retry_event(&self, id: &str) -> Result<InboxEntry, StoreError>;
    async fn forget_done_events(&self, before: Timestamp) -> Result<u64, StoreError>;
    async fn is_setup(&self, uid: &Uid) -> Result<bool, StoreError>;
    async fn conversations(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<Conversation>, StoreError>;
    async fn conversation(&self, uid: &Uid, id: &str) -> Result<ConversationDetail, StoreError>;
    async fn tasks(
        &self,
        uid: &Uid,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, StoreError>;
    async fn update_task(
        &self,
        uid: &Uid,
        id: &str,
        patch: TaskPatch,
        ctx: &Context,
    ) -> Result<Task, StoreError>;
    /// Whether an event with this dedupe key was recorded already.
    async fn seen_event(
        &self,
        uid: &Uid,
        kind: EventKind,
        dedupe_key: &str,
    ) -> Result<bool, StoreError>;

    // Audio recordings (metadata; the files are the caller's).
    /// The recording a chunk at this sample rate continues, if its last chunk came after `continues_after`.
    async fn current_recording(
        &self,
        uid: &Uid,
        sample_rate: u32,
        continues_after: Timestamp,
    ) -> Result<Option<Recording>, StoreError>;
    async fn start_recording(&self, uid: &Uid, recording: Recording) -> Result<(), StoreError>;
    async fn recording_appended(
        &self,
        uid: &Uid,
        id: &str,
        bytes: i64,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// PCM bytes held for the user.
    async fn recording_usage(&self, uid: &Uid) -> Result<i64, StoreError>;
    async fn recordings(&self, uid: &Uid, page: PageRequest)
    -> Result<Page<Recording>, StoreError>;
    async fn recording(&self, uid: &Uid, id: &str) -> Result<Recording, StoreError>;
    /// Forgets recordings whose last chunk is older than `before`; returns their files.
    async fn expire_recordings(&self, before: Timestamp) -> Result<Vec<String>, StoreError>;
    async fn recording_files(&self, uid: &Uid) -> Result<Vec<String>, StoreError>;

    // Search.
    /// Active memories with these ids, in the order given (missing or deleted ones left out).
    async fn memories_by_ids(&self, uid: &Uid, ids: &[MemoryId])
    -> Result<Vec<Memory>, StoreError>;
    /// Ids of the active memories the filter lets through.
    async fn filtered_memory_ids(
        &self,
        uid: &Uid,
        filter: &SearchFilter,
    ) -> Result<Vec<MemoryId>, StoreError>;
    async fn search_conversations(
        &self,
        uid: &Uid,
        fts_query: &str,
        limit: u32,
    ) -> Result<Vec<ConversationHit>, StoreError>;
    /// Moves (in the same transaction) whenever anything search holds of this user may have changed:
    /// a memory written, deleted or purged, a vector stored.
    async fn search_generation(&self, uid: &Uid) -> Result<i64, StoreError>;
    /// The memories changed after generation `since`, or `None` when the change log no longer
    /// reaches back that far (then everything must be loaded again).
    async fn search_changes(
        &self,
        uid: &Uid,
        since: i64,
    ) -> Result<Option<Vec<MemoryId>>, StoreError>;
    /// The user's active memories as search holds them (all, or those of `only`), with their vectors
    /// of `model`, in [`SearchableMemory::conversation_order`].
    async fn searchable_memories(
        &self,
        uid: &Uid,
        model: Option<&VectorModel>,
        only: Option<&[MemoryId]>,
    ) -> Result<Vec<SearchableMemory>, StoreError>;
    /// Queues every active memory without a current vector (or failure) of this model.
    async fn enqueue_stale_embeddings(&self, model: &VectorModel) -> Result<u64, StoreError>;
    /// Memories whose turn to be embedded has come, oldest request first.
    async fn embedding_backlog(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<EmbeddingJob>, StoreError>;
    /// Records vectors and failures, and takes finished jobs off the queue, in one transaction.
    async fn save_embeddings(
        &self,
        model: &VectorModel,
        results: Vec<(EmbeddingJob, EmbeddingOutcome)>,
    ) -> Result<(), StoreError>;
    async fn embedding_status(
        &self,
        uid: &Uid,
        id: MemoryId,
        model: Option<&VectorModel>,
    ) -> Result<EmbeddingStatus, StoreError>;
    async fn embedding_counts(
        &self,
        uid: &Uid,
        model: Option<&VectorModel>,
    ) -> Result<EmbeddingCounts, StoreError>;

    // Omi client (omi-client): the outbox of writes to Omi, sync settings, pull checkpoints.
    // Outbox items are enqueued by the store itself, in the transaction of the write that causes them.
    /// The user's sync settings (all off until set).
    async fn omi_sync_settings(&self, uid: &Uid) -> Result<SyncSettings, StoreError>;
    async fn set_omi_sync_settings(
        &self,
        uid: &Uid,
        settings: SyncSettings,
    ) -> Result<SyncSettings, StoreError>;
    /// Pending items whose next attempt is due, oldest first.
    async fn due_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxItem>, StoreError>;
    /// Records what became of attempts, in one transaction.
    async fn settle_outbox(
        &self,
        outcomes: Vec<(Uid, String, OutboxOutcome)>,
    ) -> Result<(), StoreError>;
    async fn outbox(
        &self,
        state: OutboxState,
        page: PageRequest,
    ) -> Result<Page<OutboxEntry>, StoreError>;
    /// Puts a dead item back in the queue.
    async fn retry_outbox(&self, id: &str) -> Result<OutboxEntry, StoreError>;
    /// Queue depth and newest failure; `None` counts every user.
    async fn outbox_counts(&self, uid: Option<&Uid>) -> Result<OutboxCounts, StoreError>;
    async fn forget_delivered_outbox(&self, before: Timestamp) -> Result<u64, StoreError>;
    async fn omi_pull_checkpoint(
        &self,
        uid: &Uid,
        resource: &str,
    ) -> Result<Option<u32>, StoreError>;
    async fn set_omi_pull_checkpoint(
        &self,
        uid: &Uid,
        resource: &str,
        next_offset: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Stores tasks pulled from Omi, skipping known ones; returns how many were new.
    async fn save_pulled_tasks(
        &self,
        uid: &Uid,
        tasks: Vec<crate::domain::NewTask>,
    ) -> Result<u64, StoreError>;
    /// Records what the server sees of an Omi upstream, for processes without a breaker (the CLI).
    async fn record_omi_status(
        &self,
        upstream: &str,
        status: serde_json::Value,
    ) -> Result<(), StoreError>;
    async fn omi_statuses(&self) -> Result<Vec<UpstreamStatus>, StoreError>;
    // App home (web UI): browser sessions, and counts for its charts.
    /// Records a session for a user who proved who they are; audited as `session.create`.
    async fn create_ui_session(
        &self,
        uid: &Uid,
        session: NewUiSession,
        ctx: &Context,
    ) -> Result<UiSession, StoreError>;
    /// The unexpired session whose cookie token has this hash.
    async fn ui_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<UiSession>, StoreError>;
    /// Revokes a session (sign-out); audited as `session.end`.
    async fn end_ui_session(
        &self,
        uid: &Uid,
        token_hash: &str,
        ctx: &Context,
    ) -> Result<(), StoreError>;
    /// Active memories created per week since `since`, oldest week first; empty weeks left out.
    async fn memories_per_week(
        &self,
        uid: &Uid,
        since: Timestamp,
    ) -> Result<Vec<WeekCount>, StoreError>;
    // Omi-compatible surfaces (omi-dialect): the Developer API, chat tools and MCP.
    /// Active memories in Omi's scoring order, an offset page of them.
    async fn memories_by_score(
        &self,
        uid: &Uid,
        query: &ScoredMemoryQuery,
    ) -> Result<Vec<Memory>, StoreError>;
    /// Action items newest first; without a page, all of them.
    async fn find_tasks(&self, uid: &Uid, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;
    /// Action items the user writes; all are stored or none.
    async fn create_tasks(
        &self,
        uid: &Uid,
        tasks: Vec<NewTask>,
        ctx: &Context,
    ) -> Result<Vec<Task>, StoreError>;
    async fn delete_task(&self, uid: &Uid, id: &str, ctx: &Context) -> Result<(), StoreError>;
    /// Conversations newest first, each with its transcript, events and action items.
    async fn find_conversations(
        &self,
        uid: &Uid,
        query: &ConversationQuery,
    ) -> Result<Vec<ConversationDetail>, StoreError>;
    /// Stores a conversation created through an API, once per client session id.
    async fn create_conversation(
        &self,
        uid: &Uid,
        new: NewConversation,
        ctx: &Context,
    ) -> Result<ConversationCreated, StoreError>;
    async fn update_conversation(
        &self,
        uid: &Uid,
        id: &str,
        patch: ConversationPatch,
        ctx: &Context,
    ) -> Result<ConversationDetail, StoreError>;
    /// Erases the conversation with its transcript and events; its action items and memories stay.
    async fn delete_conversation(
        &self,
        uid: &Uid,
        id: &str,
        ctx: &Context,
    ) -> Result<(), StoreError>;
}
