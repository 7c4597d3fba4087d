//! The embedded backend: one SQLite file in WAL mode.

mod accounts;
mod audit;
mod conversation_index;
mod idempotency;
mod inbox;
mod ingest;
mod log_restart;
mod memories;
mod omi_dev;
mod outbox;
mod pool;
mod recordings;
mod schema;
mod search;
mod ui;

pub use conversation_index::index_path as conversation_index_path;
pub use inbox::path as inbox_path;
pub use pool::{PoolOptions, Synchronous};

use async_trait::async_trait;
use std::path::Path;

use crate::domain::{
    Conversation, KeyId, Memory, MemoryId, MemoryVersion, Task, Timestamp, Uid, ValidationError,
};
use crate::store::*;
use pool::{File, Pool};

/// How many memories one purge transaction removes; keeps the write lock short.
const PURGE_BATCH: u32 = 500;

pub struct SqliteStore {
    /// The store's file: everything but the inbox.
    pool: Pool,
    /// The inbox's file, written by acknowledgements (see `inbox` for why it is apart).
    inbox: Pool,
    /// Users known to exist, so that an acknowledgement need not ask the store's readers, which may
    /// be busy for milliseconds. Users are removed here when deleted; one deleted by another process
    /// (the CLI) meanwhile is not re-created by a webhook, and what its events derive is dropped
    /// (`ingest::apply_event`).
    known_users: std::sync::RwLock<std::collections::HashSet<Uid>>,
}

impl SqliteStore {
    pub fn open(path: &Path, options: &PoolOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let inbox_path = inbox::path(path);
        let inbox = Pool::open(&inbox_path, options, File::Inbox)?;
        let pool = Pool::open(path, options, File::Store)?;
        inbox::settle(path, &inbox_path, options.busy_timeout)?;
        Ok(Self {
            pool,
            inbox,
            known_users: Default::default(),
        })
    }

    /// Whether the user is there, creating them when allowed.
    async fn ensure_user(&self, uid: &Uid, create: bool) -> Result<bool, StoreError> {
        if self
            .known_users
            .read()
            .is_ok_and(|known| known.contains(uid))
        {
            return Ok(true);
        }
        let exists = {
            let uid = uid.clone();
            self.pool
                .read(move |c| accounts::user_exists(c, &uid))
                .await?
        };
        if exists {
            self.remember_user(uid);
            return Ok(true);
        }
        if !create {
            return Ok(false);
        }
        let created = uid.clone();
        // Two first deliveries may race here; either one creates the user.
        match self
            .pool
            .write(move |c| accounts::create_user(c, &created))
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => {
                self.remember_user(uid);
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }

    fn remember_user(&self, uid: &Uid) {
        if let Ok(mut known) = self.known_users.write() {
            known.insert(uid.clone());
        }
    }
}

pub(crate) fn db_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, ReadOnly};
    match error.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | DiskFull | ReadOnly) => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Internal(error.to_string()),
    }
}

fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Turns a `limit + 1` query result into a page: the extra row only tells that there is more.
fn page_of<T>(
    items: &mut Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> crate::domain::Cursor,
) -> Page<T> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    Page {
        items: std::mem::take(items),
        next_cursor,
    }
}

/// A stored value that no longer parses means the file was changed behind our back.
fn stored<T>(parsed: Result<T, ValidationError>) -> rusqlite::Result<T> {
    parsed.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // Touches the schema on both paths: a reader, and the writer (which takes the write lock).
        fn probe(c: &rusqlite::Connection) -> Result<(), StoreError> {
            c.query_row("SELECT COUNT(*) FROM schema_migrations", [], |_| Ok(()))
                .map_err(db_error)
        }
        for pool in [&self.pool, &self.inbox] {
            pool.read(probe).await?;
            pool.write(probe).await?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.pool.path().display())
    }

    async fn create_user(&self, uid: &Uid) -> Result<User, StoreError> {
        let uid = uid.clone();
        self.pool
            .write(move |c| accounts::create_user(c, &uid))
            .await
    }

    async fn get_user(&self, uid: &Uid) -> Result<User, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| accounts::get_user(c, &uid)).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>, StoreError> {
        self.pool
            .read(move |c| accounts::list_users(c, &page))
            .await
    }

    async fn delete_user(&self, uid: &Uid) -> Result<(), StoreError> {
        if let Ok(mut known) = self.known_users.write() {
            known.remove(uid);
        }
        let uid = uid.clone();
        {
            let uid = uid.clone();
            self.pool
                .write(move |c| accounts::delete_user(c, &uid))
                .await?;
        }
        self.inbox.write(move |c| inbox::delete_user(c, &uid)).await
    }

    async fn create_key(
        &self,
        uid: &Uid,
        key: NewApiKey,
        ctx: &Context,
    ) -> Result<ApiKeyInfo, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| accounts::create_key(c, &uid, key, &ctx))
            .await
    }

    async fn list_keys(&self, uid: &Uid) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| accounts::list_keys(c, &uid)).await
    }

    async fn revoke_key(
        &self,
        uid: &Uid,
        key_id: KeyId,
        ctx: &Context,
    ) -> Result<ApiKeyInfo, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| accounts::revoke_key(c, &uid, key_id, &ctx))
            .await
    }

    async fn authenticate(&self, key_hash: &str) -> Result<Option<Principal>, StoreError> {
        let key_hash = key_hash.to_owned();
        self.pool
            .read(move |c| accounts::authenticate(c, &key_hash))
            .await
    }

    async fn touch_key(&self, uid: &Uid, key_id: KeyId, at: Timestamp) -> Result<(), StoreError> {
        let uid = uid.clone();
        self.pool
            .write(move |c| accounts::touch_key(c, &uid, key_id, at))
            .await
    }

    async fn create_memory(
        &self,
        uid: &Uid,
        new: NewMemory,
        ctx: &Context,
    ) -> Result<Created, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| memories::create(c, &uid, new, &ctx))
            .await
    }

    async fn create_memories(
        &self,
        uid: &Uid,
        new: Vec<NewMemory>,
        ctx: &Context,
    ) -> Result<Vec<Result<Created, StoreError>>, StoreError> {
        // One job per item: each runs in its own savepoint, all commit together.
        let jobs = new
            .into_iter()
            .map(|item| self.create_memory(uid, item, ctx));
        Ok(futures_util::future::join_all(jobs).await)
    }

    async fn get_memory(&self, uid: &Uid, id: MemoryId) -> Result<Memory, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| memories::get(c, &uid, id)).await
    }

    async fn list_memories(
        &self,
        uid: &Uid,
        query: &ListQuery,
    ) -> Result<Page<Memory>, StoreError> {
        let (uid, query) = (uid.clone(), query.clone());
        self.pool
            .read(move |c| memories::list(c, &uid, &query))
            .await
    }

    async fn update_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        expected_version: i64,
        patch: MemoryPatch,
        ctx: &Context,
    ) -> Result<Memory, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| memories::update(c, &uid, id, expected_version, patch, &ctx))
            .await
    }

    async fn delete_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        expected_version: Option<i64>,
        ctx: &Context,
    ) -> Result<Deleted, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| memories::delete(c, &uid, id, expected_version, &ctx))
            .await
    }

    async fn delete_memories(
        &self,
        uid: &Uid,
        ids: Vec<MemoryId>,
        ctx: &Context,
    ) -> Result<Vec<Result<Deleted, StoreError>>, StoreError> {
        let jobs = ids
            .into_iter()
            .map(|id| self.delete_memory(uid, id, None, ctx));
        Ok(futures_util::future::join_all(jobs).await)
    }

    async fn restore_memory(
        &self,
        uid: &Uid,
        id: MemoryId,
        ctx: &Context,
    ) -> Result<Memory, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| memories::restore(c, &uid, id, &ctx))
            .await
    }

    async fn memory_versions(
        &self,
        uid: &Uid,
        id: MemoryId,
    ) -> Result<Vec<MemoryVersion>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| memories::versions(c, &uid, id))
            .await
    }

    async fn purge_deleted(
        &self,
        uid: Option<&Uid>,
        deleted_before: Timestamp,
        ctx: &Context,
    ) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        loop {
            let (uid, ctx) = (uid.cloned(), ctx.clone());
            let purged = self
                .pool
                .write_background(move |c| {
                    memories::purge_batch(c, uid.as_ref(), deleted_before, PURGE_BATCH, &ctx)
                })
                .await?;
            report.purged += purged;
            if purged < u64::from(PURGE_BATCH) {
                return Ok(report);
            }
        }
    }

    async fn stats(&self, uid: &Uid) -> Result<Stats, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| memories::stats(c, &uid)).await
    }

    async fn audit_events(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| audit::page(c, &uid, &page)).await
    }

    async fn export_memories(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<ExportedMemory>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| memories::export_page(c, &uid, &page))
            .await
    }

    async fn import_memories(
        &self,
        uid: &Uid,
        records: Vec<ExportedMemory>,
        ctx: &Context,
    ) -> Result<ImportReport, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| memories::import(c, &uid, records, &ctx))
            .await
    }

    async fn idempotency_begin(
        &self,
        uid: &Uid,
        key: &str,
        fingerprint: &str,
        stale_before: Timestamp,
        expired_before: Timestamp,
    ) -> Result<IdempotencyBegin, StoreError> {
        let (uid, key, fingerprint) = (uid.clone(), key.to_owned(), fingerprint.to_owned());
        self.pool
            .write(move |c| {
                idempotency::begin(c, &uid, &key, &fingerprint, stale_before, expired_before)
            })
            .await
    }

    async fn idempotency_complete(
        &self,
        uid: &Uid,
        key: &str,
        response: StoredResponse,
    ) -> Result<(), StoreError> {
        let (uid, key) = (uid.clone(), key.to_owned());
        self.pool
            .write(move |c| idempotency::complete(c, &uid, &key, &response))
            .await
    }

    async fn idempotency_abandon(&self, uid: &Uid, key: &str) -> Result<(), StoreError> {
        let (uid, key) = (uid.clone(), key.to_owned());
        self.pool
            .write(move |c| idempotency::abandon(c, &uid, &key))
            .await
    }

    async fn idempotency_purge(&self, created_before: Timestamp) -> Result<u64, StoreError> {
        self.pool
            .write_background(move |c| idempotency::purge(c, created_before))
            .await
    }

    async fn ingest(
        &self,
        uid: &Uid,
        auto_create_user: bool,
        event: NewInboxEvent,
        transcript: Option<TranscriptWork>,
        ctx: &Context,
    ) -> Result<Ingested, StoreError> {
        if !self.ensure_user(uid, auto_create_user).await? {
            return Ok(Ingested::UnknownUser);
        }
        let processed = match transcript {
            None => None,
            // A transcript batch is answered with what it remembered, so it is processed first.
            Some(work) => {
                if let Some(key) = event.dedupe_key.clone() {
                    let (uid, kind) = (uid.clone(), event.kind);
                    let repeat = self
                        .inbox
                        .read(move |c| inbox::find_repeat(c, &uid, kind, &key))
                        .await?;
                    if let Some(repeat) = repeat {
                        return Ok(repeat);
                    }
                }
                let (uid, ctx) = (uid.clone(), ctx.clone());
                Some(
                    self.pool
                        .write(move |c| ingest::apply_transcript(c, &uid, work, &ctx))
                        .await?,
                )
            }
        };
        let uid = uid.clone();
        self.inbox
            .write(move |c| inbox::record(c, &uid, ingest::new_id(), event, processed))
            .await
    }

    async fn due_events(&self, now: Timestamp, limit: u32) -> Result<Vec<DueEvent>, StoreError> {
        self.inbox.read(move |c| inbox::due(c, now, limit)).await
    }

    async fn complete_event(
        &self,
        uid: &Uid,
        id: &str,
        work: EventWork,
        ctx: &Context,
    ) -> Result<bool, StoreError> {
        let (uid, id, ctx) = (uid.clone(), id.to_owned(), ctx.clone());
        let pending = {
            let (uid, id) = (uid.clone(), id.clone());
            self.inbox
                .read(move |c| inbox::pending(c, &uid, &id))
                .await?
        };
        let Some(event) = pending else {
            return Ok(false);
        };
        let applied = {
            let (uid, id) = (uid.clone(), id.clone());
            self.pool
                .write_background(move |c| ingest::apply_event(c, &uid, &id, event, work, &ctx))
                .await?
        };
        self.inbox
            .write_background(move |c| inbox::mark_done(c, &uid, &id))
            .await?;
        Ok(applied)
    }

    async fn fail_event(
        &self,
        uid: &Uid,
        id: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let (uid, id, error) = (uid.clone(), id.to_owned(), error.to_owned());
        self.inbox
            .write_background(move |c| inbox::fail(c, &uid, &id, &error, retry_at))
            .await
    }

    async fn inbox(
        &self,
        state: InboxState,
        page: PageRequest,
    ) -> Result<Page<InboxEntry>, StoreError> {
        self.inbox.read(move |c| inbox::list(c, state, &page)).await
    }

    async fn retry_event(&self, id: &str) -> Result<InboxEntry, StoreError> {
        let id = id.to_owned();
        self.inbox.write(move |c| inbox::retry(c, &id)).await
    }

    async fn forget_done_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let forgotten = self
            .inbox
            .write_background(move |c| inbox::forget_done(c, before))
            .await?;
        self.pool
            .write_background(move |c| ingest::forget_applied(c, before))
            .await?;
        Ok(forgotten)
    }

    async fn is_setup(&self, uid: &Uid) -> Result<bool, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| ingest::is_setup(c, &uid)).await
    }

    async fn conversations(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<Conversation>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| ingest::conversations(c, &uid, &page))
            .await
    }

    async fn conversation(&self, uid: &Uid, id: &str) -> Result<ConversationDetail, StoreError> {
        let (uid, id) = (uid.clone(), id.to_owned());
        self.pool
            .read(move |c| ingest::conversation(c, &uid, &id))
            .await
    }

    async fn tasks(
        &self,
        uid: &Uid,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| ingest::tasks(c, &uid, &filter, &page))
            .await
    }

    async fn update_task(
        &self,
        uid: &Uid,
        id: &str,
        patch: TaskPatch,
        ctx: &Context,
    ) -> Result<Task, StoreError> {
        let (uid, id, ctx) = (uid.clone(), id.to_owned(), ctx.clone());
        self.pool
            .write(move |c| ingest::update_task(c, &uid, &id, patch, &ctx))
            .await
    }

    async fn seen_event(
        &self,
        uid: &Uid,
        kind: EventKind,
        dedupe_key: &str,
    ) -> Result<bool, StoreError> {
        let (uid, key) = (uid.clone(), dedupe_key.to_owned());
        self.inbox
            .read(move |c| inbox::seen(c, &uid, kind, &key))
            .await
    }

    async fn current_recording(
        &self,
        uid: &Uid,
        sample_rate: u32,
        continues_after: Timestamp,
    ) -> Result<Option<Recording>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| recordings::current(c, &uid, sample_rate, continues_after))
            .await
    }

    async fn start_recording(&self, uid: &Uid, recording: Recording) -> Result<(), StoreError> {
        let uid = uid.clone();
        self.pool
            .write(move |c| recordings::start(c, &uid, &recording))
            .await
    }

    async fn recording_appended(
        &self,
        uid: &Uid,
        id: &str,
        bytes: i64,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (uid, id) = (uid.clone(), id.to_owned());
        self.pool
            .write(move |c| recordings::appended(c, &uid, &id, bytes, at))
            .await
    }

    async fn recording_usage(&self, uid: &Uid) -> Result<i64, StoreError> {
        let uid = uid.clone();
        self.pool.read(move |c| recordings::usage(c, &uid)).await
    }

    async fn recordings(
        &self,
        uid: &Uid,
        page: PageRequest,
    ) -> Result<Page<Recording>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| recordings::list(c, &uid, &page))
            .await
    }

    async fn recording(&self, uid: &Uid, id: &str) -> Result<Recording, StoreError> {
        let (uid, id) = (uid.clone(), id.to_owned());
        self.pool.read(move |c| recordings::get(c, &uid, &id)).await
    }

    async fn expire_recordings(&self, before: Timestamp) -> Result<Vec<String>, StoreError> {
        self.pool
            .write_background(move |c| recordings::expire(c, before))
            .await
    }

    async fn recording_files(&self, uid: &Uid) -> Result<Vec<String>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| recordings::files_of_user(c, &uid))
            .await
    }

    async fn memories_by_ids(
        &self,
        uid: &Uid,
        ids: &[MemoryId],
    ) -> Result<Vec<Memory>, StoreError> {
        let (uid, ids) = (uid.clone(), ids.to_vec());
        self.pool
            .read(move |c| search::memories_by_ids(c, &uid, &ids))
            .await
    }

    async fn filtered_memory_ids(
        &self,
        uid: &Uid,
        filter: &SearchFilter,
    ) -> Result<Vec<MemoryId>, StoreError> {
        let (uid, filter) = (uid.clone(), filter.clone());
        self.pool
            .read(move |c| search::filtered_memory_ids(c, &uid, &filter))
            .await
    }

    async fn search_conversations(
        &self,
        uid: &Uid,
        fts_query: &str,
        limit: u32,
    ) -> Result<Vec<ConversationHit>, StoreError> {
        // The index follows the store a moment later: a search waits for the writes before it.
        let queued = self
            .pool
            .read(|c| conversation_index::last_queued(c, "main"))
            .await?;
        if let Some(index) = self.pool.conversation_index() {
            index.caught_up(queued).await;
        }
        let (uid, fts_query) = (uid.clone(), fts_query.to_owned());
        self.pool
            .read(move |c| search::search_conversations(c, &uid, &fts_query, limit))
            .await
    }

    async fn search_generation(&self, uid: &Uid) -> Result<i64, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| search::search_generation(c, &uid))
            .await
    }

    async fn search_changes(
        &self,
        uid: &Uid,
        since: i64,
    ) -> Result<Option<Vec<MemoryId>>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| search::search_changes(c, &uid, since))
            .await
    }

    async fn searchable_memories(
        &self,
        uid: &Uid,
        model: Option<&VectorModel>,
        only: Option<&[MemoryId]>,
    ) -> Result<Vec<SearchableMemory>, StoreError> {
        let (uid, model, only) = (uid.clone(), model.cloned(), only.map(<[MemoryId]>::to_vec));
        self.pool
            .read(move |c| search::searchable_memories(c, &uid, model.as_ref(), only.as_deref()))
            .await
    }

    async fn enqueue_stale_embeddings(&self, model: &VectorModel) -> Result<u64, StoreError> {
        let model = model.clone();
        self.pool
            .write_background(move |c| search::enqueue_stale(c, &model))
            .await
    }

    async fn embedding_backlog(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<EmbeddingJob>, StoreError> {
        self.pool
            .read(move |c| search::backlog(c, now, limit))
            .await
    }

    async fn save_embeddings(
        &self,
        model: &VectorModel,
        results: Vec<(EmbeddingJob, EmbeddingOutcome)>,
    ) -> Result<(), StoreError> {
        let model = model.clone();
        self.pool
            .write_background(move |c| search::save_embeddings(c, &model, results))
            .await
    }

    async fn embedding_status(
        &self,
        uid: &Uid,
        id: MemoryId,
        model: Option<&VectorModel>,
    ) -> Result<EmbeddingStatus, StoreError> {
        let (uid, model) = (uid.clone(), model.cloned());
        self.pool
            .read(move |c| search::embedding_status(c, &uid, id, model.as_ref()))
            .await
    }

    async fn embedding_counts(
        &self,
        uid: &Uid,
        model: Option<&VectorModel>,
    ) -> Result<EmbeddingCounts, StoreError> {
        let (uid, model) = (uid.clone(), model.cloned());
        self.pool
            .read(move |c| search::embedding_counts(c, &uid, model.as_ref()))
            .await
    }

    async fn omi_sync_settings(&self, uid: &Uid) -> Result<SyncSettings, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| outbox::sync_settings(c, &uid))
            .await
    }

    async fn set_omi_sync_settings(
        &self,
        uid: &Uid,
        settings: SyncSettings,
    ) -> Result<SyncSettings, StoreError> {
        let uid = uid.clone();
        self.pool
            .write(move |c| outbox::set_sync_settings(c, &uid, settings))
            .await
    }

    async fn due_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        self.pool.read(move |c| outbox::due(c, now, limit)).await
    }

    async fn settle_outbox(
        &self,
        outcomes: Vec<(Uid, String, OutboxOutcome)>,
    ) -> Result<(), StoreError> {
        self.pool
            .write_background(move |c| outbox::settle(c, outcomes))
            .await
    }

    async fn outbox(
        &self,
        state: OutboxState,
        page: PageRequest,
    ) -> Result<Page<OutboxEntry>, StoreError> {
        self.pool.read(move |c| outbox::list(c, state, &page)).await
    }

    async fn retry_outbox(&self, id: &str) -> Result<OutboxEntry, StoreError> {
        let id = id.to_owned();
        self.pool.write(move |c| outbox::retry(c, &id)).await
    }

    async fn outbox_counts(&self, uid: Option<&Uid>) -> Result<OutboxCounts, StoreError> {
        let uid = uid.cloned();
        self.pool
            .read(move |c| outbox::counts(c, uid.as_ref()))
            .await
    }

    async fn forget_delivered_outbox(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.pool
            .write_background(move |c| outbox::forget_delivered(c, before))
            .await
    }

    async fn omi_pull_checkpoint(
        &self,
        uid: &Uid,
        resource: &str,
    ) -> Result<Option<u32>, StoreError> {
        let (uid, resource) = (uid.clone(), resource.to_owned());
        self.pool
            .read(move |c| outbox::checkpoint(c, &uid, &resource))
            .await
    }

    async fn set_omi_pull_checkpoint(
        &self,
        uid: &Uid,
        resource: &str,
        next_offset: Option<u32>,
    ) -> Result<(), StoreError> {
        let (uid, resource) = (uid.clone(), resource.to_owned());
        self.pool
            .write(move |c| outbox::set_checkpoint(c, &uid, &resource, next_offset))
            .await
    }

    async fn save_pulled_tasks(
        &self,
        uid: &Uid,
        tasks: Vec<crate::domain::NewTask>,
    ) -> Result<u64, StoreError> {
        let uid = uid.clone();
        self.pool
            .write(move |c| outbox::save_tasks(c, &uid, tasks))
            .await
    }

    async fn record_omi_status(
        &self,
        upstream: &str,
        status: serde_json::Value,
    ) -> Result<(), StoreError> {
        let upstream = upstream.to_owned();
        self.pool
            .write_background(move |c| outbox::record_status(c, &upstream, &status))
            .await
    }

    async fn omi_statuses(&self) -> Result<Vec<UpstreamStatus>, StoreError> {
        self.pool.read(outbox::statuses).await
    }
    async fn create_ui_session(
        &self,
        uid: &Uid,
        session: NewUiSession,
        ctx: &Context,
    ) -> Result<UiSession, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| ui::create_session(c, &uid, session, &ctx))
            .await
    }

    async fn ui_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<UiSession>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.pool
            .read(move |c| ui::session(c, &token_hash, now))
            .await
    }

    async fn end_ui_session(
        &self,
        uid: &Uid,
        token_hash: &str,
        ctx: &Context,
    ) -> Result<(), StoreError> {
        let (uid, token_hash, ctx) = (uid.clone(), token_hash.to_owned(), ctx.clone());
        self.pool
            .write(move |c| ui::end_session(c, &uid, &token_hash, &ctx))
            .await
    }

    async fn memories_per_week(
        &self,
        uid: &Uid,
        since: Timestamp,
    ) -> Result<Vec<WeekCount>, StoreError> {
        let uid = uid.clone();
        self.pool
            .read(move |c| ui::memories_per_week(c, &uid, since))
            .await
    }

    // Omi-compatible surfaces (omi-dialect).
    async fn memories_by_score(
        &self,
        uid: &Uid,
        query: &ScoredMemoryQuery,
    ) -> Result<Vec<Memory>, StoreError> {
        let (uid, query) = (uid.clone(), query.clone());
        self.pool
            .read(move |c| omi_dev::memories_by_score(c, &uid, &query))
            .await
    }

    async fn find_tasks(&self, uid: &Uid, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        let (uid, query) = (uid.clone(), query.clone());
        self.pool
            .read(move |c| omi_dev::find_tasks(c, &uid, &query))
            .await
    }

    async fn create_tasks(
        &self,
        uid: &Uid,
        tasks: Vec<crate::domain::NewTask>,
        ctx: &Context,
    ) -> Result<Vec<Task>, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| omi_dev::create_tasks(c, &uid, tasks, &ctx))
            .await
    }

    async fn delete_task(&self, uid: &Uid, id: &str, ctx: &Context) -> Result<(), StoreError> {
        let (uid, id, ctx) = (uid.clone(), id.to_owned(), ctx.clone());
        self.pool
            .write(move |c| omi_dev::delete_task(c, &uid, &id, &ctx))
            .await
    }

    async fn find_conversations(
        &self,
        uid: &Uid,
        query: &ConversationQuery,
    ) -> Result<Vec<ConversationDetail>, StoreError> {
        let (uid, query) = (uid.clone(), query.clone());
        self.pool
            .read(move |c| omi_dev::find_conversations(c, &uid, &query))
            .await
    }

    async fn create_conversation(
        &self,
        uid: &Uid,
        new: NewConversation,
        ctx: &Context,
    ) -> Result<ConversationCreated, StoreError> {
        let (uid, ctx) = (uid.clone(), ctx.clone());
        self.pool
            .write(move |c| omi_dev::create_conversation(c, &uid, new, &ctx))
            .await
    }

    async fn update_conversation(
        &self,
        uid: &Uid,
        id: &str,
        patch: ConversationPatch,
        ctx: &Context,
    ) -> Result<ConversationDetail, StoreError> {
        let (uid, id, ctx) = (uid.clone(), id.to_owned(), ctx.clone());
        self.pool
            .write(move |c| omi_dev::update_conversation(c, &uid, &id, patch, &ctx))
            .await
    }

    async fn delete_conversation(
        &self,
        uid: &Uid,
        id: &str,
        ctx: &Context,
    ) -> Result<(), StoreError> {
        let (uid, id, ctx) = (uid.clone(), id.to_owned(), ctx.clone());
        self.pool
            .write(move |c| omi_dev::delete_conversation(c, &uid, &id, &ctx))
            .await
    }
}
