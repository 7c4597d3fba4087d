//! Omi chat tools: the manifest Omi reads (`/.well-known/omi-tools.json`) and the tools it lists, so
//! Omi's chat can search, remember, forget and recall conversations. Omi calls a tool with
//! `POST {uid, app_id, tool_name, …params}` and shows `{"result": "…"}` or `{"error": "…"}`.
//!
//! Calls are authenticated like the webhooks: the URL secret (`?token=`) or Omi's signature (scheme
//! v2 for tool calls); the user is the verified `uid`. Each tool calls the same store and search
//! functions as the native API.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::webhooks::{omi_secrets, signature_reason, url_token_matches};
use crate::domain::{Content, MemoryId, Source, Tags, Timestamp, Uid};
use crate::omi::signature::{self, SignedRequest};
use crate::search::{Mode, SearchRequest};
use crate::store::{
    Actor, Context, ConversationQuery, Created, Deleted, NewMemory, OffsetPage, SearchFilter,
    StoreError,
};

pub const MANIFEST_PATH: &str = "/.well-known/omi-tools.json";
const MAX_RESULTS: usize = 20;
const DEFAULT_RESULTS: usize = 5;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(MANIFEST_PATH, get(manifest))
        .route("/omi/tools/{tool}", post(call_tool))
}

/// One tool: its name, what Omi's model reads about it, and its parameters' JSON Schema.
struct Tool {
    name: &'static str,
    description: &'static str,
    parameters: fn() -> Value,
    status_message: &'static str,
}

const TOOLS: [Tool; 4] = [
    Tool {
        name: "search_memories",
        description: "Search the facts Angel Memory keeps about the user, by words and by meaning. Use it when the user asks what they said, decided or learned about a person, place or topic. Each result carries its memory id.",
        parameters: || {
            json!({
                "properties": {
                    "query": {"type": "string", "description": "What to look for, in natural language"},
                    "limit": {"type": "integer", "description": "Maximum number of memories to return (1-20, default 5)"},
                    "tag": {"type": "string", "description": "Only return memories carrying this tag"}
                },
                "required": ["query"]
            })
        },
        status_message: "Searching your memories...",
    },
    Tool {
        name: "remember",
        description: "Store a new fact about the user. Use it when the user explicitly asks to remember something, such as a preference, a date or a person's detail.",
        parameters: || {
            json!({
                "properties": {
                    "content": {"type": "string", "description": "The fact to remember, as one short sentence"},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "Optional tags, for example [\"family\", \"birthday\"]"}
                },
                "required": ["content"]
            })
        },
        status_message: "Remembering...",
    },
    Tool {
        name: "forget",
        description: "Forget a memory the user no longer wants kept, by the memory id a search returned. It can be restored later from Angel Memory.",
        parameters: || {
            json!({
                "properties": {
                    "memory_id": {"type": "string", "description": "The id of the memory, as search_memories returned it"}
                },
                "required": ["memory_id"]
            })
        },
        status_message: "Forgetting...",
    },
    Tool {
        name: "recent_conversations",
        description: "List the user's most recent conversations with their titles and overviews. Use it when the user asks what they talked about lately.",
        parameters: || {
            json!({
                "properties": {
                    "limit": {"type": "integer", "description": "How many conversations (1-20, default 5)"}
                },
                "required": []
            })
        },
        status_message: "Looking at your recent conversations...",
    },
];

/// The chat-tools manifest. With a URL secret configured, each endpoint carries it (Omi keeps an
/// endpoint's query string when it calls it).
pub fn manifest_document(token: Option<&str>) -> Value {
    let suffix = token.map_or(String::new(), |t| format!("?token={t}"));
    let tools: Vec<Value> = TOOLS
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "endpoint": format!("/omi/tools/{}{suffix}", t.name),
                "method": "POST",
                "parameters": (t.parameters)(),
                "auth_required": true,
                "status_message": t.status_message,
            })
        })
        .collect();
    // Nothing is sent into Omi's chat from here.
    json!({"tools": tools, "chat_messages": {"enabled": false, "target": "app", "notify": false}})
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// The manifest lists endpoints that carry the URL secret, so with one configured it is shown only
/// to whoever already has it (Omi reads it from the URL `angel-memory omi manifest` prints).
async fn manifest(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Response {
    use secrecy::ExposeSecret;
    let config = &state.config;
    match &config.webhook_token {
        Some(token) if url_token_matches(config, query.token.as_deref()) => {
            Json(manifest_document(Some(token.expose_secret()))).into_response()
        }
        Some(_) => error(
            StatusCode::UNAUTHORIZED,
            "the manifest needs the URL secret: ?token=<secret>",
        ),
        None if config.omi_signing_secret.is_some()
            || config.webhooks.insecure_accept_unauthenticated =>
        {
            Json(manifest_document(None)).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "chat tools are off: configure a webhook token or Omi's signing secret",
        ),
    }
}

/// Accepts a call if the URL secret or an Omi v2 signature verifies. A signature that is present
/// but wrong is refused even when the token matches.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    token: Option<&str>,
    body: &[u8],
) -> Result<(), &'static str> {
    let config = &state.config;
    let mut verified = url_token_matches(config, token);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let (Some(secrets), Some(given)) = (omi_secrets(config), header("x-omi-signature")) {
        let request = SignedRequest {
            delivery: header("x-omi-delivery").unwrap_or_default(),
            event: header("x-omi-event").unwrap_or_default(),
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or_default(),
        };
        let now = Timestamp::now().as_micros() / 1_000_000;
        signature::verify_omi_v2(given, &request, body, &secrets, now)
            .map_err(|e| signature_reason(&e))?;
        verified = true;
    }
    if verified {
        return Ok(());
    }
    if config.webhooks.insecure_accept_unauthenticated {
        tracing::warn!(
            "accepted an unauthenticated chat-tool call (webhooks.insecure_accept_unauthenticated is on)"
        );
        return Ok(());
    }
    Err("the call is not authenticated: wrong or missing token or signature")
}

/// Omi's call: who, from which app, and the tool's parameters beside them.
#[derive(Debug, Deserialize)]
struct Call {
    uid: String,
    app_id: Option<String>,
    #[serde(flatten)]
    params: serde_json::Map<String, Value>,
}

async fn call_tool(
    State(state): State<AppState>,
    Path(tool): Path<String>,
    Query(query): Query<TokenQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(reason) = authenticate(
        &state,
        &headers,
        &method,
        &uri,
        query.token.as_deref(),
        &body,
    ) {
        return error(StatusCode::UNAUTHORIZED, reason);
    }
    let call: Call = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a tool call: {e}")),
    };
    if let (Some(expected), Some(given)) = (&state.config.omi.app_id, &call.app_id)
        && expected != given
    {
        return error(StatusCode::FORBIDDEN, "the call is for another app");
    }
    let uid = match Uid::parse(&call.uid) {
        Ok(uid) => uid,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let ctx = Context::new(Actor::System, super::auth::request_id(&headers));
    let outcome = match ensure_user(&state, &uid).await {
        Ok(()) => run(&state, &uid, &tool, &call.params, &ctx).await,
        Err(e) => Err(ToolError::Store(e)),
    };
    match outcome {
        Ok(result) => Json(json!({"result": result})).into_response(),
        Err(ToolError::UnknownTool) => {
            error(StatusCode::NOT_FOUND, format!("no tool named {tool:?}"))
        }
        // What the model asked for cannot be done: Omi shows the reason; the call itself worked.
        Err(ToolError::Refused(reason)) => error(StatusCode::OK, reason),
        Err(ToolError::Store(e)) => {
            let api = super::ApiError::from(e);
            tracing::warn!(error = %api, tool = %tool, "chat tool failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the memory service could not answer; try again",
            )
        }
    }
}

/// Users come into being with their first webhook; a chat tool may come first.
async fn ensure_user(state: &AppState, uid: &Uid) -> Result<(), StoreError> {
    match state.store.get_user(uid).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound | StoreError::UnknownUser)
            if state.config.webhooks.auto_create_users =>
        {
            match state.store.create_user(uid).await {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

enum ToolError {
    UnknownTool,
    Refused(String),
    Store(StoreError),
}

impl From<StoreError> for ToolError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn text_param(params: &serde_json::Map<String, Value>, name: &str) -> Result<String, ToolError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ToolError::Refused(format!("{name} is required")))
}

fn limit_param(params: &serde_json::Map<String, Value>) -> usize {
    params
        .get("limit")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_RESULTS, |l| (l as usize).clamp(1, MAX_RESULTS))
}

async fn run(
    state: &AppState,
    uid: &Uid,
    tool: &str,
    params: &serde_json::Map<String, Value>,
    ctx: &Context,
) -> Result<String, ToolError> {
    let refused = |e: crate::domain::ValidationError| ToolError::Refused(e.to_string());
    match tool {
        "search_memories" => {
            let query = text_param(params, "query")?;
            let tags = match params.get("tag").and_then(Value::as_str) {
                Some(tag) => Tags::parse(&[tag])
                    .map_err(refused)?
                    .iter()
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            let request = SearchRequest {
                query: query.clone(),
                mode: Mode::Hybrid,
                limit: limit_param(params),
                filter: SearchFilter {
                    tags,
                    ..SearchFilter::default()
                },
                tuning: Default::default(),
            };
            let found = state.search.search_memories(uid, &request).await?;
            if found.items.is_empty() {
                return Ok(format!("No memories match \"{query}\"."));
            }
            Ok(found
                .items
                .iter()
                .map(|h| {
                    format!(
                        "- {} (memory {}, {})",
                        h.memory.content.as_str(),
                        h.memory.id,
                        h.memory.created_at
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        "remember" => {
            let content = Content::parse(&text_param(params, "content")?).map_err(refused)?;
            let tags: Vec<String> = params
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let mut new = NewMemory::new(content, Source::Api);
            new.tags = Tags::parse(&tags).map_err(refused)?;
            let created = state.store.create_memory(uid, new, ctx).await?;
            state.search.wake();
            Ok(match created {
                Created::New(m) => format!("Remembered: {} (memory {})", m.content.as_str(), m.id),
                Created::Duplicate(m) => {
                    format!(
                        "Already remembered: {} (memory {})",
                        m.content.as_str(),
                        m.id
                    )
                }
            })
        }
        "forget" => {
            let id = MemoryId::parse(&text_param(params, "memory_id")?).map_err(refused)?;
            match state.store.delete_memory(uid, id, None, ctx).await {
                Ok(Deleted::Now(m)) => Ok(format!(
                    "Forgot: {} (it can be restored in Angel Memory)",
                    m.content.as_str()
                )),
                Ok(Deleted::Already(_)) => Ok("That memory was already forgotten.".into()),
                Err(StoreError::NotFound) => {
                    Err(ToolError::Refused("no memory has that id".into()))
                }
                Err(e) => Err(e.into()),
            }
        }
        "recent_conversations" => {
            // As Omi lists them: discarded conversations left out.
            let query = ConversationQuery {
                created_from: None,
                created_until: None,
                categories: Vec::new(),
                include_discarded: false,
                page: OffsetPage {
                    limit: limit_param(params) as u32,
                    offset: 0,
                },
            };
            let found = state.store.find_conversations(uid, &query).await?;
            if found.is_empty() {
                return Ok("No conversations yet.".into());
            }
            Ok(found
                .iter()
                .map(|d| &d.conversation)
                .map(|c| {
                    let overview = if c.overview.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.overview)
                    };
                    format!(
                        "- {} {}{overview} (conversation {})",
                        c.created_at, c.title, c.id
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        _ => Err(ToolError::UnknownTool),
    }
}
