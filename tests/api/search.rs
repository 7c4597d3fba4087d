//! Search through HTTP: full text (any input is a valid query), filters, per-user scoping, soft
//! deletes, semantic search with the local model (when its weights are present) and without it, and
//! search in conversations and their transcripts.

use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, body, problem, spawn_app, spawn_app_with};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
}

fn model_present() -> bool {
    model_dir().join("model.safetensors").exists()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn search(app: &TestApp, key: &str, query: &str) -> Value {
    let response = app
        .request(Method::GET, &format!("/v1/memories/search?{query}"), key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "search {query}");
    body(response).await
}

fn contents(results: &Value) -> Vec<String> {
    results["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["memory"]["content"].as_str().unwrap().to_owned())
        .collect()
}

async fn create(app: &TestApp, key: &str, body_json: Value) -> Value {
    let response = app
        .request(Method::POST, "/v1/memories", key)
        .json(&body_json)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    body(response).await
}

#[tokio::test]
async fn full_text_finds_ranks_and_explains() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    app.create_memory(&key, "Sam drives a red Volvo and loves his car")
        .await;
    app.create_memory(&key, "Dinner with Sam on Friday").await;
    app.create_memory(&key, "Buy running shoes").await;

    let results = search(
        &app,
        &key,
        "q=What%20did%20Sam%20say%20about%20his%20car%3F&mode=text",
    )
    .await;
    assert_eq!(results["mode"], "text");
    let found = contents(&results);
    assert_eq!(found.len(), 2, "{results}");
    assert_eq!(found[0], "Sam drives a red Volvo and loves his car");
    let first = &results["items"][0];
    assert_eq!(first["signals"]["text"]["rank"], 1);
    assert!(first["signals"]["text"]["score"].as_f64().unwrap() > 0.0);
    assert!(first["signals"]["semantic"].is_null());
    assert!(
        first["snippet"].as_str().unwrap().contains("[car]"),
        "{first}"
    );

    // Stemming: "runs" finds "running".
    assert_eq!(
        contents(&search(&app, &key, "q=runs&mode=text").await),
        vec!["Buy running shoes"]
    );
}

#[tokio::test]
async fn any_text_is_a_valid_query() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    app.create_memory(&key, "NOT a problem: col*umn \"quoted\" (text) AND more")
        .await;
    for q in [
        "\"",
        "*",
        "-",
        ":",
        "NOT",
        "AND",
        "OR",
        "(",
        ")",
        "a:b",
        "^",
        "NEAR(a b)",
        "col:umn*",
        "\"unbalanced",
        "' OR 1=1 --",
        "🙂",
        "...",
        "the",
    ] {
        let response = app
            .request(
                Method::GET,
                &format!("/v1/memories/search?q={}&mode=text", encode(q)),
                &key,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "query {q:?}");
    }
    let found = contents(
        &search(
            &app,
            &key,
            &format!("q={}&mode=text", encode("NOT (quoted)")),
        )
        .await,
    );
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn search_is_per_user_and_skips_deleted() {
    let app = spawn_app().await;
    let alice = app.user_with_key("alice").await;
    let bob = app.user_with_key("bob").await;
    let memory = app
        .create_memory(&alice, "The spare key is under the blue flowerpot")
        .await;
    app.create_memory(&bob, "Bob's flowerpot is green").await;

    let found = contents(&search(&app, &alice, "q=flowerpot&mode=text").await);
    assert_eq!(found, vec!["The spare key is under the blue flowerpot"]);
    let found = contents(&search(&app, &bob, "q=flowerpot&mode=text").await);
    assert_eq!(found, vec!["Bob's flowerpot is green"]);

    let id = memory["id"].as_str().unwrap();
    let response = app
        .request(Method::DELETE, &format!("/v1/memories/{id}"), &alice)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert!(contents(&search(&app, &alice, "q=flowerpot&mode=text").await).is_empty());
    let response = app
        .request(Method::POST, &format!("/v1/memories/{id}/restore"), &alice)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        contents(&search(&app, &alice, "q=flowerpot&mode=text").await).len(),
        1
    );

    // An edit replaces the indexed words.
    let response = app
        .request(Method::PATCH, &format!("/v1/memories/{id}"), &alice)
        .json(&json!({"content": "The spare key is with the neighbour", "expected_version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(contents(&search(&app, &alice, "q=flowerpot&mode=text").await).is_empty());
    assert_eq!(
        contents(&search(&app, &alice, "q=neighbour&mode=text").await).len(),
        1
    );
}

#[tokio::test]
async fn filters_apply_before_ranking() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    create(
        &app,
        &key,
        json!({"content": "Coffee with Ana at the lab", "tags": ["work"], "conversation_id": "c1"}),
    )
    .await;
    create(&app, &key, json!({"content": "Coffee beans from Ethiopia", "tags": ["home", "shopping"], "category": "interesting"})).await;
    create(
        &app,
        &key,
        json!({"content": "Coffee grinder is broken", "tags": ["home"]}),
    )
    .await;

    let count = |r: &Value| r["items"].as_array().unwrap().len();
    assert_eq!(count(&search(&app, &key, "q=coffee&mode=text").await), 3);
    assert_eq!(
        count(&search(&app, &key, "q=coffee&mode=text&tags=home").await),
        2
    );
    assert_eq!(
        count(
            &search(
                &app,
                &key,
                "q=coffee&mode=text&tags=home,shopping&tags_mode=all"
            )
            .await
        ),
        1
    );
    assert_eq!(
        count(&search(&app, &key, "q=coffee&mode=text&category=interesting").await),
        1
    );
    assert_eq!(
        count(&search(&app, &key, "q=coffee&mode=text&conversation_id=c1").await),
        1
    );
    assert_eq!(
        count(&search(&app, &key, "q=coffee&mode=text&source=manual").await),
        0
    );
    assert_eq!(
        count(
            &search(
                &app,
                &key,
                "q=coffee&mode=text&created_before=2000-01-01T00:00:00Z"
            )
            .await
        ),
        0
    );
    assert_eq!(
        count(&search(&app, &key, "q=coffee&mode=text&limit=1").await),
        1
    );
}

#[tokio::test]
async fn bad_parameters_are_refused() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    for query in [
        "q=x&colour=red",
        "q=x&mode=fuzzy",
        "q=",
        "q=%20%20",
        "mode=text",
        "q=x&limit=0",
        "q=x&limit=101",
        "q=x&created_after=yesterday",
        "q=x&category=nonsense",
    ] {
        let response = app
            .request(Method::GET, &format!("/v1/memories/search?{query}"), &key)
            .send()
            .await
            .unwrap();
        problem(response, 400).await;
    }
    let long = "a".repeat(1_001);
    let response = app
        .request(Method::GET, &format!("/v1/memories/search?q={long}"), &key)
        .send()
        .await
        .unwrap();
    problem(response, 400).await;
    let response = app
        .client
        .get(app.url("/v1/memories/search?q=x"))
        .send()
        .await
        .unwrap();
    problem(response, 401).await;
}

#[tokio::test]
async fn without_a_model_search_is_text_only_and_says_so() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    app.create_memory(&key, "I like espresso").await;
    for mode in ["semantic", "hybrid"] {
        let results = search(&app, &key, &format!("q=espresso&mode={mode}")).await;
        assert_eq!(results["mode"], "text", "{results}");
        assert_eq!(results["semantic_available"], false);
        assert!(
            results["notice"]
                .as_str()
                .unwrap()
                .contains("semantic search unavailable")
        );
        assert_eq!(contents(&results), vec!["I like espresso"]);
    }
}

/// Waits until semantic search sees `expected` memories.
async fn embedded(app: &TestApp, key: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let results = search(app, key, "q=anything&mode=semantic&limit=100").await;
        if results["items"].as_array().unwrap().len() >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "memories were not embedded: {results}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn semantic_and_hybrid_find_meaning() {
    if !model_present() {
        eprintln!(
            "skipped: no model weights in {}; run `python3 scripts/fetch_model.py`",
            model_dir().display()
        );
        return;
    }
    let app = spawn_app_with(|c| c.embedding.model_dir = model_dir()).await;
    let key = app.user_with_key("alice").await;
    let other = app.user_with_key("bob").await;
    for text in [
        "I like espresso, especially a double shot in the morning",
        "My car is red",
        "The user is allergic to peanuts",
    ] {
        app.create_memory(&key, text).await;
    }
    app.create_memory(&other, "Bob drinks strong coffee every day")
        .await;
    embedded(&app, &key, 3).await;

    let results = search(
        &app,
        &key,
        "q=What%20drinks%20do%20I%20enjoy%3F&mode=semantic",
    )
    .await;
    assert_eq!(results["mode"], "semantic");
    assert_eq!(results["semantic_available"], true);
    let found = contents(&results);
    assert_eq!(found.len(), 3, "only alice's memories: {results}");
    assert!(found[0].contains("espresso"), "{results}");
    let top = &results["items"][0];
    assert_eq!(top["signals"]["semantic"]["rank"], 1);
    assert!(top["signals"]["text"].is_null());

    let results = search(&app, &key, "q=coffee%20drinks&mode=hybrid").await;
    assert_eq!(results["mode"], "hybrid");
    assert!(contents(&results)[0].contains("espresso"), "{results}");

    // A deleted memory leaves vector search at once.
    let id = results["items"][0]["memory"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .request(Method::DELETE, &format!("/v1/memories/{id}"), &key)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let results = search(
        &app,
        &key,
        "q=What%20drinks%20do%20I%20enjoy%3F&mode=semantic",
    )
    .await;
    assert!(contents(&results).iter().all(|c| !c.contains("espresso")));
}

#[tokio::test]
async fn each_memory_reports_its_embedding_status() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let memory = app.create_memory(&key, "I like espresso").await;
    let id = memory["id"].as_str().unwrap();
    let state = body(
        app.request(Method::GET, &format!("/v1/memories/{id}/embedding"), &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(state["status"], "pending", "no model here: {state}");
    assert_eq!(state["semantic_available"], false);
    let other = app.user_with_key("bob").await;
    let response = app
        .request(Method::GET, &format!("/v1/memories/{id}/embedding"), &other)
        .send()
        .await
        .unwrap();
    problem(response, 404).await;

    if !model_present() {
        return;
    }
    let app = spawn_app_with(|c| c.embedding.model_dir = model_dir()).await;
    let key = app.user_with_key("alice").await;
    let memory = app.create_memory(&key, "I like espresso").await;
    let id = memory["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = body(
            app.request(Method::GET, &format!("/v1/memories/{id}/embedding"), &key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(state["model"], "all-MiniLM-L6-v2");
        if state["status"] == "ready" {
            break;
        }
        assert_eq!(state["status"], "pending");
        assert!(Instant::now() < deadline, "never embedded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_cli_searches_too() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], model: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_angel-memory"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ANGEL_MEMORY_") {
                command.env_remove(name);
            }
        }
        let model_dir = if model {
            model_dir()
        } else {
            dir.path().join("no-model")
        };
        command
            .env("ANGEL_MEMORY_EMBEDDING__MODEL_DIR", model_dir)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    run(&["user", "add", "alice"], false);
    run(
        &["memory", "add", "--user", "alice", "Sam drives a red Volvo"],
        false,
    );
    run(
        &[
            "memory",
            "add",
            "--user",
            "alice",
            "I like espresso in the morning",
        ],
        false,
    );
    let found: Value = serde_json::from_str(&run(
        &[
            "--json", "search", "--user", "alice", "--mode", "text", "Volvo",
        ],
        false,
    ))
    .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["mode"], "text");
    let found: Value = serde_json::from_str(&run(
        &["--json", "search", "--user", "alice", "coffee"],
        false,
    ))
    .unwrap();
    assert_eq!(found["semantic_available"], false);
    assert!(found["notice"].is_string());
    if model_present() {
        let found: Value = serde_json::from_str(&run(
            &[
                "--json", "search", "--user", "alice", "--mode", "semantic", "coffee",
            ],
            true,
        ))
        .unwrap();
        assert_eq!(found["mode"], "semantic");
        assert!(
            found["items"][0]["memory"]["content"]
                .as_str()
                .unwrap()
                .contains("espresso"),
            "{found}"
        );
    }
}

#[tokio::test]
async fn conversations_are_searchable_by_title_overview_and_transcript() {
    const TOKEN: &str = "7Qm2Xr9LbV4sK8nW1cYt6PdZ3hJf0GaE";
    const UID: &str = "5Z9Lil2WHl1vvn5iP2pZw0fKm4BR";
    let app = spawn_app_with(|c| c.webhook_token = Some(TOKEN.to_owned().into())).await;
    let key = app.user_with_key(UID).await;
    let other = app.user_with_key("someone-else").await;
    let fixture = std::fs::read(format!(
        "{}/../shared/fixtures/omi/conversation_created_full.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let response = app
        .client
        .post(app.url(&format!(
            "/webhooks/omi/conversation?token={TOKEN}&uid={UID}"
        )))
        .header("content-type", "application/json")
        .body(fixture.clone())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let deadline = Instant::now() + Duration::from_secs(10);
    let find = |q: &'static str, key: String| {
        let app = &app;
        async move {
            let response = app
                .request(
                    Method::GET,
                    &format!("/v1/conversations/search?q={q}"),
                    &key,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            body(response).await
        }
    };
    loop {
        let results = find("kiosk%20budget", key.clone()).await;
        if !results["items"].as_array().unwrap().is_empty() {
            assert_eq!(
                results["items"][0]["conversation"]["title"],
                "Bike-Repair Kiosk Budget and Permit Check"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the conversation was not indexed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A word only the transcript has.
    let results = find("compressor", key.clone()).await;
    assert_eq!(results["items"].as_array().unwrap().len(), 1);
    assert!(
        results["items"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("[compressor]"),
        "{results}"
    );
    // A re-delivered conversation whose transcript changed is indexed anew: the old word is gone,
    // the new one found, and the conversation is still one document.
    let changed = String::from_utf8(fixture.clone())
        .unwrap()
        .replace("compressor", "dynamo");
    let response = app
        .client
        .post(app.url(&format!(
            "/webhooks/omi/conversation?token={TOKEN}&uid={UID}"
        )))
        .header("content-type", "application/json")
        .body(changed)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    loop {
        if find("dynamo", key.clone()).await["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed transcript was not indexed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let results = find("compressor", key.clone()).await;
    assert!(results["items"].as_array().unwrap().is_empty(), "{results}");
    let results = find("kiosk%20budget", key.clone()).await;
    assert_eq!(results["items"].as_array().unwrap().len(), 1, "{results}");
    // Someone else's conversations stay theirs.
    let results = find("kiosk", other).await;
    assert!(results["items"].as_array().unwrap().is_empty());
    let response = app
        .request(
            Method::GET,
            "/v1/conversations/search?q=kiosk&mode=text",
            &key,
        )
        .send()
        .await
        .unwrap();
    problem(response, 400).await;
}

/// The store's side of search, against `&dyn Store`: embedding bookkeeping and vector loading.
/// Vectors here are hand-written unit vectors of a three-dimensional test model: the store only keeps
/// them, it never computes them.
mod store {
    use angel_memory::domain::{Content, Source, Timestamp, Uid};
    use angel_memory::store::*;
    use std::sync::Arc;

    fn model(revision: &str) -> VectorModel {
        VectorModel {
            name: "test-model".into(),
            revision: revision.into(),
            dim: 3,
        }
    }

    async fn open() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            sqlite::SqliteStore::open(&dir.path().join("t.db"), &sqlite::PoolOptions::default())
                .unwrap();
        (Arc::new(store), dir)
    }

    fn ctx() -> Context {
        Context::new(Actor::System, None)
    }

    async fn memory(store: &dyn Store, uid: &Uid, text: &str) -> angel_memory::domain::Memory {
        store
            .create_memory(
                uid,
                NewMemory::new(Content::parse(text).unwrap(), Source::Api),
                &ctx(),
            )
            .await
            .unwrap()
            .into_memory()
    }

    async fn due(store: &dyn Store) -> Vec<EmbeddingJob> {
        store
            .embedding_backlog(Timestamp::now(), 100)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn embeddings_move_from_pending_to_ready_and_back() {
        let (store, _dir) = open().await;
        let alice = Uid::parse("alice").unwrap();
        let bob = Uid::parse("bob").unwrap();
        store.create_user(&alice).await.unwrap();
        store.create_user(&bob).await.unwrap();
        let first = memory(&*store, &alice, "first memory").await;
        let second = memory(&*store, &alice, "second memory").await;
        memory(&*store, &bob, "bob's memory").await;
        let m = model("r1");

        assert_eq!(
            store
                .embedding_status(&alice, first.id, Some(&m))
                .await
                .unwrap(),
            EmbeddingStatus::Pending
        );
        let jobs = due(&*store).await;
        assert_eq!(jobs.len(), 3);
        let results = jobs
            .into_iter()
            .map(|job| {
                let outcome = if job.memory_id == second.id {
                    EmbeddingOutcome::Failed("too long".into())
                } else {
                    EmbeddingOutcome::Vector(vec![0.6, 0.8, 0.0])
                };
                (job, outcome)
            })
            .collect();
        store.save_embeddings(&m, results).await.unwrap();
        assert!(due(&*store).await.is_empty());
        assert_eq!(
            store
                .embedding_status(&alice, first.id, Some(&m))
                .await
                .unwrap(),
            EmbeddingStatus::Ready
        );
        assert_eq!(
            store
                .embedding_status(&alice, second.id, Some(&m))
                .await
                .unwrap(),
            EmbeddingStatus::Failed
        );
        assert_eq!(
            store.embedding_counts(&alice, Some(&m)).await.unwrap(),
            EmbeddingCounts {
                pending: 0,
                ready: 1,
                failed: 1
            }
        );
        // Only the user's own ready vectors load, exactly as stored.
        let with_vectors = |held: Vec<SearchableMemory>| -> Vec<(angel_memory::domain::MemoryId, Vec<f32>, Timestamp)> {
            held.into_iter()
                .filter_map(|m| Some((m.id, m.vector?, m.occurred_at)))
                .collect()
        };
        let held = store
            .searchable_memories(&alice, Some(&m), None)
            .await
            .unwrap();
        // With when each remembered thing happened (dates in questions rank by it).
        assert_eq!(
            with_vectors(held),
            vec![(first.id, vec![0.6, 0.8, 0.0], first.occurred_at)]
        );

        // An edit makes the vector stale: pending again, queued, and out of vector search.
        let generation = store.search_generation(&alice).await.unwrap();
        store
            .update_memory(
                &alice,
                first.id,
                1,
                MemoryPatch {
                    content: Some(Content::parse("first memory, edited").unwrap()),
                    ..MemoryPatch::default()
                },
                &ctx(),
            )
            .await
            .unwrap();
        assert_ne!(store.search_generation(&alice).await.unwrap(), generation);
        assert_eq!(
            store
                .embedding_status(&alice, first.id, Some(&m))
                .await
                .unwrap(),
            EmbeddingStatus::Pending
        );
        let held = store
            .searchable_memories(&alice, Some(&m), None)
            .await
            .unwrap();
        assert!(with_vectors(held).is_empty());
        assert_eq!(due(&*store).await.len(), 1);

        // A vector computed from the old text is not stored for the new one.
        let stale = EmbeddingJob {
            content_hash: "not-the-current-hash".into(),
            ..due(&*store).await.remove(0)
        };
        store
            .save_embeddings(
                &m,
                vec![(stale, EmbeddingOutcome::Vector(vec![1.0, 0.0, 0.0]))],
            )
            .await
            .unwrap();
        assert_eq!(due(&*store).await.len(), 1, "still queued for the new text");

        // Retries wait.
        let job = due(&*store).await.remove(0);
        let later = Timestamp::from_micros(Timestamp::now().as_micros() + 60_000_000);
        store
            .save_embeddings(&m, vec![(job, EmbeddingOutcome::Retry(later))])
            .await
            .unwrap();
        assert!(due(&*store).await.is_empty());
    }

    #[tokio::test]
    async fn a_new_model_requeues_and_deletes_leave_vector_search() {
        let (store, _dir) = open().await;
        let alice = Uid::parse("alice").unwrap();
        store.create_user(&alice).await.unwrap();
        let a = memory(&*store, &alice, "alpha").await;
        let b = memory(&*store, &alice, "beta").await;
        let old = model("r1");
        let jobs = due(&*store).await;
        let results = jobs
            .into_iter()
            .map(|j| (j, EmbeddingOutcome::Vector(vec![0.0, 0.0, 1.0])))
            .collect();
        store.save_embeddings(&old, results).await.unwrap();
        assert_eq!(store.enqueue_stale_embeddings(&old).await.unwrap(), 0);

        let new = model("r2");
        assert_eq!(
            store
                .embedding_status(&alice, a.id, Some(&new))
                .await
                .unwrap(),
            EmbeddingStatus::Pending
        );
        let held = store
            .searchable_memories(&alice, Some(&new), None)
            .await
            .unwrap();
        assert_eq!(
            held.len(),
            2,
            "every active memory is searchable by its words"
        );
        assert!(
            held.iter().all(|m| m.vector.is_none()),
            "but has no vector of the new model"
        );
        assert_eq!(store.enqueue_stale_embeddings(&new).await.unwrap(), 2);
        assert_eq!(due(&*store).await.len(), 2);

        store
            .delete_memory(&alice, b.id, None, &ctx())
            .await
            .unwrap();
        assert_eq!(
            due(&*store).await.len(),
            1,
            "a deleted memory leaves the queue"
        );
        let held = store
            .searchable_memories(&alice, Some(&old), None)
            .await
            .unwrap();
        assert_eq!(
            held.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![a.id],
            "and search"
        );
        assert_eq!(held[0].vector.as_deref(), Some(&[0.0, 0.0, 1.0][..]));
        // Filters see only active memories.
        let filtered = store
            .filtered_memory_ids(&alice, &SearchFilter::default())
            .await
            .unwrap();
        assert_eq!(filtered, vec![a.id]);
    }

    async fn text_search(
        searcher: &angel_memory::search::Searcher,
        uid: &Uid,
        query: &str,
    ) -> Vec<angel_memory::search::SearchHit> {
        let request = angel_memory::search::SearchRequest {
            query: query.into(),
            mode: angel_memory::search::Mode::Text,
            limit: 10,
            filter: SearchFilter::default(),
            tuning: Default::default(),
        };
        searcher.search_memories(uid, &request).await.unwrap().items
    }

    #[tokio::test]
    async fn full_text_is_scoped_ranked_and_follows_every_change() {
        let (store, _dir) = open().await;
        let searcher = angel_memory::search::Searcher::new(Arc::clone(&store), Err("none".into()));
        let alice = Uid::parse("alice").unwrap();
        let bob = Uid::parse("bob").unwrap();
        store.create_user(&alice).await.unwrap();
        store.create_user(&bob).await.unwrap();
        let car = memory(&*store, &alice, "Sam's car is a red car").await;
        memory(&*store, &alice, "Sam likes tea").await;
        memory(&*store, &bob, "Bob's car is blue").await;
        let hits = text_search(&searcher, &alice, "Sam car").await;
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].memory.id, car.id, "both terms rank first");
        assert!(hits[0].score > hits[1].score && hits[1].score > 0.0);

        // More changes than the index holds apart (2,000): the user is read again, whole.
        for batch in 0..3 {
            let memories = (0..700)
                .map(|i| {
                    let text = format!("kayak trip number {}", batch * 700 + i);
                    NewMemory::new(Content::parse(&text).unwrap(), Source::Api)
                })
                .collect();
            let results = store
                .create_memories(&alice, memories, &ctx())
                .await
                .unwrap();
            assert!(results.iter().all(Result::is_ok));
        }
        let found = text_search(&searcher, &alice, "2099").await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].memory.content.as_str(), "kayak trip number 2099");
        assert_eq!(
            text_search(&searcher, &alice, "Sam car").await[0].memory.id,
            car.id
        );

        // Each change is seen by the next search: a new memory, an edit, a delete, a restore.
        let boat = memory(&*store, &alice, "Sam's boat").await;
        assert_eq!(text_search(&searcher, &alice, "boat").await.len(), 1);
        store
            .update_memory(
                &alice,
                boat.id,
                boat.version,
                MemoryPatch {
                    content: Some(Content::parse("Sam's canoe").unwrap()),
                    ..MemoryPatch::default()
                },
                &ctx(),
            )
            .await
            .unwrap();
        assert!(text_search(&searcher, &alice, "boat").await.is_empty());
        assert_eq!(text_search(&searcher, &alice, "canoe").await.len(), 1);
        store
            .delete_memory(&alice, car.id, None, &ctx())
            .await
            .unwrap();
        assert!(text_search(&searcher, &alice, "red").await.is_empty());
        store.restore_memory(&alice, car.id, &ctx()).await.unwrap();
        assert_eq!(text_search(&searcher, &alice, "red").await.len(), 1);

        // Purge removes it entirely.
        store
            .delete_memory(&alice, car.id, None, &ctx())
            .await
            .unwrap();
        let far_future = Timestamp::from_micros(Timestamp::now().as_micros() + 1_000_000_000);
        store
            .purge_deleted(Some(&alice), far_future, &ctx())
            .await
            .unwrap();
        let hits = text_search(&searcher, &alice, "Sam car").await;
        assert_eq!(hits.len(), 2, "the tea and the canoe");
        assert!(hits.iter().all(|h| h.memory.id != car.id));
        // Deleting the user empties their index, also for a user created again under that uid.
        store.delete_user(&alice).await.unwrap();
        store.create_user(&alice).await.unwrap();
        assert!(text_search(&searcher, &alice, "Sam car").await.is_empty());
        assert!(text_search(&searcher, &alice, "").await.is_empty());
        assert_eq!(text_search(&searcher, &bob, "car").await.len(), 1);
    }

    /// The conversations' full-text index lives in a file of its own, written by its own thread: a
    /// search still sees every write before it (no waiting in the caller), follows edits and deletes,
    /// and a lost index file is rebuilt from the store.
    #[tokio::test]
    async fn conversation_index_follows_the_store_and_is_rebuilt_when_lost() {
        use angel_memory::domain::ConversationTitle;

        fn conversation(session: &str, title: &str) -> NewConversation {
            let mut conversation = crate::helpers::api_conversation(session, title);
            conversation.conversation.overview = "Notes from the harbour office".into();
            conversation
        }
        async fn titles(store: &dyn Store, uid: &Uid, words: &str) -> Vec<String> {
            let mut found: Vec<String> = store
                .search_conversations(uid, words, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|hit| hit.conversation.title)
                .collect();
            found.sort();
            found
        }
        fn created_id(created: ConversationCreated) -> String {
            match created {
                ConversationCreated::New(c) => c.id,
                other => panic!("expected a new conversation, got {other:?}"),
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (alice, bob) = (Uid::parse("alice").unwrap(), Uid::parse("bob").unwrap());
        {
            let store = sqlite::SqliteStore::open(&path, &sqlite::PoolOptions::default()).unwrap();
            for uid in [&alice, &bob] {
                store.create_user(uid).await.unwrap();
            }
            let ferry = created_id(
                store
                    .create_conversation(&alice, conversation("s1", "Ferry timetable"), &ctx())
                    .await
                    .unwrap(),
            );
            let crane = created_id(
                store
                    .create_conversation(&alice, conversation("s2", "Crane permits"), &ctx())
                    .await
                    .unwrap(),
            );
            store
                .create_conversation(&bob, conversation("s3", "Ferry tickets"), &ctx())
                .await
                .unwrap();
            assert_eq!(
                titles(&store, &alice, "harbour").await,
                ["Crane permits", "Ferry timetable"]
            );
            assert_eq!(titles(&store, &bob, "ferry").await, ["Ferry tickets"]);

            store
                .delete_conversation(&alice, &crane, &ctx())
                .await
                .unwrap();
            store
                .update_conversation(
                    &alice,
                    &ferry,
                    ConversationPatch {
                        title: Some(ConversationTitle::parse("Lighthouse visit").unwrap()),
                        discarded: None,
                    },
                    &ctx(),
                )
                .await
                .unwrap();
            assert_eq!(
                titles(&store, &alice, "harbour").await,
                ["Lighthouse visit"]
            );
            assert!(titles(&store, &alice, "crane").await.is_empty());
            assert!(titles(&store, &alice, "ferry").await.is_empty());
        }

        let index = sqlite::conversation_index_path(&path);
        assert!(
            index.is_file(),
            "{} is where the index lives",
            index.display()
        );
        for suffix in ["", "-wal", "-shm"] {
            let mut file = index.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
        let store = sqlite::SqliteStore::open(&path, &sqlite::PoolOptions::default()).unwrap();
        assert_eq!(
            titles(&store, &alice, "lighthouse").await,
            ["Lighthouse visit"]
        );
        assert_eq!(titles(&store, &bob, "ferry").await, ["Ferry tickets"]);
        assert!(titles(&store, &alice, "crane").await.is_empty());
    }
}
