//! The MCP tools. Inputs are parsed into domain types at this edge; failures are tool errors
//! (`isError: true`) whose text starts with a stable code (`invalid_arguments`, `not_found`,
//! `conflict`, `unavailable`, `internal`) and says why.

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::domain::{
    Category, Content, Cursor, MemoryId, Source, Tags, Uid, ValidationError, Visibility,
};
use crate::search::{Mode, SearchRequest, Searcher};
use crate::store::{
    Actor, Context, Created, MemoryPatch, NewMemory, Page, PageRequest, Principal, SearchFilter,
    Store, StoreError, TaskFilter,
};

#[derive(Clone)]
pub struct MemoryServer {
    store: Arc<dyn Store>,
    search: Arc<Searcher>,
    // Read by the code `tool_handler` generates.
    #[allow(dead_code)]
    tool_router: ToolRouter<Self>,
}

impl MemoryServer {
    pub fn new(store: Arc<dyn Store>, search: Arc<Searcher>) -> Self {
        Self {
            store,
            search,
            tool_router: Self::tool_router(),
        }
    }
}

/// Why a tool could not do what was asked; becomes a tool error the agent can read.
enum Failure {
    Invalid(String),
    Store(StoreError),
}

impl From<ValidationError> for Failure {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Failure {
    fn into_result(self) -> CallToolResult {
        let text = match self {
            Self::Invalid(reason) => format!("invalid_arguments: {reason}"),
            Self::Store(StoreError::NotFound | StoreError::UnknownUser) => {
                "not_found: nothing with that id belongs to you".into()
            }
            Self::Store(StoreError::VersionConflict { current }) => {
                format!("conflict: the memory is at version {current}; read it again and retry")
            }
            Self::Store(StoreError::Conflict(reason)) => format!("conflict: {reason}"),
            Self::Store(StoreError::Deleted) => {
                "conflict: the memory is deleted; restore it first".into()
            }
            Self::Store(StoreError::Unavailable(cause)) => {
                tracing::warn!(%cause, "MCP tool: database unavailable");
                "unavailable: the database is busy; retry shortly".into()
            }
            Self::Store(StoreError::Internal(cause)) => {
                tracing::error!(%cause, "MCP tool failed");
                "internal: the tool failed; see the server log".into()
            }
        };
        CallToolResult::error(vec![ContentBlock::text(text)])
    }
}

type ToolResult = Result<CallToolResult, ErrorData>;

/// The tool's answer: the value as JSON text, or the failure.
fn answer<T: Serialize>(outcome: Result<T, Failure>) -> ToolResult {
    Ok(match outcome {
        Ok(value) => match serde_json::to_string_pretty(&value) {
            Ok(json) => CallToolResult::success(vec![ContentBlock::text(json)]),
            Err(e) => Failure::Store(StoreError::Internal(e.to_string())).into_result(),
        },
        Err(failure) => failure.into_result(),
    })
}

/// The user of this request (the key's), and the audit context of the change.
fn caller(parts: &Parts) -> Result<(Uid, Context), ErrorData> {
    let principal = parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| ErrorData::invalid_request("the request carries no API key", None))?;
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((
        principal.uid.clone(),
        Context::new(Actor::Key(principal.key_id), request_id),
    ))
}

fn page(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest, Failure> {
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    if limit == 0 || limit > PageRequest::MAX_LIMIT {
        return Err(Failure::Invalid(format!(
            "limit must be between 1 and {}",
            PageRequest::MAX_LIMIT
        )));
    }
    Ok(PageRequest {
        limit,
        after: cursor.map(Cursor::decode).transpose()?,
    })
}

/// A page of items and where the next one starts.
#[derive(Serialize)]
struct Listed<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> From<Page<T>> for Listed<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// What to look for, in any words.
    query: String,
    /// How many memories to return, 1–100 (default 10).
    limit: Option<usize>,
    /// text, semantic or hybrid (default).
    mode: Option<String>,
    /// Only memories with any of these tags.
    tags: Option<Vec<String>>,
    /// Only memories of this category: interesting, system, manual or workflow.
    category: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct IdArgs {
    /// The id, as a search or list returned it.
    id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreateArgs {
    /// The fact to remember, 1–16,000 characters.
    content: String,
    /// interesting, system, manual (default) or workflow.
    category: Option<String>,
    /// Tags, e.g. ["family", "birthday"].
    tags: Option<Vec<String>>,
    /// private (default) or public.
    visibility: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct UpdateArgs {
    /// The memory's id.
    id: String,
    /// New content.
    content: Option<String>,
    /// New category.
    category: Option<String>,
    /// New tags (replace the old ones).
    tags: Option<Vec<String>>,
    /// New visibility: private or public.
    visibility: Option<String>,
    /// The version you read; the update fails if the memory changed since. Without it, the update
    /// applies to the current version.
    expected_version: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListArgs {
    /// 1–200, default 50.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ActionItemArgs {
    /// 1–200, default 50.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only completed (true) or open (false) items.
    completed: Option<bool>,
    /// Only the items of this conversation.
    conversation_id: Option<String>,
}

fn memory_id(raw: &str) -> Result<MemoryId, Failure> {
    Ok(MemoryId::parse(raw)?)
}

fn category(raw: Option<&str>) -> Result<Option<Category>, Failure> {
    Ok(raw.map(Category::parse).transpose()?)
}

fn visibility(raw: Option<&str>) -> Result<Option<Visibility>, Failure> {
    Ok(raw.map(str::parse).transpose()?)
}

#[tool_router]
impl MemoryServer {
    #[tool(
        description = "Search the user's memories by words and by meaning (hybrid by default). Returns the best matches first, each with its id, content, tags and score."
    )]
    async fn search_memories(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<SearchArgs>,
    ) -> ToolResult {
        let (uid, _) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            if args.query.trim().is_empty() {
                return Err(Failure::Invalid("query must not be empty".into()));
            }
            let mode = match args.mode.as_deref() {
                Some(raw) => raw.parse::<Mode>().map_err(Failure::Invalid)?,
                None => Mode::Hybrid,
            };
            let request = SearchRequest {
                query: args.query,
                mode,
                limit: args
                    .limit
                    .unwrap_or(10)
                    .clamp(1, crate::search::service::MAX_LIMIT),
                filter: SearchFilter {
                    tags: Tags::parse(&args.tags.unwrap_or_default())?
                        .iter()
                        .cloned()
                        .collect(),
                    category: category(args.category.as_deref())?,
                    ..SearchFilter::default()
                },
                tuning: Default::default(),
            };
            Ok(self.search.search_memories(&uid, &request).await?)
        }
        .await;
        answer(outcome)
    }

    #[tool(description = "Read one memory by id, with its version and whether it is deleted.")]
    async fn get_memory(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<IdArgs>,
    ) -> ToolResult {
        let (uid, _) = caller(&parts)?;
        let outcome: Result<_, Failure> =
            async { Ok(self.store.get_memory(&uid, memory_id(&args.id)?).await?) }.await;
        answer(outcome)
    }

    #[tool(
        description = "Remember a new fact about the user. Identical content to an existing memory returns that memory (duplicate: true)."
    )]
    async fn create_memory(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<CreateArgs>,
    ) -> ToolResult {
        let (uid, ctx) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            let mut new = NewMemory::new(Content::parse(&args.content)?, Source::Api);
            new.category = category(args.category.as_deref())?.unwrap_or(Category::Manual);
            new.tags = Tags::parse(&args.tags.unwrap_or_default())?;
            new.visibility = visibility(args.visibility.as_deref())?.unwrap_or_default();
            let created = self.store.create_memory(&uid, new, &ctx).await?;
            self.search.wake();
            let duplicate = matches!(created, Created::Duplicate(_));
            Ok(serde_json::json!({"memory": created.into_memory(), "duplicate": duplicate}))
        }
        .await;
        answer(outcome)
    }

    #[tool(
        description = "Change a memory's content, category, tags or visibility. Every change keeps the previous version (see memory_history)."
    )]
    async fn update_memory(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<UpdateArgs>,
    ) -> ToolResult {
        let (uid, ctx) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            let id = memory_id(&args.id)?;
            let patch = MemoryPatch {
                content: args.content.as_deref().map(Content::parse).transpose()?,
                category: category(args.category.as_deref())?,
                tags: args.tags.as_deref().map(Tags::parse).transpose()?,
                visibility: visibility(args.visibility.as_deref())?,
                ..MemoryPatch::default()
            };
            if patch.is_empty() {
                return Err(Failure::Invalid(
                    "nothing to update: give content, category, tags or visibility".into(),
                ));
            }
            let version = match args.expected_version {
                Some(v) => v,
                None => self.store.get_memory(&uid, id).await?.version,
            };
            let updated = self
                .store
                .update_memory(&uid, id, version, patch, &ctx)
                .await?;
            self.search.wake();
            Ok(updated)
        }
        .await;
        answer(outcome)
    }

    #[tool(
        description = "Delete a memory. It is kept as deleted and can be restored with restore_memory until it is purged."
    )]
    async fn delete_memory(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<IdArgs>,
    ) -> ToolResult {
        let (uid, ctx) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            let deleted = self
                .store
                .delete_memory(&uid, memory_id(&args.id)?, None, &ctx)
                .await?;
            Ok(deleted.memory().clone())
        }
        .await;
        answer(outcome)
    }

    #[tool(description = "Every version a memory has had, oldest first.")]
    async fn memory_history(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<IdArgs>,
    ) -> ToolResult {
        let (uid, _) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            Ok(self
                .store
                .memory_versions(&uid, memory_id(&args.id)?)
                .await?)
        }
        .await;
        answer(outcome)
    }

    #[tool(description = "Bring back a deleted memory.")]
    async fn restore_memory(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<IdArgs>,
    ) -> ToolResult {
        let (uid, ctx) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            let restored = self
                .store
                .restore_memory(&uid, memory_id(&args.id)?, &ctx)
                .await?;
            self.search.wake();
            Ok(restored)
        }
        .await;
        answer(outcome)
    }

    #[tool(description = "The user's conversations from Omi, newest first, a page at a time.")]
    async fn list_conversations(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ListArgs>,
    ) -> ToolResult {
        let (uid, _) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            let page = page(args.limit, args.cursor.as_deref())?;
            Ok(Listed::from(self.store.conversations(&uid, page).await?))
        }
        .await;
        answer(outcome)
    }

    #[tool(description = "One conversation with its transcript, events and action items.")]
    async fn get_conversation(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<IdArgs>,
    ) -> ToolResult {
        let (uid, _) = caller(&parts)?;
        let outcome: Result<_, Failure> =
            async { Ok(self.store.conversation(&uid, &args.id).await?) }.await;
        answer(outcome)
    }

    #[tool(description = "The user's action items (tasks), newest first, a page at a time.")]
    async fn list_action_items(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<ActionItemArgs>,
    ) -> ToolResult {
        let (uid, _) = caller(&parts)?;
        let outcome: Result<_, Failure> = async {
            let page = page(args.limit, args.cursor.as_deref())?;
            let filter = TaskFilter {
                completed: args.completed,
                conversation_id: args.conversation_id,
            };
            Ok(Listed::from(self.store.tasks(&uid, filter, page).await?))
        }
        .await;
        answer(outcome)
    }
}

#[tool_handler]
impl ServerHandler for MemoryServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("angel-memory", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The user's long-term memory: facts they asked to keep and what their Omi conversations produced. Search before answering questions about their life; remember what they ask you to keep.",
            )
    }
}
