//! `inbox` commands: what an operator needs when Omi events fail to process.

use clap::Subcommand;
use std::sync::Arc;

use super::CliError;
use super::output::Output;
use crate::domain::Cursor;
use crate::store::{InboxState, PageRequest, Store};

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// List events by state (dead ones by default), oldest first.
    List {
        /// pending, done or dead.
        #[arg(long, default_value = "dead")]
        state: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Queue a dead event again; a running server processes it within a second.
    Retry { id: String },
}

pub async fn run(
    store: Arc<dyn Store>,
    command: InboxCommand,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        InboxCommand::List {
            state,
            limit,
            cursor,
        } => {
            let state = InboxState::parse(&state).ok_or_else(|| {
                CliError::Usage(format!("--state {state:?}: use pending, done or dead"))
            })?;
            let page = store.inbox(state, page_request(limit, cursor)?).await?;
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
                        e.received_at
                    );
                }
                if let Some(cursor) = page.next_cursor {
                    eprintln!("more: --cursor {}", cursor.encode());
                }
            }
        }
        InboxCommand::Retry { id } => out.value(&store.retry_event(&id).await?),
    }
    Ok(())
}

/// `--limit` and `--cursor` of the operator lists (inbox, Omi outbox).
pub(super) fn page_request(limit: u32, cursor: Option<String>) -> Result<PageRequest, CliError> {
    if limit == 0 || limit > PageRequest::MAX_LIMIT {
        return Err(CliError::Usage(format!(
            "--limit must be between 1 and {}",
            PageRequest::MAX_LIMIT
        )));
    }
    Ok(PageRequest {
        limit,
        after: cursor.as_deref().map(Cursor::decode).transpose()?,
    })
}
