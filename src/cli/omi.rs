//! `omi` commands: the connection's status, the outbox of writes to Omi, a user's sync settings, and
//! `pull`, which backfills a user's memories, conversations and action items from Omi.

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use indicatif::ProgressBar;
use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::Arc;

use super::CliError;
use super::output::Output;
use crate::config::Config;
use crate::domain::{
    Category, Content, Metadata, NewTask, Source, Tag, Tags, TaskDescription, Timestamp, Uid,
};
use crate::omi::client::types::{ConversationFilter, OmiActionItem, OmiMemory, TaskFilter};
use crate::omi::client::{OmiClient, OmiError};
use crate::queue::inbox::InboxWorker;
use crate::store::{
    Context, Created, EventKind, Ingested, NewInboxEvent, NewMemory, NotifyEvent, OutboxState,
    Store, SyncSettings,
};

#[derive(Debug, Subcommand)]
pub enum OmiCommand {
    /// Breaker state (as the running server last recorded it), outbox depth and the last error.
    Status {
        /// Count only this user's outbox items.
        #[arg(long)]
        user: Option<String>,
    },
    /// The outbox of writes to Omi: list, and retry dead items.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// A user's choices of what goes to Omi.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Backfill a user's memories, conversations and action items from Omi (resumable).
    Pull(PullArgs),
    /// Print the app manifest to paste into Omi's app form.
    Manifest(super::manifest::ManifestArgs),
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Items by state (dead ones by default), oldest first.
    List {
        /// pending, done or dead.
        #[arg(long, default_value = "dead")]
        state: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Queue a dead item again; a running server sends it within a second.
    Retry { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    Show {
        #[arg(long)]
        user: String,
    },
    /// Replace the user's settings (options left out are reset).
    Set {
        #[arg(long)]
        user: String,
        /// Push new memories to Omi.
        #[arg(long)]
        push_memories: bool,
        /// Only memories with one of these tags (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        categories: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        sources: Vec<String>,
        /// Notify in Omi on: memory_created, conversation_processed.
        #[arg(long, value_delimiter = ',')]
        notify: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The Omi uid whose data to pull (an existing user).
    #[arg(long)]
    uid: String,
    /// Items per request (Omi allows 1–1,000).
    #[arg(long, default_value_t = 100)]
    page_size: u32,
}

pub async fn run(
    store: Arc<dyn Store>,
    config: &Config,
    command: OmiCommand,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        OmiCommand::Manifest(args) => super::manifest::run(config, &args)?,
        OmiCommand::Status { user } => {
            let uid = user.map(Uid::parse).transpose()?;
            let counts = store.outbox_counts(uid.as_ref()).await?;
            let upstreams = store.omi_statuses().await?;
            let configured = config.omi.app_id.is_some() && config.omi.app_key.is_some();
            if out.is_json() {
                out.value(&serde_json::json!({"integration_configured": configured, "outbox": counts, "upstreams": upstreams}));
            } else {
                println!(
                    "integration API: {}",
                    if configured {
                        "configured"
                    } else {
                        "not configured (omi.app_id, omi.app_key)"
                    }
                );
                println!(
                    "outbox: {} pending, {} dead, {} delivered",
                    counts.pending, counts.dead, counts.delivered
                );
                if let (Some(error), Some(at)) = (&counts.last_error, counts.last_error_at) {
                    println!("last error: {error} ({at})");
                }
                if upstreams.is_empty() {
                    println!("breaker: no server has recorded one yet");
                }
                for u in upstreams {
                    let state = u.status["breaker"]["state"].as_str().unwrap_or("unknown");
                    println!(
                        "breaker {}: {state} (recorded {})",
                        u.upstream, u.recorded_at
                    );
                }
            }
        }
        OmiCommand::Outbox(OutboxCommand::List {
            state,
            limit,
            cursor,
        }) => {
            let state = OutboxState::parse(&state).ok_or_else(|| {
                CliError::Usage(format!("--state {state:?}: use pending, done or dead"))
            })?;
            let page = store
                .outbox(state, super::inbox::page_request(limit, cursor)?)
                .await?;
            if out.is_json() {
                out.value(&serde_json::json!({"items": page.items, "next_cursor": page.next_cursor.map(|c| c.encode())}));
            } else {
                for e in &page.items {
                    let error = e.last_error.as_deref().unwrap_or("-");
                    println!(
                        "{}  {}  {}  attempts={}  {}  {error}",
                        e.id,
                        e.uid,
                        e.kind.as_str(),
                        e.attempts,
                        e.created_at
                    );
                }
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {}", cursor.encode());
                }
            }
        }
        OmiCommand::Outbox(OutboxCommand::Retry { id }) => {
            out.value(&store.retry_outbox(&id).await?)
        }
        OmiCommand::Sync(SyncCommand::Show { user }) => {
            out.value(&store.omi_sync_settings(&Uid::parse(user)?).await?);
        }
        OmiCommand::Sync(SyncCommand::Set {
            user,
            push_memories,
            tags,
            categories,
            sources,
            notify,
        }) => {
            let settings = SyncSettings {
                push_memories,
                tags: tags
                    .iter()
                    .map(|t| Tag::parse(t))
                    .collect::<Result<_, _>>()?,
                categories: categories
                    .iter()
                    .map(|c| Category::parse(c))
                    .collect::<Result<_, _>>()?,
                sources: sources
                    .iter()
                    .map(|s| Source::from_str(s))
                    .collect::<Result<_, _>>()?,
                notify: notify
                    .iter()
                    .map(|n| {
                        serde_json::from_value::<NotifyEvent>(serde_json::Value::String(n.clone()))
                            .map_err(|_| {
                                CliError::Usage(format!(
                                    "--notify {n:?}: use memory_created or conversation_processed"
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?,
                updated_at: None,
            };
            out.value(
                &store
                    .set_omi_sync_settings(&Uid::parse(user)?, settings)
                    .await?,
            );
        }
        OmiCommand::Pull(args) => pull(store, config, args, out).await?,
    }
    Ok(())
}

/// How far a pull got, per resource.
#[derive(Debug, Default, serde::Serialize)]
struct Pulled {
    fetched: u64,
    new: u64,
    known: u64,
    skipped: u64,
}

/// Counts on a terminal spinner, or a plain line per page (logs, CI). Omi's lists carry no totals,
/// so there is no bar to fill.
struct Counter {
    bar: Option<ProgressBar>,
    label: &'static str,
}

impl Counter {
    fn new(label: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_message(label);
            bar
        });
        Self { bar, label }
    }

    fn page(&self, offset: u32, pulled: &Pulled) {
        let line = format!(
            "{}: {} fetched, {} new, {} already stored, {} skipped (next offset {offset})",
            self.label, pulled.fetched, pulled.new, pulled.known, pulled.skipped
        );
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}

/// Backfills from Omi's Integration API. Each page is stored, then its end offset is saved as the
/// checkpoint, so an interrupted pull resumes where it stopped (a page re-read after a crash is
/// deduplicated: memories by content, conversations by id, tasks by Omi id). A finished resource's
/// checkpoint is cleared, so the next pull starts over and picks up what is new.
async fn pull(
    store: Arc<dyn Store>,
    config: &Config,
    args: PullArgs,
    out: &Output,
) -> Result<(), CliError> {
    let uid = Uid::parse(args.uid)?;
    store.get_user(&uid).await?;
    if args.page_size == 0 || args.page_size > 1_000 {
        return Err(CliError::Usage("--page-size must be 1–1,000".into()));
    }
    let client = OmiClient::new(&config.omi)?.for_request(format!("pull-{}", uuid::Uuid::new_v4()));
    if !client.has_app() {
        return Err(OmiError::NotConfigured("omi.app_id and omi.app_key").into());
    }
    let ctx = Context::cli();
    let mut report = serde_json::Map::new();

    let memories = pull_resource(
        &store,
        &uid,
        "memories",
        |start| client.memory_pages(&uid, start, args.page_size).boxed(),
        |items| store_memories(&store, &uid, items, &ctx),
    )
    .await?;
    report.insert(
        "memories".into(),
        serde_json::to_value(memories).unwrap_or_default(),
    );

    let filter = ConversationFilter {
        max_transcript_segments: Some(-1),
        ..ConversationFilter::default()
    };
    let conversations = pull_resource(
        &store,
        &uid,
        "conversations",
        |start| {
            client
                .conversation_pages(&uid, &filter, start, args.page_size)
                .boxed()
        },
        |items| store_conversations(&store, &uid, items, &ctx),
    )
    .await?;
    report.insert(
        "conversations".into(),
        serde_json::to_value(conversations).unwrap_or_default(),
    );

    let tasks_filter = TaskFilter::default();
    let tasks = pull_resource(
        &store,
        &uid,
        "tasks",
        |start| {
            client
                .task_pages(&uid, &tasks_filter, start, args.page_size)
                .boxed()
        },
        |items| store_tasks(&store, &uid, items),
    )
    .await?;
    report.insert(
        "tasks".into(),
        serde_json::to_value(tasks).unwrap_or_default(),
    );

    // Pulled conversations wait in the inbox like webhook deliveries; derive them now.
    let worker = InboxWorker::new(
        Arc::clone(&store),
        config.omi.app_id.clone(),
        config.webhooks.max_attempts,
    );
    let processed = worker.drain().await;
    report.insert("inbox_processed".into(), processed.into());
    out.value(&report);
    Ok(())
}

async fn pull_resource<'a, T, S, F, Fut>(
    store: &Arc<dyn Store>,
    uid: &Uid,
    resource: &'static str,
    pages: S,
    mut save: F,
) -> Result<Pulled, CliError>
where
    S: FnOnce(
        u32,
    ) -> futures_util::stream::BoxStream<
        'a,
        Result<crate::omi::client::PageFetch<T>, OmiError>,
    >,
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<Pulled, CliError>>,
{
    let start = store.omi_pull_checkpoint(uid, resource).await?.unwrap_or(0);
    if start > 0 {
        eprintln!("{resource}: resuming at offset {start}");
    }
    let counter = Counter::new(resource);
    let mut total = Pulled::default();
    let mut pages = pages(start);
    while let Some(page) = pages.next().await {
        // An error ends the pull here; the checkpoint keeps what was stored.
        let page = page?;
        let saved = save(page.items).await?;
        total.fetched += saved.fetched;
        total.new += saved.new;
        total.known += saved.known;
        total.skipped += saved.skipped;
        store
            .set_omi_pull_checkpoint(uid, resource, Some(page.next_offset))
            .await?;
        counter.page(page.next_offset, &total);
    }
    counter.finish();
    store.set_omi_pull_checkpoint(uid, resource, None).await?;
    Ok(total)
}

async fn store_memories(
    store: &Arc<dyn Store>,
    uid: &Uid,
    items: Vec<OmiMemory>,
    ctx: &Context,
) -> Result<Pulled, CliError> {
    let mut pulled = Pulled {
        fetched: items.len() as u64,
        ..Pulled::default()
    };
    let mut batch = Vec::new();
    for m in items {
        // Locked memories come truncated to 70 characters + "…": storing them would keep a stub.
        let Ok(content) = Content::parse(&m.content) else {
            pulled.skipped += 1;
            continue;
        };
        if m.is_locked == Some(true) {
            pulled.skipped += 1;
            continue;
        }
        let tags: Vec<&str> = m
            .tags
            .iter()
            .map(String::as_str)
            .filter(|t| Tag::parse(t).is_ok())
            .collect();
        let mut memory = NewMemory::new(content, Source::Import);
        memory.category = Category::from_omi(m.category.as_deref().unwrap_or("interesting"));
        memory.tags = Tags::parse(&tags).unwrap_or_default();
        // Marks it as Omi's own: the push trigger never sends it back.
        memory.metadata = Metadata::parse(serde_json::json!({"omi_id": m.id})).unwrap_or_default();
        memory.occurred_at = m
            .created_at
            .as_deref()
            .and_then(|t| Timestamp::parse("created_at", t).ok());
        batch.push(memory);
    }
    for result in store.create_memories(uid, batch, ctx).await? {
        match result? {
            Created::New(_) => pulled.new += 1,
            Created::Duplicate(_) => pulled.known += 1,
        }
    }
    Ok(pulled)
}

async fn store_conversations(
    store: &Arc<dyn Store>,
    uid: &Uid,
    items: Vec<crate::omi::client::types::Conversation>,
    ctx: &Context,
) -> Result<Pulled, CliError> {
    let mut pulled = Pulled {
        fetched: items.len() as u64,
        ..Pulled::default()
    };
    for c in items {
        if c.id.is_empty() {
            pulled.skipped += 1;
            continue;
        }
        let body = serde_json::to_vec(&c).map_err(|e| CliError::Usage(e.to_string()))?;
        // The conversation's id is the dedupe key: pulling again, or a webhook delivery of the same
        // conversation, stores it once.
        let event = NewInboxEvent {
            kind: EventKind::Conversation,
            dedupe_key: Some(format!("omi-pull:{}", c.id)),
            body,
        };
        match store.ingest(uid, false, event, None, ctx).await? {
            Ingested::New { .. } => pulled.new += 1,
            Ingested::Repeat { .. } => pulled.known += 1,
            Ingested::UnknownUser => return Err(crate::store::StoreError::UnknownUser.into()),
        }
    }
    Ok(pulled)
}

async fn store_tasks(
    store: &Arc<dyn Store>,
    uid: &Uid,
    items: Vec<OmiActionItem>,
) -> Result<Pulled, CliError> {
    let mut pulled = Pulled {
        fetched: items.len() as u64,
        ..Pulled::default()
    };
    let mut tasks = Vec::new();
    for t in items {
        let Ok(description) = TaskDescription::parse(&t.description) else {
            pulled.skipped += 1;
            continue;
        };
        tasks.push(NewTask {
            origin: format!("omi-task:{}", t.id),
            description,
            completed: t.completed,
            due_at: t
                .due_at
                .as_deref()
                .and_then(|d| Timestamp::parse("due_at", d).ok()),
            conversation_id: t.conversation_id,
        });
    }
    let count = tasks.len() as u64;
    let new = store.save_pulled_tasks(uid, tasks).await?;
    pulled.new += new;
    pulled.known += count - new;
    Ok(pulled)
}
