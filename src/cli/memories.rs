//! `memory` commands: the same operations as the HTTP API, on the database directly.

use clap::{Args, Subcommand};
use std::sync::Arc;

use super::CliError;
use super::output::Output;
use crate::config::Config;
use crate::domain::{Category, Content, Cursor, MemoryId, Metadata, Source, Tags, Timestamp, Uid};
use crate::store::{Context, ListQuery, MemoryPatch, NewMemory, PageRequest, StateFilter, Store};

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Create a memory (an identical active memory is returned instead of a copy).
    Add {
        #[command(flatten)]
        user: UserArg,
        content: String,
        #[arg(long)]
        category: Option<String>,
        /// Repeat for several tags.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// A JSON object.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List memories, newest first.
    List {
        #[command(flatten)]
        user: UserArg,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        category: Option<String>,
        /// active, deleted or all.
        #[arg(long, default_value = "active")]
        state: String,
    },
    /// Show one memory.
    Get {
        #[command(flatten)]
        user: UserArg,
        id: String,
    },
    /// Change a memory; writes a new version.
    Update {
        #[command(flatten)]
        user: UserArg,
        id: String,
        #[arg(long)]
        content: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// Replaces all tags; repeat for several.
        #[arg(long = "tag")]
        tags: Option<Vec<String>>,
        #[arg(long)]
        metadata: Option<String>,
        /// The version you are changing; without it the current version is read first.
        #[arg(long)]
        expected_version: Option<i64>,
    },
    /// Soft-delete a memory (restorable until purged).
    Delete {
        #[command(flatten)]
        user: UserArg,
        id: String,
    },
    /// Bring a deleted memory back.
    Restore {
        #[command(flatten)]
        user: UserArg,
        id: String,
    },
    /// Every version of a memory, oldest first.
    History {
        #[command(flatten)]
        user: UserArg,
        id: String,
    },
    /// Hard-delete memories soft-deleted longer ago than the retention period.
    Purge {
        /// Only this user (default: everyone).
        #[arg(long)]
        user: Option<String>,
        /// Default: retention.purge_deleted_after_days.
        #[arg(long)]
        older_than_days: Option<u32>,
    },
}

#[derive(Debug, Args)]
pub struct UserArg {
    /// The user (Omi uid) whose memories to work with.
    #[arg(long)]
    user: String,
}

impl UserArg {
    fn uid(&self) -> Result<Uid, CliError> {
        Ok(Uid::parse(self.user.clone())?)
    }
}

fn metadata(raw: Option<&str>) -> Result<Option<Metadata>, CliError> {
    raw.map(|text| {
        let value = serde_json::from_str(text)
            .map_err(|e| CliError::Usage(format!("--metadata is not JSON: {e}")))?;
        Ok(Metadata::parse(value)?)
    })
    .transpose()
}

pub async fn run(
    store: Arc<dyn Store>,
    config: &Config,
    command: MemoryCommand,
    out: &Output,
) -> Result<(), CliError> {
    let ctx = Context::cli();
    match command {
        MemoryCommand::Add {
            user,
            content,
            category,
            tags,
            metadata: meta,
        } => {
            let mut new = NewMemory::new(Content::parse(&content)?, Source::Manual);
            new.category = category
                .as_deref()
                .map(Category::parse)
                .transpose()?
                .unwrap_or(Category::Manual);
            new.tags = Tags::parse(&tags)?;
            new.metadata = metadata(meta.as_deref())?.unwrap_or_default();
            let created = store.create_memory(&user.uid()?, new, &ctx).await?;
            if matches!(created, crate::store::Created::Duplicate(_)) {
                eprintln!("an identical memory exists already; nothing was created");
            }
            out.value(created.memory());
        }
        MemoryCommand::List {
            user,
            limit,
            cursor,
            tags,
            category,
            state,
        } => {
            let page = PageRequest {
                limit,
                after: cursor.as_deref().map(Cursor::decode).transpose()?,
            };
            if limit == 0 || limit > PageRequest::MAX_LIMIT {
                return Err(CliError::Usage(format!(
                    "--limit must be between 1 and {}",
                    PageRequest::MAX_LIMIT
                )));
            }
            let mut query = ListQuery::new(page);
            query.tags = Tags::parse(&tags)?.iter().cloned().collect();
            query.category = category.as_deref().map(Category::parse).transpose()?;
            query.state = match state.as_str() {
                "active" => StateFilter::Active,
                "deleted" => StateFilter::Deleted,
                "all" => StateFilter::All,
                other => {
                    return Err(CliError::Usage(format!(
                        "--state {other:?}: use active, deleted or all"
                    )));
                }
            };
            let page = store.list_memories(&user.uid()?, &query).await?;
            if out.is_json() {
                out.value(&serde_json::json!({"items": page.items, "next_cursor": page.next_cursor.map(|c| c.encode())}));
            } else {
                for m in &page.items {
                    let deleted = if m.is_deleted() { " (deleted)" } else { "" };
                    println!(
                        "{}  v{}  {}{}  {}",
                        m.id,
                        m.version,
                        m.category,
                        deleted,
                        one_line(m.content.as_str())
                    );
                }
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {}", cursor.encode());
                }
            }
        }
        MemoryCommand::Get { user, id } => out.value(
            &store
                .get_memory(&user.uid()?, MemoryId::parse(&id)?)
                .await?,
        ),
        MemoryCommand::Update {
            user,
            id,
            content,
            category,
            tags,
            metadata: meta,
            expected_version,
        } => {
            let (uid, id) = (user.uid()?, MemoryId::parse(&id)?);
            let patch = MemoryPatch {
                content: content.as_deref().map(Content::parse).transpose()?,
                category: category.as_deref().map(Category::parse).transpose()?,
                tags: tags.as_deref().map(Tags::parse).transpose()?,
                metadata: metadata(meta.as_deref())?,
                ..MemoryPatch::default()
            };
            if patch.is_empty() {
                return Err(CliError::Usage(
                    "nothing to update: give --content, --category, --tag or --metadata".into(),
                ));
            }
            let expected = match expected_version {
                Some(version) => version,
                None => store.get_memory(&uid, id).await?.version,
            };
            out.value(&store.update_memory(&uid, id, expected, patch, &ctx).await?);
        }
        MemoryCommand::Delete { user, id } => {
            let deleted = store
                .delete_memory(&user.uid()?, MemoryId::parse(&id)?, None, &ctx)
                .await?;
            out.value(deleted.memory());
        }
        MemoryCommand::Restore { user, id } => {
            out.value(
                &store
                    .restore_memory(&user.uid()?, MemoryId::parse(&id)?, &ctx)
                    .await?,
            );
        }
        MemoryCommand::History { user, id } => {
            out.value(
                &store
                    .memory_versions(&user.uid()?, MemoryId::parse(&id)?)
                    .await?,
            );
        }
        MemoryCommand::Purge {
            user,
            older_than_days,
        } => {
            let uid = user.map(Uid::parse).transpose()?;
            let days = older_than_days.unwrap_or(config.retention.purge_deleted_after_days);
            let report = store
                .purge_deleted(uid.as_ref(), Timestamp::now().minus_days(days), &ctx)
                .await?;
            out.value(&report);
        }
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 80 {
        format!("{}…", flat.chars().take(79).collect::<String>())
    } else {
        flat
    }
}
