//! `kill -9` in the middle of a stream of Omi conversation webhooks.
//!
//! The real binary runs as a child process on its own data dir. Sixteen tasks post 400 distinct
//! conversations; once 150 have been acknowledged the server is killed with SIGKILL while requests are
//! still in flight. A second server on the same data dir must then finish every acknowledged event
//! exactly once: each acknowledged conversation exists with one delivery, one summary memory at
//! version 1 and its tasks, the audit trail holds exactly one `memory.create` per summary memory, and
//! nothing is left pending or dead. Requests that were never acknowledged may or may not have been
//! recorded; those that were must be just as complete. Re-sending acknowledged bodies after the restart
//! is deduplicated and changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use angel_memory::domain::Timestamp;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::{ADMIN_TOKEN, body};

/// The fixtures' Omi user.
const UID: &str = "5Z9Lil2WHl1vvn5iP2pZw0fKm4BR";
const WEBHOOK_TOKEN: &str = "crash-test-webhook-token-0123456789";
const CONVERSATIONS: usize = 400;
const CLIENTS: usize = 16;
/// Acknowledgements before the kill.
const KILL_AFTER: usize = 150;
/// Acknowledged bodies sent again after the restart.
const RESEND: usize = 10;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(40);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The server binary as a child process. Killed when dropped, including during a panic.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_angel-memory"))
            .arg("serve")
            .env("ANGEL_MEMORY_LISTEN", format!("127.0.0.1:{port}"))
            .env("ANGEL_MEMORY_DATA_DIR", data_dir)
            .env("ANGEL_MEMORY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("ANGEL_MEMORY_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .env("ANGEL_MEMORY_RATE_LIMIT__ENABLED", "false")
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawn angel-memory serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&mut self, client: &Client) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("server status") {
                panic!("the server exited before becoming ready: {status}");
            }
            if let Ok(response) = client.get(self.url("/readyz")).send().await
                && response.status() == StatusCode::OK
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "the server did not answer 200 on /readyz within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL on Unix: no shutdown hook, no flush, no checkpoint.
    fn kill(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("reap the server");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn webhook_url(&self) -> String {
        self.url(&format!(
            "/webhooks/omi/conversation?token={WEBHOOK_TOKEN}&uid={UID}"
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral loopback port")
        .port()
}

fn client() -> Client {
    angel_memory::tls::install_crypto_provider();
    Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// One conversation of the stream: its id, what it must derive, and its exact bytes.
struct Payload {
    id: String,
    title: String,
    segments: usize,
    action_items: usize,
    body: Vec<u8>,
}

/// The full fixture, made distinct per index: its own id, title and overview (so its own memory).
fn payloads() -> Vec<Payload> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/omi/conversation_created_full.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let template: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let segments = template["transcript_segments"].as_array().unwrap().len();
    let action_items = template["structured"]["action_items"]
        .as_array()
        .unwrap()
        .len();
    let title = template["structured"]["title"].as_str().unwrap().to_owned();
    let overview = template["structured"]["overview"]
        .as_str()
        .unwrap()
        .to_owned();
    (0..CONVERSATIONS)
        .map(|n| {
            let id = uuid::Uuid::new_v4().to_string();
            let title = format!("{title} (crash stream #{n})");
            let mut conversation = template.clone();
            conversation["id"] = json!(id);
            conversation["structured"]["title"] = json!(title);
            conversation["structured"]["overview"] =
                json!(format!("{overview} Stream entry {n} of {CONVERSATIONS}."));
            Payload {
                id,
                title,
                segments,
                action_items,
                body: serde_json::to_vec(&conversation).unwrap(),
            }
        })
        .collect()
}

/// What became of one request of the stream.
enum Outcome {
    /// 200 with the whole body read: Omi would consider it delivered.
    Acknowledged,
    /// Any other HTTP status: never expected, the server was healthy until the kill.
    Status(StatusCode, String),
    /// No complete answer: connection refused, reset or cut mid-body by the kill.
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Acknowledged => write!(f, "200 {{}}"),
            Self::Status(status, body) => write!(f, "{status}: {body}"),
            Self::Failed(error) => write!(f, "failed: {error}"),
        }
    }
}

fn describe<'a>(outcomes: impl Iterator<Item = (&'a usize, &'a Outcome)>) -> String {
    outcomes
        .map(|(i, outcome)| format!("#{i}: {outcome}"))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn post(client: &Client, url: &str, body: &[u8]) -> Outcome {
    let response = match client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = response.status();
    match response.text().await {
        Ok(text) if status == StatusCode::OK => {
            assert_eq!(text, "{}", "a conversation webhook answers an empty object");
            Outcome::Acknowledged
        }
        Ok(text) => Outcome::Status(status, text),
        Err(e) => Outcome::Failed(format!("{status} but the body was cut: {e}")),
    }
}

/// Shared by the stream's tasks.
struct Stream {
    payloads: Arc<Vec<Payload>>,
    url: String,
    next: AtomicUsize,
    acknowledged: AtomicUsize,
    in_flight: AtomicUsize,
    stop: AtomicBool,
    threshold: Notify,
    outcomes: Mutex<BTreeMap<usize, Outcome>>,
}

async fn stream_worker(client: Client, stream: Arc<Stream>) {
    loop {
        if stream.stop.load(Ordering::SeqCst) {
            return;
        }
        let index = stream.next.fetch_add(1, Ordering::SeqCst);
        let Some(payload) = stream.payloads.get(index) else {
            return;
        };
        stream.in_flight.fetch_add(1, Ordering::SeqCst);
        let outcome = post(&client, &stream.url, &payload.body).await;
        stream.in_flight.fetch_sub(1, Ordering::SeqCst);
        if matches!(outcome, Outcome::Acknowledged)
            && stream.acknowledged.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER
        {
            stream.threshold.notify_one();
        }
        stream.outcomes.lock().unwrap().insert(index, outcome);
    }
}

async fn get_json(client: &Client, url: String, token: &str) -> (StatusCode, Value) {
    let response = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    (status, body(response).await)
}

/// Every item of a paginated list (`{"items", "next_cursor"}`).
async fn all_items(client: &Client, server: &Server, path: &str, token: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = server.url(&format!("{path}{separator}limit=200"));
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = get_json(client, url, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {page}");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Waits until the inbox holds no pending event; returns how long that took.
async fn wait_for_drain(client: &Client, server: &Server) -> Duration {
    let started = Instant::now();
    loop {
        let url = server.url("/v1/admin/inbox?state=pending&limit=200");
        let (status, page) = get_json(client, url, ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "inbox: {page}");
        let pending = page["items"].as_array().expect("items");
        if pending.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DRAIN_TIMEOUT,
            "{} events still pending after {DRAIN_TIMEOUT:?}, e.g. {}",
            pending.len(),
            pending[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks one recorded conversation: one delivery, its tasks and segments, exactly one summary memory
/// at version 1. Returns the memory's id.
async fn check_conversation(client: &Client, server: &Server, key: &str, p: &Payload) -> String {
    let (status, conversation) = get_json(
        client,
        server.url(&format!("/v1/conversations/{}", p.id)),
        key,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "conversation {}: {conversation}",
        p.id
    );
    assert_eq!(conversation["title"], p.title.as_str(), "{}", p.id);
    assert_eq!(
        conversation["deliveries"], 1,
        "conversation {} was processed more than once: {conversation}",
        p.id
    );
    let count = |field: &str| conversation[field].as_array().map_or(0, Vec::len);
    assert_eq!(count("transcript_segments"), p.segments, "{}", p.id);
    assert_eq!(count("tasks"), p.action_items, "tasks of {}", p.id);
    let memory_id = conversation["memory_id"]
        .as_str()
        .unwrap_or_else(|| panic!("conversation {} has no summary memory", p.id))
        .to_owned();

    let url = server.url(&format!(
        "/v1/memories?source=omi_conversation&conversation_id={}",
        p.id
    ));
    let (status, memories) = get_json(client, url, key).await;
    assert_eq!(status, StatusCode::OK, "{memories}");
    let items = memories["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        1,
        "conversation {} has {} summary memories: {memories}",
        p.id,
        items.len()
    );
    let memory = &items[0];
    assert_eq!(memory["id"], memory_id.as_str(), "{}", p.id);
    assert_eq!(memory["version"], 1, "summary of {}: {memory}", p.id);
    assert_eq!(memory["conversation_id"], p.id.as_str());
    assert!(
        memory["content"]
            .as_str()
            .is_some_and(|c| c.starts_with(&p.title)),
        "summary of {}: {memory}",
        p.id
    );
    memory_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_webhooks_survive_kill_9_and_are_processed_exactly_once() {
    let test_started = Instant::now();
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let payloads = Arc::new(payloads());
    let client = client();

    // 1. A stream of distinct conversations from 16 tasks; SIGKILL after 150 acknowledgements.
    let mut server = Server::start(data_dir.path());
    let ready = server.wait_ready(&client).await;
    println!(
        "first server ready after {ready:.2?} (pid {})",
        server.child.id()
    );
    let stream = Arc::new(Stream {
        payloads: payloads.clone(),
        url: server.webhook_url(),
        next: AtomicUsize::new(0),
        acknowledged: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        threshold: Notify::new(),
        outcomes: Mutex::new(BTreeMap::new()),
    });
    let stream_started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(stream_worker(client.clone(), stream.clone())))
        .collect();
    tokio::time::timeout(KILL_TIMEOUT, stream.threshold.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "only {} of {KILL_AFTER} acknowledgements within {KILL_TIMEOUT:?}; outcomes so far: {}",
                stream.acknowledged.load(Ordering::SeqCst),
                describe(stream.outcomes.lock().unwrap().iter().take(5))
            )
        });
    // No new requests from here on; those already sent are cut by the kill.
    stream.stop.store(true, Ordering::SeqCst);
    let in_flight_at_kill = stream.in_flight.load(Ordering::SeqCst);
    let acknowledged_at_kill = stream.acknowledged.load(Ordering::SeqCst);
    server.kill();
    let killed_after = stream_started.elapsed();
    for worker in workers {
        worker.await.expect("stream task");
    }
    let outcomes = std::mem::take(&mut *stream.outcomes.lock().unwrap());
    let sent = outcomes.len();

    let unexpected = describe(
        outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Status(..))),
    );
    assert!(
        unexpected.is_empty(),
        "non-200 answers before the kill: {unexpected}"
    );
    let acknowledged: Vec<usize> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Acknowledged))
        .map(|(&i, _)| i)
        .collect();
    let unacknowledged: Vec<usize> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(&i, _)| i)
        .collect();
    assert!(acknowledged.len() >= KILL_AFTER);
    let error_sample = describe(
        outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .take(1),
    );
    println!(
        "killed after {killed_after:.2?}: {} sent, {} acknowledged ({acknowledged_at_kill} when the kill was decided), \
         {in_flight_at_kill} in flight at the kill, {} failed, {} never sent; e.g. {error_sample}",
        sent,
        acknowledged.len(),
        unacknowledged.len(),
        CONVERSATIONS - sent
    );

    // 2. A new server on the same data dir.
    let restarted_at = Timestamp::now().as_micros();
    let mut server = Server::start(data_dir.path());
    let ready = server.wait_ready(&client).await;
    println!("restarted server ready after {ready:.2?}");

    // Re-sent acknowledged bodies: answered 200 and deduplicated. The first and the last acknowledged
    // ones (the latter were recorded right before the kill, likely still pending then).
    let resend: Vec<usize> = acknowledged
        .iter()
        .take(RESEND / 2)
        .chain(acknowledged.iter().rev().take(RESEND - RESEND / 2))
        .copied()
        .collect();
    for &i in &resend {
        match post(&client, &server.webhook_url(), &payloads[i].body).await {
            Outcome::Acknowledged => {}
            other => {
                panic!("re-sending acknowledged conversation #{i} after the restart: {other}")
            }
        }
    }

    let drained = wait_for_drain(&client, &server).await;
    println!("inbox drained {drained:.2?} after the restart's re-sends");
    let dead = all_items(&client, &server, "/v1/admin/inbox?state=dead", ADMIN_TOKEN).await;
    assert!(dead.is_empty(), "dead-lettered events: {dead:?}");

    // 3. What the restarted server holds.
    let response = client
        .post(server.url(&format!("/v1/admin/users/{UID}/keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "t"}))
        .send()
        .await
        .expect("create key");
    assert_eq!(response.status(), StatusCode::CREATED);
    let key = body(response).await["key"]
        .as_str()
        .expect("key")
        .to_owned();

    let stored: HashSet<String> = all_items(&client, &server, "/v1/conversations", &key)
        .await
        .iter()
        .map(|c| c["id"].as_str().expect("conversation id").to_owned())
        .collect();
    let by_id: HashMap<&str, usize> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    for id in &stored {
        let i = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("unknown conversation {id}"));
        assert!(
            outcomes.contains_key(i),
            "conversation #{i} exists but was never sent"
        );
    }
    let lost: Vec<usize> = acknowledged
        .iter()
        .copied()
        .filter(|&i| !stored.contains(&payloads[i].id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged conversations were lost: {lost:?}",
        lost.len()
    );
    let recovered: Vec<usize> = unacknowledged
        .iter()
        .copied()
        .filter(|&i| stored.contains(&payloads[i].id))
        .collect();

    let mut memory_ids = Vec::with_capacity(stored.len());
    for &i in acknowledged.iter().chain(&recovered) {
        memory_ids.push(check_conversation(&client, &server, &key, &payloads[i]).await);
    }

    // Exactly one event per recorded conversation, all done: the re-sends added none.
    let done = all_items(&client, &server, "/v1/admin/inbox?state=done", ADMIN_TOKEN).await;
    assert_eq!(
        done.len(),
        stored.len(),
        "inbox events done vs conversations stored"
    );
    let micros = |entry: &Value, field: &str| {
        entry[field].as_str().map(|t| {
            Timestamp::parse("timestamp", t)
                .expect("timestamp")
                .as_micros()
        })
    };
    let finished_after_restart = done
        .iter()
        .filter(|e| micros(e, "processed_at").is_some_and(|at| at >= restarted_at))
        .count();
    let retried = done
        .iter()
        .filter(|e| e["attempts"].as_i64() != Some(1))
        .count();

    // The audit trail: one memory.create per summary memory, nothing else touched a memory.
    let audit = all_items(&client, &server, "/v1/audit", &key).await;
    let mut creates: HashMap<&str, usize> = HashMap::new();
    let mut actions: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &audit {
        let action = event["action"].as_str().expect("action");
        *actions.entry(action).or_default() += 1;
        if action == "memory.create" {
            *creates
                .entry(event["memory_id"].as_str().expect("memory_id"))
                .or_default() += 1;
        }
    }
    for memory_id in &memory_ids {
        assert_eq!(
            creates.get(memory_id.as_str()).copied().unwrap_or(0),
            1,
            "memory.create events for summary memory {memory_id}"
        );
    }
    assert_eq!(
        actions.get("memory.create").copied().unwrap_or(0),
        stored.len(),
        "memory.create events vs conversations: {actions:?}"
    );
    let other_memory_actions: Vec<_> = actions
        .iter()
        .filter(|(a, _)| a.starts_with("memory.") && **a != "memory.create")
        .collect();
    assert!(
        other_memory_actions.is_empty(),
        "unexpected memory changes: {other_memory_actions:?}"
    );

    println!(
        "acknowledged {} / in flight at the kill {in_flight_at_kill} / unacknowledged {} of which recovered {} / \
         re-sent {} / stored {} conversations and {} summary memories, {finished_after_restart} of them \
         processed by the restarted server, {retried} after more than one attempt; audit {actions:?}; total {:.2?}",
        acknowledged.len(),
        unacknowledged.len(),
        recovered.len(),
        resend.len(),
        stored.len(),
        memory_ids.len(),
        test_started.elapsed()
    );
}
