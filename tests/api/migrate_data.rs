//! `angel-memory migrate-data`: a SQLite deployment — memories with their history, deleted ones, the
//! audit trail, keys, idempotency records, a pending webhook event, vectors and the embedding queue,
//! a recording — moves to PostgreSQL, and both stores then answer every question the same way.
//! Skipped when no PostgreSQL is reachable (required in CI).

use angel_memory::domain::{
    Content, KeyName, MemoryId, NewTask, Source, Tags, TaskDescription, Timestamp, Uid,
};
use angel_memory::http::new_key;
use angel_memory::store::postgres::{PgOptions, PostgresStore};
use angel_memory::store::sqlite::{PoolOptions, SqliteStore};
use angel_memory::store::*;
use std::process::Command;

use crate::test_database::TestDatabase;

fn ctx() -> Context {
    Context::new(Actor::System, Some("migrate-test".into()))
}

fn model() -> VectorModel {
    VectorModel {
        name: "test-model".into(),
        revision: "r1".into(),
        dim: 3,
    }
}

fn memory(text: &str, tags: &[&str]) -> NewMemory {
    NewMemory {
        tags: Tags::parse(tags).unwrap(),
        ..NewMemory::new(Content::parse(text).unwrap(), Source::Api)
    }
}

/// Fills a deployment with one of everything the store keeps; returns a key's secret hash.
async fn fill(store: &dyn Store) -> String {
    let alice = Uid::parse("alice").unwrap();
    let bob = Uid::parse("bob").unwrap();
    store.create_user(&alice).await.unwrap();
    store.create_user(&bob).await.unwrap();
    let (secret, key) = new_key(KeyName::parse("laptop").unwrap());
    store.create_key(&alice, key, &ctx()).await.unwrap();
    // Alice sends her memories to Omi: they leave items in the outbox.
    let sync = SyncSettings {
        push_memories: true,
        notify: vec![NotifyEvent::MemoryCreated],
        ..SyncSettings::default()
    };
    store.set_omi_sync_settings(&alice, sync).await.unwrap();
    store
        .set_omi_pull_checkpoint(&alice, "memories", Some(100))
        .await
        .unwrap();
    store
        .record_omi_status(
            "api.omi.me",
            serde_json::json!({"breaker": {"state": "closed"}}),
        )
        .await
        .unwrap();
    let first = store
        .create_memory(&alice, memory("Sam drives a red Volvo", &["cars"]), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .update_memory(
            &alice,
            first.id,
            1,
            MemoryPatch {
                content: Some(Content::parse("Sam drives a blue Volvo").unwrap()),
                ..MemoryPatch::default()
            },
            &ctx(),
        )
        .await
        .unwrap();
    let gone = store
        .create_memory(&alice, memory("An old note", &[]), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .delete_memory(&alice, gone.id, None, &ctx())
        .await
        .unwrap();
    for n in 0..30 {
        store
            .create_memory(
                &bob,
                memory(&format!("Bob's memory number {n}"), &["bulk"]),
                &ctx(),
            )
            .await
            .unwrap();
    }
    // Half the vectors computed, half still queued.
    let jobs = store
        .embedding_backlog(Timestamp::now(), 100)
        .await
        .unwrap();
    let results = jobs
        .into_iter()
        .step_by(2)
        .map(|job| (job, EmbeddingOutcome::Vector(vec![0.6, 0.8, 0.0])))
        .collect();
    store.save_embeddings(&model(), results).await.unwrap();
    // A webhook event acknowledged but not processed yet.
    store
        .ingest(
            &alice,
            false,
            NewInboxEvent {
                kind: EventKind::Conversation,
                dedupe_key: Some("delivery-1".into()),
                body: br#"{"id": "c1"}"#.to_vec(),
            },
            None,
            &ctx(),
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    store
        .idempotency_begin(&alice, "idem-1", "fp", now, Timestamp::from_micros(0))
        .await
        .unwrap();
    store
        .idempotency_complete(
            &alice,
            "idem-1",
            StoredResponse {
                status: 201,
                content_type: Some("application/json".into()),
                location: None,
                body: b"{}".to_vec(),
            },
        )
        .await
        .unwrap();
    store
        .start_recording(
            &alice,
            Recording {
                id: "rec-1".into(),
                sample_rate: 16_000,
                bytes: 32_000,
                duration_seconds: 1.0,
                started_at: now,
                last_chunk_at: now,
                file: "recordings/alice/rec-1.wav".into(),
            },
        )
        .await
        .unwrap();
    // The Developer API's conversations (one kept, one deleted, both with a client session id), an
    // action item the user wrote, and a browser session of the app home.
    for (session, text) in [("client-1", "Kept"), ("client-2", "Deleted later")] {
        let created = store
            .create_conversation(&alice, api_conversation(session, text), &ctx())
            .await
            .unwrap();
        if session == "client-2" {
            let ConversationCreated::New(c) = created else {
                panic!("a new client session creates a conversation")
            };
            store
                .delete_conversation(&alice, &c.id, &ctx())
                .await
                .unwrap();
        }
    }
    store
        .create_tasks(
            &alice,
            vec![NewTask {
                origin: "api:task-1".into(),
                description: TaskDescription::parse("Call Sam back").unwrap(),
                completed: false,
                due_at: None,
                conversation_id: None,
            }],
            &ctx(),
        )
        .await
        .unwrap();
    store
        .create_ui_session(
            &alice,
            NewUiSession {
                id: uuid::Uuid::new_v4(),
                token_hash: "session-token-hash".into(),
                csrf_token: "csrf".into(),
                method: SignInMethod::Link,
                expires_at: Timestamp::from_micros(now.as_micros() + 86_400_000_000),
            },
            &ctx(),
        )
        .await
        .unwrap();
    secret.hash()
}

/// A client's conversation carrying `text` as its source text.
fn api_conversation(client_session_id: &str, text: &str) -> NewConversation {
    NewConversation {
        source_text: Some(SourceText {
            text: text.into(),
            text_source: "other_text".into(),
            text_source_spec: None,
        }),
        ..crate::helpers::api_conversation(client_session_id, text)
    }
}

/// What a retry of a client session's create returns: the conversation's id, and whether it is gone.
async fn retried(store: &dyn Store, uid: &Uid, session: &str) -> (String, bool) {
    match store
        .create_conversation(uid, api_conversation(session, "Retry"), &ctx())
        .await
        .unwrap()
    {
        ConversationCreated::Existing(c) => (c.id, false),
        ConversationCreated::Deleted { id } => (id, true),
        ConversationCreated::New(c) => panic!("a retry created conversation {}", c.id),
    }
}

async fn all_exported(store: &dyn Store, uid: &Uid) -> Vec<ExportedMemory> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(7);
    loop {
        let got = store.export_memories(uid, page.clone()).await.unwrap();
        out.extend(got.items);
        match got.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return out,
        }
    }
}

/// Everything a caller can ask, from both stores.
async fn assert_same(a: &dyn Store, b: &dyn Store, key_hash: &str) {
    for raw in ["alice", "bob"] {
        let uid = Uid::parse(raw).unwrap();
        assert_eq!(
            all_exported(a, &uid).await,
            all_exported(b, &uid).await,
            "{raw}: memories"
        );
        assert_eq!(
            a.audit_events(&uid, PageRequest::first(200))
                .await
                .unwrap()
                .items,
            b.audit_events(&uid, PageRequest::first(200))
                .await
                .unwrap()
                .items,
            "{raw}: audit trail"
        );
        assert_eq!(a.stats(&uid).await.unwrap(), b.stats(&uid).await.unwrap());
        assert_eq!(
            a.list_keys(&uid).await.unwrap(),
            b.list_keys(&uid).await.unwrap()
        );
        assert_eq!(
            a.embedding_counts(&uid, Some(&model())).await.unwrap(),
            b.embedding_counts(&uid, Some(&model())).await.unwrap()
        );
        let searchable =
            |held: Vec<SearchableMemory>| -> Vec<(MemoryId, String, Option<Vec<f32>>)> {
                held.into_iter()
                    .map(|m| (m.id, m.content, m.vector))
                    .collect()
            };
        assert_eq!(
            searchable(
                a.searchable_memories(&uid, Some(&model()), None)
                    .await
                    .unwrap()
            ),
            searchable(
                b.searchable_memories(&uid, Some(&model()), None)
                    .await
                    .unwrap()
            ),
            "{raw}: what search holds"
        );
        assert_eq!(
            a.recordings(&uid, PageRequest::first(10))
                .await
                .unwrap()
                .items,
            b.recordings(&uid, PageRequest::first(10))
                .await
                .unwrap()
                .items
        );
    }
    assert_eq!(
        a.authenticate(key_hash).await.unwrap(),
        b.authenticate(key_hash).await.unwrap()
    );
    let alice = Uid::parse("alice").unwrap();
    let outbox = pending_outbox(a).await;
    assert!(!outbox.is_empty(), "alice's memories wait for Omi");
    assert_eq!(outbox, pending_outbox(b).await, "the outbox");
    assert_eq!(
        a.omi_sync_settings(&alice).await.unwrap(),
        b.omi_sync_settings(&alice).await.unwrap()
    );
    assert_eq!(
        b.omi_pull_checkpoint(&alice, "memories").await.unwrap(),
        Some(100)
    );
    assert_eq!(
        a.omi_statuses().await.unwrap(),
        b.omi_statuses().await.unwrap()
    );
    assert_eq!(
        a.inbox(InboxState::Pending, PageRequest::first(10))
            .await
            .unwrap()
            .items,
        b.inbox(InboxState::Pending, PageRequest::first(10))
            .await
            .unwrap()
            .items
    );
    let alice = Uid::parse("alice").unwrap();
    let conversations = ConversationQuery {
        created_from: None,
        created_until: None,
        categories: Vec::new(),
        include_discarded: true,
        page: OffsetPage {
            limit: 10,
            offset: 0,
        },
    };
    assert_eq!(
        a.find_conversations(&alice, &conversations).await.unwrap(),
        b.find_conversations(&alice, &conversations).await.unwrap(),
        "conversations"
    );
    for session in ["client-1", "client-2"] {
        assert_eq!(
            retried(a, &alice, session).await,
            retried(b, &alice, session).await,
            "client session {session}"
        );
    }
    assert_eq!(
        a.find_tasks(&alice, &TaskQuery::default()).await.unwrap(),
        b.find_tasks(&alice, &TaskQuery::default()).await.unwrap(),
        "tasks"
    );
    let session = a
        .ui_session("session-token-hash", Timestamp::now())
        .await
        .unwrap();
    assert!(session.is_some());
    assert_eq!(
        session,
        b.ui_session("session-token-hash", Timestamp::now())
            .await
            .unwrap()
    );
    let (ia, ib) = (
        a.idempotency_begin(
            &alice,
            "idem-1",
            "fp",
            Timestamp::from_micros(0),
            Timestamp::from_micros(0),
        )
        .await
        .unwrap(),
        b.idempotency_begin(
            &alice,
            "idem-1",
            "fp",
            Timestamp::from_micros(0),
            Timestamp::from_micros(0),
        )
        .await
        .unwrap(),
    );
    assert!(matches!(ia, IdempotencyBegin::Replay(_)));
    assert_eq!(ia, ib);
}

async fn pending_outbox(store: &dyn Store) -> Vec<OutboxEntry> {
    store
        .outbox(OutboxState::Pending, PageRequest::first(50))
        .await
        .unwrap()
        .items
}

fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_angel-memory"))
        .args(["migrate-data", "--from"])
        .arg(from)
        .args(["--to", to])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run migrate-data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_moves_to_postgres_with_nothing_lost() {
    let Some(database) = TestDatabase::create("migrate_data").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("angel-memory.db");
    let key_hash = {
        let store = SqliteStore::open(&file, &PoolOptions::default()).unwrap();
        fill(&store).await
    };

    let output = migrate(&file, &database.url);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "migrate-data failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("counts and hashes match"), "{stdout}");
    assert!(stdout.contains("verified memory_versions"), "{stdout}");
    // Not a terminal here: progress as plain lines.
    assert!(String::from_utf8_lossy(&output.stderr).contains("memories: "));

    let sqlite = SqliteStore::open(&file, &PoolOptions::default()).unwrap();
    let postgres = PostgresStore::open(&database.url, PgOptions::default())
        .await
        .unwrap();
    assert_same(&sqlite, &postgres, &key_hash).await;

    // The moved deployment goes on working: the audit sequence continues, the queue is claimable.
    let alice = Uid::parse("alice").unwrap();
    postgres
        .create_memory(&alice, memory("A memory after the move", &[]), &ctx())
        .await
        .unwrap();
    let trail = postgres
        .audit_events(&alice, PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(trail.items[0].action, "memory.create");
    assert_eq!(
        trail.items[0].seq,
        sqlite
            .audit_events(&alice, PageRequest::first(1))
            .await
            .unwrap()
            .items[0]
            .seq
            + 1
    );
    assert_eq!(
        postgres
            .due_events(Timestamp::now(), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // A second run into a database that holds users is refused, and changes nothing.
    let again = migrate(&file, &database.url);
    assert_eq!(again.status.code(), Some(4), "{again:?}");
}
