//! Three servers (the real binary, as child processes) over one PostgreSQL database under a webhook
//! load where every conversation is delivered several times, to different servers, concurrently.
//! One server is killed with SIGKILL in the middle. The survivors must finish everything: every
//! distinct event recorded once and processed exactly once (each conversation applied once, one
//! summary memory each, no duplicate memory), nothing pending or dead, and the queue work spread over
//! the instances. Skipped when no PostgreSQL is reachable (required in CI).

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::ADMIN_TOKEN;
use crate::test_database::TestDatabase;

const UID: &str = "5Z9Lil2WHl1vvn5iP2pZw0fKm4BR";
const WEBHOOK_TOKEN: &str = "multi-instance-webhook-token-0123456789";
const INSTANCES: usize = 3;
const CONVERSATIONS: usize = 90;
/// Deliveries of each conversation, to different servers.
const COPIES: usize = 3;
const CLIENTS: usize = 12;
/// A short lease, so the killed server's claimed events come back quickly.
const LEASE_MS: u64 = 1_500;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(database_url: &str, data_dir: &std::path::Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_angel-memory"))
            .arg("serve")
            .env("ANGEL_MEMORY_LISTEN", format!("127.0.0.1:{port}"))
            .env("ANGEL_MEMORY_DATA_DIR", data_dir)
            .env("ANGEL_MEMORY_DATABASE_URL", database_url)
            .env(
                "ANGEL_MEMORY_POSTGRES__CLAIM_LEASE_MS",
                LEASE_MS.to_string(),
            )
            .env("ANGEL_MEMORY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("ANGEL_MEMORY_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .env("ANGEL_MEMORY_RATE_LIMIT__ENABLED", "false")
            .env("ANGEL_MEMORY_EMBEDDING__PROVIDER", "off")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn angel-memory serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&mut self, client: &Client) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("server status") {
                panic!("a server exited before becoming ready: {status}");
            }
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(started.elapsed() < TIMEOUT, "a server did not become ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Distinct conversations from the full fixture: each its own id, title and overview.
fn conversations() -> Vec<(String, Vec<u8>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/omi/conversation_created_full.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let template: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let title = template["structured"]["title"].as_str().unwrap().to_owned();
    (0..CONVERSATIONS)
        .map(|n| {
            let id = uuid::Uuid::new_v4().to_string();
            let mut conversation = template.clone();
            conversation["id"] = json!(id);
            conversation["structured"]["title"] = json!(format!("{title} (instance load #{n})"));
            conversation["structured"]["overview"] = json!(format!(
                "Load entry {n}: the conversation of the multi-instance test."
            ));
            (id, serde_json::to_vec(&conversation).unwrap())
        })
        .collect()
}

/// Posts until acknowledged: a delivery to the killed server is retried on the next one, as Omi
/// retries a failed delivery.
async fn deliver(client: &Client, bases: &[String], first: usize, body: &[u8]) {
    for attempt in 0..20 {
        let base = &bases[(first + attempt) % bases.len()];
        let url = format!("{base}/webhooks/omi/conversation?token={WEBHOOK_TOKEN}&uid={UID}");
        if let Ok(response) = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            && response.status() == StatusCode::OK
            && response.bytes().await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a delivery was never acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_instances_process_every_event_exactly_once_and_survive_a_kill() {
    let Some(database) = TestDatabase::create("multi_instance").await else {
        return;
    };
    angel_memory::tls::install_crypto_provider();
    let client = Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..INSTANCES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut servers: Vec<Server> = dirs
        .iter()
        .map(|dir| Server::start(&database.url, dir.path()))
        .collect();
    for server in &mut servers {
        server.wait_ready(&client).await;
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();

    // Every conversation COPIES times, each copy to another server, all interleaved.
    let conversations = conversations();
    let mut deliveries: Vec<(usize, Arc<Vec<u8>>)> = Vec::new();
    for (n, (_, body)) in conversations.iter().enumerate() {
        let body = Arc::new(body.clone());
        for copy in 0..COPIES {
            deliveries.push((n + copy, Arc::clone(&body)));
        }
    }
    // A fixed shuffle: copies of one conversation arrive far apart and close together alike.
    deliveries.sort_by_key(|(first, body)| (body.len() * 7 + first * 13) % 101);
    let (before_kill, after_kill) = deliveries.split_at(deliveries.len() / 2);

    futures_util::stream::iter(before_kill)
        .for_each_concurrent(CLIENTS, |(first, body)| {
            let (client, bases) = (&client, &bases);
            async move { deliver(client, bases, *first, body).await }
        })
        .await;
    // Killed mid-load: its claimed events (leased) and its share of the queue must be taken over.
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    servers[0].kill();
    let pending_at_kill: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM inbox_events WHERE state = 'pending'")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    let survivors = bases[1..].to_vec();
    futures_util::stream::iter(after_kill)
        .for_each_concurrent(CLIENTS, |(first, body)| {
            let (client, bases) = (&client, &survivors);
            async move { deliver(client, bases, *first, body).await }
        })
        .await;

    // The survivors drain the inbox, the killed server's leased events included.
    let started = Instant::now();
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM inbox_events WHERE state <> 'done'")
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{open} events still not done after {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One inbox row per distinct event, however many deliveries.
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox_events")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        events, CONVERSATIONS as i64,
        "one inbox event per distinct conversation"
    );

    // Each conversation applied exactly once: a second processing would count a second delivery.
    let applied: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT id, deliveries FROM conversations WHERE uid = $1",
    )
    .bind(UID)
    .fetch_all(&mut admin)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let expected: HashSet<&String> = conversations.iter().map(|(id, _)| id).collect();
    assert_eq!(applied.len(), CONVERSATIONS, "every conversation exists");
    assert!(applied.keys().all(|id| expected.contains(id)));
    assert!(
        applied.values().all(|d| *d == 1),
        "every conversation processed exactly once: {:?}",
        applied.values().filter(|d| **d != 1).collect::<Vec<_>>()
    );

    // One summary memory per conversation, at version 1, none doubled; one create in the audit trail each.
    let (memories, max_version): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(MAX(version), 0) FROM memories WHERE uid = $1")
            .bind(UID)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(
        memories, CONVERSATIONS as i64,
        "one summary memory per conversation"
    );
    assert_eq!(
        max_version, 1,
        "no memory was updated by a second processing"
    );
    let linked: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT memory_id) FROM conversations WHERE uid = $1 AND memory_id IS NOT NULL",
    )
    .bind(UID)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(linked, CONVERSATIONS as i64);
    let creates: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE uid = $1 AND action = 'memory.create'",
    )
    .bind(UID)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(creates, CONVERSATIONS as i64);
    let sequence_gaps: i64 =
        sqlx::query_scalar("SELECT MAX(seq) - COUNT(*) FROM audit_events WHERE uid = $1")
            .bind(UID)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(
        sequence_gaps, 0,
        "the audit sequence has no gaps or repeats"
    );

    // The work was shared: every instance's worker claimed events (the last claimant is kept).
    let per_instance: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT claimed_by, COUNT(*) FROM inbox_events GROUP BY claimed_by ORDER BY 2 DESC",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    eprintln!(
        "{CONVERSATIONS} conversations x {COPIES} deliveries over {INSTANCES} instances; \
         {pending_at_kill} pending when one was killed; processed per instance: {per_instance:?}"
    );
    let claimants = per_instance.iter().filter(|(by, _)| by.is_some()).count();
    assert!(
        claimants >= 2,
        "queue work spread over the instances: {per_instance:?}"
    );
    let _ = admin.close().await;
    drop(servers);
}

/// The lease on its own, with two stores as two instances: a claimed event is nobody else's until its
/// lease ends (its worker died); then another instance takes it, and exactly one completion counts.
#[tokio::test]
async fn a_claimed_event_is_exclusive_until_its_lease_ends() {
    use angel_memory::domain::{Timestamp, Uid};
    use angel_memory::store::postgres::{PgOptions, PostgresStore};
    use angel_memory::store::*;

    let Some(database) = TestDatabase::create("claim_lease").await else {
        return;
    };
    let options = PgOptions {
        claim_lease: Duration::from_millis(300),
        ..PgOptions::default()
    };
    let first = PostgresStore::open(&database.url, options.clone())
        .await
        .unwrap();
    let second = PostgresStore::open(&database.url, options).await.unwrap();
    let uid = Uid::parse(UID).unwrap();
    let ctx = Context::new(Actor::System, None);
    let event = NewInboxEvent {
        kind: EventKind::DaySummary,
        dedupe_key: Some("only-once".into()),
        body: b"{}".to_vec(),
    };
    let recorded = first
        .ingest(&uid, true, event.clone(), None, &ctx)
        .await
        .unwrap();
    assert!(matches!(recorded, Ingested::New { .. }));
    // The same delivery through the other instance is a repeat, not a second event.
    let again = second.ingest(&uid, true, event, None, &ctx).await.unwrap();
    assert!(matches!(again, Ingested::Repeat { .. }));

    let claimed = first.due_events(Timestamp::now(), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        second
            .due_events(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to the first"
    );
    // The first instance "dies" holding it; after the lease the second takes it over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = second.due_events(Timestamp::now(), 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, claimed[0].id);
    assert!(
        second
            .complete_event(&uid, &taken[0].id, EventWork::Nothing, &ctx)
            .await
            .unwrap()
    );
    // A late completion by the first instance changes nothing.
    assert!(
        !first
            .complete_event(&uid, &claimed[0].id, EventWork::Nothing, &ctx)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        first
            .due_events(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let done = first
        .inbox(InboxState::Done, PageRequest::first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].attempts, 1);
}
