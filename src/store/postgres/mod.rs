//! The shared backend: PostgreSQL (15+), for several stateless instances over one database.
//!
//! Each operation is one transaction on a pooled connection. What SQLite gets from its single writer,
//! this backend gets from the database: every write of one user first locks that user's row
//! ([`accounts::lock_user`]), so one user's writes are ordered across instances; unique constraints
//! make content dedupe, webhook dedupe and idempotency hold however many instances race; queue
//! workers claim work with `FOR UPDATE SKIP LOCKED` and a lease, so a dead instance's work returns.
//! Transactions PostgreSQL aborts for a deadlock or serialization failure are run again.

mod accounts;
mod audit;
mod idempotency;
mod ingest;
mod memories;
mod omi_dev;
mod outbox;
mod recordings;
mod rows;
mod schema;
mod search;
mod ui;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

use crate::domain::{Conversation, KeyId, Memory, MemoryId, MemoryVersion, Task, Timestamp, Uid};
use crate::store::*;

pub use rows::db_error;

/// How many memories one purge transaction removes; keeps locks short.
const PURGE_BATCH: i64 = 500;
/// Attempts of a transaction PostgreSQL aborted for a deadlock or serialization failure.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections this instance keeps open at most.
    pub max_connections: u32,
    /// How long a worker owns the inbox events it claimed; after that (it died) others take them.
    pub claim_lease: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            claim_lease: Duration::from_secs(60),
        }
    }
}

pub struct PostgresStore {
    pool: PgPool,
    options: PgOptions,
    described: String,
    /// This instance's name in `inbox_events.claimed_by`: shows which instance did which work.
    instance: String,
}

impl PostgresStore {
    /// Connects, and applies the migrations this database has not seen yet.
    pub async fn open(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        schema::migrate(&pool).await?;
        Ok(Self {
            pool,
            options,
            described: describe(url),
            instance: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// The pool, for tools that move whole tables (`migrate-data`).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The URL without its password, for start-up output.
fn describe(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "postgres".into(),
    }
}

/// Runs `$body` (a future using the connection `$c`) in a transaction and commits it; runs it again
/// when PostgreSQL aborted it as a deadlock victim or for a serialization failure. A macro rather than
/// a function taking a closure: the body borrows the caller's arguments, which a boxed future handed
/// to a higher-ranked closure cannot.
macro_rules! transaction {
    ($store:expr, |$c:ident| $body:expr) => {{
        let mut attempt = 1u32;
        loop {
            let mut tx = $store.pool.begin().await.map_err(db_error)?;
            let result = {
                let $c: &mut sqlx::PgConnection = &mut tx;
                $body.await
            };
            let result = match result {
                Ok(value) => tx.commit().await.map(|()| value).map_err(db_error),
                Err(error) => {
                    let _ = tx.rollback().await;
                    Err(error)
                }
            };
            match result {
                Err(error) if rows::is_transient(&error) && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, %error, "transaction aborted by PostgreSQL; running it again");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

/// Runs `$body` on a pooled connection outside an explicit transaction (reads).
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let mut conn = $store.pool.acquire().await.map_err(db_error)?;
        let $c: &mut sqlx::PgConnection = &mut conn;
        $body.await
    }};
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT COUNT(*) FROM schema_migrations")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    async fn create_user(&self, uid: &Uid) -> Result<User, StoreError> {
        transaction!(self, |c| accounts::create_user(c, uid))
    }

    async fn get_user(&self, uid: &Uid) -> Result<User, StoreError> {
        read!(self, |c| accounts::get_user(c, uid))
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, StoreError> {
        read!(self, |c| accounts::list_users(c, &page))
    }

    async fn delete_user(&self, uid: &Uid) -> Result<(), StoreError> {
        transaction!(self, |c| accounts::delete_user(c, uid))
    }

    async fn create_key(
        &self,
        uid: &Uid,
        key: NewApiKey,
        ctx: &Context,
    ) -> Result<ApiKeyInfo, StoreError> {
        transaction!(self, |c| accounts::create_key(c, uid, &key, ctx))
    }

    async fn list_keys(&self, uid: &Uid) -> Result<Vec<ApiKeyInfo>, StoreError> {
        read!(self, |c| accounts::list_keys(c, uid))
    }

    async fn revoke_key(
        &self,
        uid: &Uid,
        key_id: KeyId,
        ctx: &Context,
    ) -> Result<ApiKeyInfo, StoreError> {
        transaction!(self, |c| accounts::revoke_key(c, uid, key_id, ctx))
    }

    async fn authenticate(&self, key_hash: &str) -> Result<Option<Principal>, StoreError> {
        read!(self, |c| accounts::authenticate(c, key_hash))
    }

    async fn touch_key(&self, uid: &Uid, key_id: KeyId, at: Timestamp) -> Result<(), StoreError> {
        read!(self, |c| accounts::touch_key(c, uid, key_id, at))
    }

    async fn create_memory(
        &self,
        uid: &Uid,
        new: NewMemory,
        ctx: &Context,
    ) -> Result<Created, StoreError> {
        transaction!(self, |c| memories::create(c, uid, new.clone(), ctx))
    }

    async fn create_memories(
        &self,
        uid: &Uid,
        new: Vec<NewMemory>,
        ctx: &Context,
    ) -> Result<Vec<Result<Created, StoreError>>, StoreError> {
        // Each item in its own transaction: one item's failure leaves the others.
        let mut out = Vec::with_capacity(new.len());
        for item in new {
            out.push(self.create_memory(uid, item, ctx).await);
        }
        Ok(out)
    }

    async fn get_memory(&self, uid: &Uid, id: MemoryId) -> Result<Memory, StoreError> {
        read!(self, |c| memories::get(c, uid, id))
    }

    async fn list_memories(
        &self,
        uid: &Uid,
        query: &ListQuery,
    ) -> Result<Page<Memory>, StoreError> {
        read!(self, |c| memories::list(c, uid, query))
    }

    async fn update_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        expected_version: i64,
        patch: MemoryPatch,
        ctx: &Context,
    ) -> Result<Memory, StoreError> {
        transaction!(self, |c| memories::update(
            c,
            uid,
            id,
            expected_version,
            patch.clone(),
            ctx
        ))
    }

    async fn delete_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<Deleted, StoreError> {
        transaction!(self, |c| memories::delete(
            c,
            uid,
            id,
            expected_version,
            ctx
        ))
    }

    async fn delete_memories(
        &self,
        uid: &Uid,
        ids: Vec<MemoryId>,
        ctx: &Context,
    ) -> Result<Vec<Result<Deleted, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.delete_memory(uid, id, None, ctx).await);
        }
        Ok(out)
    }

    async fn restore_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        ctx: &Context,
    ) -> Result<Memory, StoreError> {
        transaction!(self, |c| memories::restore(c, uid, id, ctx))
    }

    async fn memory_versions(
        &self,
        uid: &Uid,
        id: MemoryId,
    ) -> Result<Vec<MemoryVersion>, StoreError> {
        read!(self, |c| memories::versions(c, uid, id))
    }

    async fn purge_deleted(
        &self,
        uid: Option<&Uid>,
        deleted_before: Timestamp,
        ctx: &Context,
    ) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        loop {
            let purged = transaction!(self, |c| memories::purge_batch(
                c,
                uid,
                deleted_before,
                PURGE_BATCH,
                ctx
            ))?;
            report.purged += purged;
            if purged < PURGE_BATCH as u64 {
                return Ok(report);
            }
        }
    }

    async fn stats(&self, uid: &Uid) -> Result<Stats, StoreError> {
        read!(self, |c| memories::stats(c, uid))
    }

    async fn audit_events(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        read!(self, |c| audit::page(c, uid, &page))
    }

    async fn export_memories(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<ExportedMemory>, StoreError> {
        read!(self, |c| memories::export_page(c, uid, &page))
    }

    async fn import_memories(
        &self,
        uid: &Uid,
        records: Vec<ExportedMemory>,
        ctx: &Context,
    ) -> Result<ImportReport, StoreError> {
        transaction!(self, |c| memories::import(c, uid, records.clone(), ctx))
    }

    async fn idempotency_begin(
        &self,
        uid: &Uid,
        key: &str,
        fingerprint: &str,
        stale_before: Timestamp,
        expired_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        transaction!(self, |c| idempotency::begin(
            c,
            uid,
            key,
            fingerprint,
            stale_before,
            expired_before
        ))
    }

    async fn idempotency_complete(
        &self,
        uid: &Uid,
        key: &str,
        response: StoredResponse,
    ) -> Result<(), StoreError> {
        read!(self, |c| idempotency::complete(c, uid, key, &response))
    }

    async fn idempotency_abandon(&self, uid: &Uid, key: &str) -> Result<(), StoreError> {
        read!(self, |c| idempotency::abandon(c, uid, key))
    }

    async fn idempotency_purge(&self, created_before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| idempotency::purge(c, created_before))
    }

    async fn ingest(
        &self,
        uid: &Uid,
        auto_create_user: bool,
        event: NewInboxEvent,
        transcript: Option<TranscriptWork>,
        ctx: &Context,
    ) -> Result<Ingested, StoreError> {
        transaction!(self, |c| ingest::ingest(
            c,
            uid,
            auto_create_user,
            event.clone(),
            transcript.clone(),
            ctx
        ))
    }

    async fn due_events(&self, now: Timestamp, limit: u32) -> Result<Vec<DueEvent>, StoreError> {
        let lease = i64::try_from(self.options.claim_lease.as_micros()).unwrap_or(i64::MAX);
        transaction!(self, |c| ingest::claim_due(
            c,
            &self.instance,
            now,
            lease,
            limit
        ))
    }

    async fn complete_event(
        &self,
        uid: &Uid,
        id: &str,
        work: EventWork,
        ctx: &Context,
    ) -> Result<bool, StoreError> {
        transaction!(self, |c| ingest::complete(c, uid, id, work.clone(), ctx))
    }

    async fn fail_event(
        &self,
        uid: &Uid,
        id: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        read!(self, |c| ingest::fail(c, uid, id, error, retry_at))
    }

    async fn inbox(
        &self,
        state: InboxState,
        page: PageRequest,
    ) -> Result<Page<InboxEntry>, StoreError> {
        read!(self, |c| ingest::list(c, state, &page))
    }

    async fn retry_event(&self, id: &str) -> Result<InboxEntry, StoreError> {
        transaction!(self, |c| ingest::retry(c, id))
    }

    async fn forget_done_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| ingest::forget_done(c, before))
    }

    async fn is_setup(&self, uid: &Uid) -> Result<bool, StoreError> {
        read!(self, |c| accounts::user_exists(c, uid))
    }

    async fn conversations(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<Conversation>, StoreError> {
        read!(self, |c| ingest::conversations(c, uid, &page))
    }

    async fn conversation(&self, uid: &Uid, id: &str) -> Result<ConversationDetail, StoreError> {
        read!(self, |c| ingest::conversation(c, uid, id))
    }

    async fn tasks(
        &self,
        uid: &Uid,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        read!(self, |c| ingest::tasks(c, uid, &filter, &page))
    }

    async fn update_task(
        &self,
        uid: &Uid,
        id: &str,
        patch: TaskPatch,
        ctx: &Context,
    ) -> Result<Task, StoreError> {
        transaction!(self, |c| ingest::update_task(
            c,
            uid,
            id,
            patch.clone(),
            ctx
        ))
    }

    async fn seen_event(
        &self,
        uid: &Uid,
        kind: EventKind,
        dedupe_key: &str,
    ) -> Result<bool, StoreError> {
        read!(self, |c| ingest::seen(c, uid, kind, dedupe_key))
    }

    async fn current_recording(
        &self,
        uid: &Uid,
        sample_rate: u32,
        continues_after: Timestamp,
    ) -> Result<Option<Recording>, StoreError> {
        read!(self, |c| recordings::current(
            c,
            uid,
            sample_rate,
            continues_after
        ))
    }

    async fn start_recording(&self, uid: &Uid, recording: Recording) -> Result<(), StoreError> {
        read!(self, |c| recordings::start(c, uid, &recording))
    }

    async fn recording_appended(
        &self,
        uid: &Uid,
        id: &str,
        bytes: i64,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        read!(self, |c| recordings::appended(c, uid, id, bytes, at))
    }

    async fn recording_usage(&self, uid: &Uid) -> Result<i64, StoreError> {
        read!(self, |c| recordings::usage(c, uid))
    }

    async fn recordings(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<Recording>, StoreError> {
        read!(self, |c| recordings::list(c, uid, &page))
    }

    async fn recording(&self, uid: &Uid, id: &str) -> Result<Recording, StoreError> {
        read!(self, |c| recordings::get(c, uid, id))
    }

    async fn expire_recordings(&self, before: Timestamp) -> Result<Vec<String>, StoreError> {
        read!(self, |c| recordings::expire(c, before))
    }

    async fn recording_files(&self, uid: &Uid) -> Result<Vec<String>, StoreError> {
        read!(self, |c| recordings::files_of_user(c, uid))
    }

    async fn memories_by_ids(
        &self,
        uid: &Uid,
        ids: &[MemoryId],
    ) -> Result<Vec<Memory>, StoreError> {
        read!(self, |c| search::memories_by_ids(c, uid, ids))
    }

    async fn filtered_memory_ids(
        &self,
        uid: &Uid,
        filter: &SearchFilter,
    ) -> Result<Vec<MemoryId>, StoreError> {
        read!(self, |c| search::filtered_memory_ids(c, uid, filter))
    }

    async fn search_conversations(
        &self,
        uid: &Uid,
        fts_query: &str,
        limit: u32,
    ) -> Result<Vec<ConversationHit>, StoreError> {
        read!(self, |c| search::search_conversations(
            c, uid, fts_query, limit
        ))
    }

    async fn search_generation(&self, uid: &Uid) -> Result<i64, StoreError> {
        read!(self, |c| search::search_generation(c, uid))
    }

    async fn search_changes(
        &self,
        uid: &Uid,
        since: i64,
    ) -> Result<Option<Vec<MemoryId>>, StoreError> {
        read!(self, |c| search::search_changes(c, uid, since))
    }

    async fn searchable_memories(
        &self,
        uid: &Uid,
        model: Option<&VectorModel>,
        only: Option<&[MemoryId]>,
    ) -> Result<Vec<SearchableMemory>, StoreError> {
        read!(self, |c| search::searchable_memories(c, uid, model, only))
    }

    async fn enqueue_stale_embeddings(&self, model: &VectorModel) -> Result<u64, StoreError> {
        read!(self, |c| search::enqueue_stale(c, model))
    }

    async fn embedding_backlog(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<EmbeddingJob>, StoreError> {
        let lease = i64::try_from(self.options.claim_lease.as_micros()).unwrap_or(i64::MAX);
        transaction!(self, |c| search::claim_backlog(c, now, lease, limit))
    }

    async fn save_embeddings(
        &self,
        model: &VectorModel,
        results: Vec<(EmbeddingJob, EmbeddingOutcome)>,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| search::save_embeddings(c, model, results.clone()))
    }

    async fn embedding_status(
        &self,
        uid: &Uid,
        id: MemoryId,
        model: Option<&VectorModel>,
    ) -> Result<EmbeddingStatus, StoreError> {
        read!(self, |c| search::embedding_status(c, uid, id, model))
    }

    async fn embedding_counts(
        &self,
        uid: &Uid,
        model: Option<&VectorModel>,
    ) -> Result<EmbeddingCounts, StoreError> {
        read!(self, |c| search::embedding_counts(c, uid, model))
    }

    // Omi client (omi-client): the outbox of writes to Omi, sync settings, pull checkpoints.
    async fn omi_sync_settings(&self, uid: &Uid) -> Result<SyncSettings, StoreError> {
        read!(self, |c| outbox::sync_settings(c, uid))
    }

    async fn set_omi_sync_settings(
        &self,
        uid: &Uid,
        settings: SyncSettings,
    ) -> Result<SyncSettings, StoreError> {
        transaction!(self, |c| outbox::set_sync_settings(
            c,
            uid,
            settings.clone()
        ))
    }

    async fn due_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        let lease = i64::try_from(self.options.claim_lease.as_micros()).unwrap_or(i64::MAX);
        transaction!(self, |c| outbox::claim_due(
            c,
            &self.instance,
            now,
            lease,
            limit
        ))
    }

    async fn settle_outbox(
        &self,
        outcomes: Vec<(Uid, String, OutboxOutcome)>,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| outbox::settle(c, outcomes.clone()))
    }

    async fn outbox(
        &self,
        state: OutboxState,
        page: PageRequest,
    ) -> Result<Page<OutboxEntry>, StoreError> {
        read!(self, |c| outbox::list(c, state, &page))
    }

    async fn retry_outbox(&self, id: &str) -> Result<OutboxEntry, StoreError> {
        transaction!(self, |c| outbox::retry(c, id))
    }

    async fn outbox_counts(&self, uid: Option<&Uid>) -> Result<OutboxCounts, StoreError> {
        read!(self, |c| outbox::counts(c, uid))
    }

    async fn forget_delivered_outbox(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| outbox::forget_delivered(c, before))
    }

    async fn omi_pull_checkpoint(
        &self,
        uid: &Uid,
        resource: &str,
    ) -> Result<Option<u32>, StoreError> {
        read!(self, |c| outbox::checkpoint(c, uid, resource))
    }

    async fn set_omi_pull_checkpoint(
        &self,
        uid: &Uid,
        resource: &str,
        next_offset: Option<u32>,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| outbox::set_checkpoint(
            c,
            uid,
            resource,
            next_offset
        ))
    }

    async fn save_pulled_tasks(
        &self,
        uid: &Uid,
        tasks: Vec<crate::domain::NewTask>,
    ) -> Result<u64, StoreError> {
        transaction!(self, |c| outbox::save_tasks(c, uid, tasks.clone()))
    }

    async fn record_omi_status(
        &self,
        upstream: &str,
        status: serde_json::Value,
    ) -> Result<(), StoreError> {
        read!(self, |c| outbox::record_status(c, upstream, &status))
    }

    async fn omi_statuses(&self) -> Result<Vec<UpstreamStatus>, StoreError> {
        read!(self, |c| outbox::statuses(c))
    }

    // App home (web UI): browser sessions, and counts for its charts.
    async fn create_ui_session(
        &self,
        uid: &Uid,
        session: NewUiSession,
        ctx: &Context,
    ) -> Result<UiSession, StoreError> {
        transaction!(self, |c| ui::create_session(c, uid, session.clone(), ctx))
    }

    async fn ui_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<UiSession>, StoreError> {
        read!(self, |c| ui::session(c, token_hash, now))
    }

    async fn end_ui_session(
        &self,
        uid: &Uid,
        token_hash: &str,
        ctx: &Context,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| ui::end_session(c, uid, token_hash, ctx))
    }

    async fn memories_per_week(
        &self,
        uid: &Uid,
        since: Timestamp,
    ) -> Result<Vec<WeekCount>, StoreError> {
        read!(self, |c| ui::memories_per_week(c, uid, since))
    }

    // Omi-compatible surfaces (omi-dialect): the Developer API, chat tools and MCP.
    async fn memories_by_score(
        &self,
        uid: &Uid,
        query: &ScoredMemoryQuery,
    ) -> Result<Vec<Memory>, StoreError> {
        read!(self, |c| omi_dev::memories_by_score(c, uid, query))
    }

    async fn find_tasks(&self, uid: &Uid, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        read!(self, |c| omi_dev::find_tasks(c, uid, query))
    }

    async fn create_tasks(
        &self,
        uid: &Uid,
        tasks: Vec<NewTask>,
        ctx: &Context,
    ) -> Result<Vec<Task>, StoreError> {
        transaction!(self, |c| omi_dev::create_tasks(c, uid, tasks.clone(), ctx))
    }

    async fn delete_task(&self, uid: &Uid, id: &str, ctx: &Context) -> Result<(), StoreError> {
        transaction!(self, |c| omi_dev::delete_task(c, uid, id, ctx))
    }

    async fn find_conversations(
        &self,
        uid: &Uid,
        query: &ConversationQuery,
    ) -> Result<Vec<ConversationDetail>, StoreError> {
        read!(self, |c| omi_dev::find_conversations(c, uid, query))
    }

    async fn create_conversation(
        &self,
        uid: &Uid,
        new: NewConversation,
        ctx: &Context,
    ) -> Result<ConversationCreated, StoreError> {
        transaction!(self, |c| omi_dev::create_conversation(
            c,
            uid,
            new.clone(),
            ctx
        ))
    }

    async fn update_conversation(
        &self,
        uid: &Uid,
        id: &str,
        patch: ConversationPatch,
        ctx: &Context,
    ) -> Result<ConversationDetail, StoreError> {
        transaction!(self, |c| omi_dev::update_conversation(
            c,
            uid,
            id,
            patch.clone(),
            ctx
        ))
    }

    async fn delete_conversation(
        &self,
        uid: &Uid,
        id: &str,
        ctx: &Context,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| omi_dev::delete_conversation(c, uid, id, ctx))
    }
}
