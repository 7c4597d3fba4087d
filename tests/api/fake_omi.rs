//! A fake Omi on a random port that follows `omi-contract.md`: the Integration API's checks in Omi's
//! order (401, 403 key, 429, 404 app, 403 not enabled, 422 body), 429 with `Retry-After`, slow answers,
//! outages (503), explicit memories keyed by a hash of their content (so a re-send upserts), and offset
//! pagination (optionally ignoring the offset, or failing at an offset).
// Handlers return axum responses as their errors: what a fake server answers.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const APP_ID: &str = "angel-test-app";
pub const APP_KEY: &str = "sk_0123456789abcdef0123456789abcdef";
pub const DEV_KEY: &str = "omi_dev_test_key";

/// Memory id (hash of content) → (content, tags).
pub type UserMemories = BTreeMap<String, (String, Vec<String>)>;

#[derive(Default)]
pub struct FakeState {
    /// Answer 503 to everything.
    pub down: AtomicBool,
    /// Answer this many requests with 429 and `Retry-After: retry_after_seconds`.
    pub rate_limited: AtomicU32,
    pub retry_after_seconds: AtomicU64,
    /// Wait this long before answering.
    pub delay_ms: AtomicU64,
    /// Return the first page whatever the offset.
    pub ignore_offset: AtomicBool,
    /// Answer 500 to list requests at or past this offset (0 = never).
    pub fail_from_offset: AtomicU32,
    /// Every request that reached the server.
    pub calls: AtomicU64,
    pub enabled_uids: Mutex<HashSet<String>>,
    /// uid → memory id (hash of content) → (content, tags).
    pub memories: Mutex<HashMap<String, UserMemories>>,
    /// Times each content was accepted (a re-send of the same content counts again).
    pub deliveries: Mutex<HashMap<String, u32>>,
    pub notifications: Mutex<Vec<(String, String)>>,
    pub conversations: Mutex<HashMap<String, Vec<Value>>>,
    pub tasks: Mutex<HashMap<String, Vec<Value>>>,
    pub request_ids: Mutex<Vec<String>>,
    /// Calls to routes without their own behaviour: `METHOD path?query body`, answered with a plausible body.
    pub recorded: Mutex<Vec<String>>,
}

pub struct FakeOmi {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
}

impl FakeOmi {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route(
                "/v2/integrations/{app_id}/user/memories",
                post(create_memories),
            )
            .route(
                "/v2/integrations/{app_id}/user/conversations",
                post(create_conversation),
            )
            .route("/v2/integrations/{app_id}/memories", get(list_memories))
            .route(
                "/v2/integrations/{app_id}/conversations",
                get(list_conversations),
            )
            .route("/v2/integrations/{app_id}/tasks", get(list_tasks))
            .route("/v2/integrations/{app_id}/notification", post(notify))
            .route("/v1/dev/user/memories/batch", post(dev_batch))
            .route(
                "/v2/integrations/{app_id}/search/conversations",
                post(recorded),
            )
            .fallback(recorded)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn enable(&self, uid: &str) {
        self.state
            .enabled_uids
            .lock()
            .unwrap()
            .insert(uid.to_owned());
    }

    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn stored_memories(&self, uid: &str) -> usize {
        self.state
            .memories
            .lock()
            .unwrap()
            .get(uid)
            .map_or(0, BTreeMap::len)
    }

    pub fn add_memories(&self, uid: &str, contents: &[&str]) {
        let mut memories = self.state.memories.lock().unwrap();
        let user = memories.entry(uid.to_owned()).or_default();
        for c in contents {
            user.insert(memory_id(c), ((*c).to_owned(), vec!["from-omi".into()]));
        }
    }
}

/// Omi's `document_id_from_seed`: SHA-256 of the content → 16 bytes → UUID v4 bits.
fn memory_id(content: &str) -> String {
    let digest = Sha256::digest(content.trim().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn detail(status: StatusCode, detail: Value) -> Response {
    (status, axum::Json(json!({"detail": detail}))).into_response()
}

/// The common part of every Integration call, in Omi's order. `Ok` lets the handler go on.
async fn gate(
    state: &FakeState,
    headers: &HeaderMap,
    app_id: &str,
    uid: Option<&String>,
) -> Result<(), Response> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        state.request_ids.lock().unwrap().push(id.to_owned());
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return Err(detail(
            StatusCode::SERVICE_UNAVAILABLE,
            json!("Service Unavailable"),
        ));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(key) = auth.strip_prefix("Bearer ") else {
        return Err(detail(
            StatusCode::UNAUTHORIZED,
            json!("Missing or invalid Authorization header. Must be 'Bearer API_KEY'"),
        ));
    };
    if key != APP_KEY {
        return Err(detail(
            StatusCode::FORBIDDEN,
            json!("Invalid integration API key"),
        ));
    }
    let limited = state
        .rate_limited
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if limited {
        let after = state.retry_after_seconds.load(Ordering::SeqCst);
        let mut response = detail(
            StatusCode::TOO_MANY_REQUESTS,
            json!(format!("Rate limit exceeded. Try again in {after}s.")),
        );
        let headers = response.headers_mut();
        headers.insert("retry-after", after.into());
        headers.insert("x-ratelimit-remaining", 0.into());
        return Err(response);
    }
    if app_id != APP_ID {
        return Err(detail(StatusCode::NOT_FOUND, json!("App not found")));
    }
    let enabled = uid.is_some_and(|u| state.enabled_uids.lock().unwrap().contains(u));
    if !enabled {
        return Err(detail(
            StatusCode::FORBIDDEN,
            json!("App is not enabled for this user"),
        ));
    }
    Ok(())
}

type Params = Query<HashMap<String, String>>;

async fn create_memories(
    State(state): State<Arc<FakeState>>,
    Path(app_id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&state, &headers, &app_id, q.get("uid")).await {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error"}]),
        );
    };
    let memories = body["memories"].as_array().cloned().unwrap_or_default();
    let text = body["text"].as_str().unwrap_or("");
    if memories.is_empty() && text.trim().is_empty() {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("Either text or explicit memories(facts) are required and cannot be empty"),
        );
    }
    let uid = q["uid"].clone();
    let mut stored = state.memories.lock().unwrap();
    let mut deliveries = state.deliveries.lock().unwrap();
    let user = stored.entry(uid).or_default();
    for m in memories {
        let Some(content) = m["content"].as_str() else {
            return detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!([{"loc": ["body", "memories", "content"], "msg": "Field required"}]),
            );
        };
        let tags = m["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        user.insert(memory_id(content), (content.to_owned(), tags));
        *deliveries.entry(content.to_owned()).or_default() += 1;
    }
    axum::Json(json!({})).into_response()
}

async fn create_conversation(
    State(state): State<Arc<FakeState>>,
    Path(app_id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &app_id, q.get("uid")).await {
        return r;
    }
    axum::Json(json!({})).into_response()
}

fn page_of(
    state: &FakeState,
    items: Vec<Value>,
    q: &HashMap<String, String>,
) -> Result<Vec<Value>, Response> {
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000"}]),
        ));
    }
    let mut offset: usize = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let fail = state.fail_from_offset.load(Ordering::SeqCst) as usize;
    if fail > 0 && offset >= fail {
        return Err(detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!("Internal Server Error"),
        ));
    }
    if state.ignore_offset.load(Ordering::SeqCst) {
        offset = 0;
    }
    Ok(items.into_iter().skip(offset).take(limit).collect())
}

async fn list_memories(
    State(state): State<Arc<FakeState>>,
    Path(app_id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &app_id, q.get("uid")).await {
        return r;
    }
    let all: Vec<Value> = state
        .memories
        .lock()
        .unwrap()
        .get(&q["uid"])
        .map(|m| {
            m.iter()
                .map(|(id, (content, tags))| json!({"id": id, "content": content, "category": "system", "tags": tags, "created_at": "2024-07-22T23:59:45.910559+00:00"}))
                .collect()
        })
        .unwrap_or_default();
    match page_of(&state, all, &q) {
        Ok(memories) => axum::Json(json!({"memories": memories})).into_response(),
        Err(r) => r,
    }
}

async fn list_conversations(
    State(state): State<Arc<FakeState>>,
    Path(app_id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &app_id, q.get("uid")).await {
        return r;
    }
    let all = state
        .conversations
        .lock()
        .unwrap()
        .get(&q["uid"])
        .cloned()
        .unwrap_or_default();
    match page_of(&state, all, &q) {
        Ok(items) => axum::Json(json!({"conversations": items})).into_response(),
        Err(r) => r,
    }
}

async fn list_tasks(
    State(state): State<Arc<FakeState>>,
    Path(app_id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &app_id, q.get("uid")).await {
        return r;
    }
    let all = state
        .tasks
        .lock()
        .unwrap()
        .get(&q["uid"])
        .cloned()
        .unwrap_or_default();
    match page_of(&state, all, &q) {
        Ok(items) => axum::Json(json!({"tasks": items})).into_response(),
        Err(r) => r,
    }
}

async fn notify(
    State(state): State<Arc<FakeState>>,
    Path(app_id): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&state, &headers, &app_id, q.get("uid")).await {
        return r;
    }
    if !body.is_empty() || headers.get("content-length").and_then(|v| v.to_str().ok()) != Some("0")
    {
        return detail(
            StatusCode::BAD_REQUEST,
            json!("expected an empty body with Content-Length: 0"),
        );
    }
    let Some(message) = q.get("message") else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"loc": ["query", "message"], "msg": "Field required"}]),
        );
    };
    state
        .notifications
        .lock()
        .unwrap()
        .push((q["uid"].clone(), message.clone()));
    axum::Json(json!({"status": "Ok"})).into_response()
}

async fn dev_batch(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {DEV_KEY}") {
        return detail(StatusCode::UNAUTHORIZED, json!("Invalid API key"));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let memories = body["memories"].as_array().cloned().unwrap_or_default();
    if memories.len() > 25 {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("Maximum 25 memories per batch request"),
        );
    }
    let created: Vec<Value> = memories
        .iter()
        .map(|m| json!({"id": memory_id(m["content"].as_str().unwrap_or("")), "content": m["content"], "category": m["category"], "visibility": m["visibility"], "tags": m["tags"], "manually_added": true}))
        .collect();
    axum::Json(json!({"memories": created, "created_count": created.len()})).into_response()
}

/// Records the call exactly as it arrived and answers with the shape the contract gives for it.
async fn recorded(
    State(state): State<Arc<FakeState>>,
    request: axum::extract::Request,
) -> Response {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let line = format!(
        "{} {}{query} {}",
        parts.method,
        parts.uri.path(),
        String::from_utf8_lossy(&body)
    );
    state
        .recorded
        .lock()
        .unwrap()
        .push(line.trim_end().to_owned());
    let path = parts.uri.path();
    let item = json!({"id": "x1", "content": "c", "description": "d", "completed": false});
    let answer = match (parts.method.as_str(), path) {
        ("DELETE", _) => json!({"success": true}),
        ("GET", p)
            if p.ends_with("/memories")
                || p.ends_with("/action-items")
                || p.ends_with("/conversations") =>
        {
            json!([])
        }
        ("GET", _) => json!({"id": "c1", "structured": {"title": "t"}}),
        ("POST", p) if p.ends_with("/search/conversations") => {
            json!({"conversations": [], "total_pages": 0, "current_page": 1, "per_page": 10})
        }
        ("POST", p) if p.contains("/conversations") => {
            json!({"id": "c1", "status": "completed", "discarded": false})
        }
        ("POST", p) if p.ends_with("/batch") => json!({"action_items": [item], "created_count": 1}),
        _ => item,
    };
    axum::Json(answer).into_response()
}
