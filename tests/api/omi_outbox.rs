//! Writes to Omi through the outbox, end to end: sync settings decide what is queued (in the memory's
//! own transaction), the worker delivers through the breaker and Retry-After, dead items wait for an
//! operator, the API keeps working while Omi is down, and the outage drill.

use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::fake_omi::{APP_KEY, FakeOmi};
use crate::helpers::{TestApp, body, on_sqlite, problem, spawn_app_with};
use angel_memory::config::Config;

const UID: &str = "omi-outbox-user";

fn use_fake(config: &mut Config, fake: &FakeOmi) {
    config.omi = crate::omi_client::settings(fake);
    config.omi.outbox.backoff_base_ms = 100;
    config.omi.outbox.backoff_cap_seconds = 1;
}

async fn app_with_fake(adjust: impl FnOnce(&mut Config)) -> (TestApp, FakeOmi, String) {
    let fake = FakeOmi::start().await;
    fake.enable(UID);
    let app = spawn_app_with(|config| {
        use_fake(config, &fake);
        adjust(config);
    })
    .await;
    let key = app.user_with_key(UID).await;
    (app, fake, key)
}

async fn set_sync(app: &TestApp, key: &str, settings: Value) -> Value {
    let response = app
        .request(Method::PUT, "/v1/omi/sync", key)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    body(response).await
}

async fn status(app: &TestApp, key: &str) -> Value {
    let response = app
        .request(Method::GET, "/v1/omi/status", key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    body(response).await
}

/// Polls until `done` holds or the time is up.
async fn eventually(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create(app: &TestApp, key: &str, content: &str, tags: &[&str]) {
    let response = app
        .request(Method::POST, "/v1/memories", key)
        .json(&json!({"content": content, "tags": tags}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn new_memories_that_pass_the_users_filters_reach_omi_with_a_notification() {
    let (app, fake, key) = app_with_fake(|_| {}).await;
    let settings = set_sync(
        &app,
        &key,
        json!({"push_memories": true, "tags": ["Omi"], "notify": ["memory_created"]}),
    )
    .await;
    assert_eq!(settings["tags"], json!(["omi"]));
    let response = app
        .request(Method::POST, "/v1/memories", &key)
        .header("x-request-id", "req-volvo-1")
        .json(&json!({"content": "Sam drives a red Volvo", "tags": ["omi", "cars"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    create(&app, &key, "The wifi password is private", &["home"]).await;
    eventually("the push", Duration::from_secs(10), async || {
        fake.stored_memories(UID) == 1
    })
    .await;
    eventually("the notification", Duration::from_secs(10), async || {
        fake.state.notifications.lock().unwrap().len() == 2
    })
    .await;
    let stored = fake.state.memories.lock().unwrap()[UID]
        .values()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        stored,
        vec![(
            "Sam drives a red Volvo".to_owned(),
            vec!["cars".to_owned(), "omi".to_owned()]
        )]
    );
    let request_ids = fake.state.request_ids.lock().unwrap().clone();
    assert!(
        request_ids.iter().any(|id| id == "req-volvo-1"),
        "the push carries its cause: {request_ids:?}"
    );
    let notes = fake.state.notifications.lock().unwrap().clone();
    assert!(
        notes
            .iter()
            .any(|(uid, m)| uid == UID && m == "Remembered: Sam drives a red Volvo"),
        "{notes:?}"
    );

    // Omi has them; the worker records the deliveries right after.
    eventually(
        "the deliveries to be recorded",
        Duration::from_secs(10),
        async || status(&app, &key).await["outbox"]["delivered"] == 3,
    )
    .await;
    let s = status(&app, &key).await;
    assert_eq!(s["configured"]["integration"], true);
    assert_eq!(s["breaker"]["state"], "closed");
    assert_eq!(s["outbox"]["pending"], 0);
    assert_eq!(s["outbox"]["delivered"], 3);

    // Off again: nothing more is queued; other users are never affected.
    set_sync(&app, &key, json!({"push_memories": false})).await;
    create(&app, &key, "Not for Omi", &["omi"]).await;
    assert_eq!(status(&app, &key).await["outbox"]["pending"], 0);
    let bad = app
        .request(Method::PUT, "/v1/omi/sync", &key)
        .json(&json!({"push_memories": true, "categories": ["nope"]}))
        .send()
        .await
        .unwrap();
    problem(bad, 400).await;
    let unknown = app
        .request(Method::PUT, "/v1/omi/sync", &key)
        .json(&json!({"push_memories": true, "everything": true}))
        .send()
        .await
        .unwrap();
    problem(unknown, 400).await;
}

#[tokio::test]
async fn a_rate_limited_push_waits_for_retry_after_without_using_an_attempt() {
    let (app, fake, key) = app_with_fake(|_| {}).await;
    fake.state.rate_limited.store(1, Ordering::SeqCst);
    fake.state.retry_after_seconds.store(2, Ordering::SeqCst);
    set_sync(&app, &key, json!({"push_memories": true})).await;
    let started = Instant::now();
    create(&app, &key, "Remember the milk", &[]).await;
    eventually("the push", Duration::from_secs(10), async || {
        fake.stored_memories(UID) == 1
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.calls(),
        2,
        "one 429, then the delivery: no call in between"
    );
    eventually(
        "the delivery to be recorded",
        Duration::from_secs(10),
        async || status(&app, &key).await["outbox"]["delivered"] == 1,
    )
    .await;
    let done = body(
        app.admin(Method::GET, "/v1/admin/omi/outbox?state=done")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        done["items"][0]["attempts"], 1,
        "the rate-limited try was not counted: {done}"
    );
}

/// A push that times out may have reached Omi; it is sent again, and Omi keeps one memory because the
/// memory's id is a hash of its content.
#[tokio::test]
async fn a_push_that_timed_out_is_sent_again_and_omi_keeps_one_memory() {
    let (app, fake, key) = app_with_fake(|_| {}).await;
    set_sync(&app, &key, json!({"push_memories": true})).await;
    fake.state.delay_ms.store(1_300, Ordering::SeqCst);
    create(&app, &key, "Slow Omi still gets this once", &[]).await;
    eventually("a timed-out attempt", Duration::from_secs(10), async || {
        status(&app, &key).await["worker"]["last_error"] == "timeout"
    })
    .await;
    fake.state.delay_ms.store(0, Ordering::SeqCst);
    eventually("the delivery", Duration::from_secs(15), async || {
        status(&app, &key).await["outbox"]["delivered"] == 1
    })
    .await;
    assert_eq!(fake.stored_memories(UID), 1);
    assert!(fake.calls() >= 2, "sent again after the timeout");
}

#[tokio::test]
async fn refused_pushes_go_dead_and_an_operator_can_retry_them() {
    let fake = FakeOmi::start().await;
    let app = spawn_app_with(|config| use_fake(config, &fake)).await;
    let key = app.user_with_key(UID).await;
    set_sync(&app, &key, json!({"push_memories": true})).await;
    create(&app, &key, "Pushed before the app was enabled", &[]).await;
    let mut dead = Value::Null;
    eventually("a dead item", Duration::from_secs(10), async || {
        dead = body(
            app.admin(Method::GET, "/v1/admin/omi/outbox")
                .send()
                .await
                .unwrap(),
        )
        .await;
        dead["items"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    let item = &dead["items"][0];
    assert_eq!(item["kind"], "memory");
    assert!(
        item["last_error"].as_str().unwrap().contains("not enabled"),
        "{item}"
    );
    assert!(
        item.get("payload").is_none() && !item.to_string().contains("Pushed before"),
        "no content in the operator view"
    );
    assert_eq!(status(&app, &key).await["outbox"]["dead"], 1);

    fake.enable(UID);
    let id = item["id"].as_str().unwrap();
    let retried = app
        .admin(Method::POST, &format!("/v1/admin/omi/outbox/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    eventually("the retried push", Duration::from_secs(10), async || {
        status(&app, &key).await["outbox"]["delivered"] == 1
    })
    .await;
    assert_eq!(fake.stored_memories(UID), 1);
    let again = app
        .admin(Method::POST, &format!("/v1/admin/omi/outbox/{id}/retry"))
        .send()
        .await
        .unwrap();
    problem(again, 409).await;
    let missing = app
        .admin(Method::POST, "/v1/admin/omi/outbox/nope/retry")
        .send()
        .await
        .unwrap();
    problem(missing, 404).await;
}

#[tokio::test]
async fn a_memory_deleted_before_it_was_sent_is_not_sent() {
    let (app, fake, key) = app_with_fake(|config| config.omi.outbox.enabled = false).await;
    set_sync(&app, &key, json!({"push_memories": true})).await;
    let response = app
        .request(Method::POST, "/v1/memories", &key)
        .json(&json!({"content": "oops"}))
        .send()
        .await
        .unwrap();
    let id = body(response).await["id"].as_str().unwrap().to_owned();
    assert_eq!(status(&app, &key).await["outbox"]["pending"], 1);
    let deleted = app
        .request(Method::DELETE, &format!("/v1/memories/{id}"), &key)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    assert_eq!(status(&app, &key).await["outbox"]["pending"], 0);
    assert_eq!(fake.calls(), 0);
}

/// Omi goes down with 1,000 writes queued, then comes back: every write arrives exactly once, and
/// the calls made during the outage are bounded by the breaker, not by the queue.
#[tokio::test]
async fn outage_drill_every_write_arrives_once_and_the_breaker_bounds_the_calls() {
    const WRITES: usize = 1_000;
    const OUTAGE: Duration = Duration::from_secs(4);
    let (app, fake, key) = app_with_fake(|config| {
        config.omi.breaker.consecutive_failures = 5;
        config.omi.breaker.open_seconds = 1;
        config.omi.breaker.half_open_probes = 1;
        config.omi.outbox.max_attempts = 100;
    })
    .await;
    set_sync(&app, &key, json!({"push_memories": true})).await;
    fake.state.down.store(true, Ordering::SeqCst);
    let outage_started = Instant::now();
    for chunk in 0..WRITES / 100 {
        let memories: Vec<Value> = (0..100)
            .map(|i| json!({"content": format!("drill fact {}", chunk * 100 + i)}))
            .collect();
        let response = app
            .request(Method::POST, "/v1/memories/batch", &key)
            .json(&json!({"memories": memories}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    // While Omi is down, Angel Memory keeps serving: writes, reads, search; status tells what is wrong.
    create(&app, &key, "written during the outage", &[]).await;
    let listed = app
        .request(Method::GET, "/v1/memories?limit=5", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let found = app
        .request(Method::GET, "/v1/memories/search?q=outage&mode=text", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    eventually("the breaker to open", Duration::from_secs(5), async || {
        status(&app, &key).await["breaker"]["state"] != "closed"
    })
    .await;
    let during = status(&app, &key).await;
    assert!(
        during["outbox"]["pending"].as_u64().unwrap() > 0,
        "{during}"
    );
    assert!(
        during["worker"]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("server (503)"),
        "{during}"
    );
    let metrics = app
        .admin(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("omi_breaker_state"),
        "breaker state is exported"
    );

    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    let calls_during_outage = fake.calls();
    let outage = outage_started.elapsed();
    fake.state.down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    let total = WRITES + 1;
    eventually("the queue to drain", Duration::from_secs(60), async || {
        fake.stored_memories(UID) == total
    })
    .await;
    let drained_in = back.elapsed();
    eventually(
        "the last deliveries to be recorded",
        Duration::from_secs(10),
        async || status(&app, &key).await["outbox"]["pending"] == 0,
    )
    .await;

    let deliveries = fake.state.deliveries.lock().unwrap().clone();
    let twice: Vec<_> = deliveries.iter().filter(|(_, n)| **n != 1).collect();
    let calls_after = fake.calls() - calls_during_outage;
    println!(
        "outage drill: {total} writes queued; outage {:.1} s; calls during outage {calls_during_outage}; \
         drained in {:.2} s with {calls_after} calls; {} delivered, {} more than once",
        outage.as_secs_f64(),
        drained_in.as_secs_f64(),
        deliveries.len(),
        twice.len()
    );
    assert_eq!(deliveries.len(), total);
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    // 5 failures open it; then one probe per second of outage (open_seconds = 1).
    let bound = 5 + OUTAGE.as_secs() + 2;
    assert!(
        calls_during_outage <= bound,
        "{calls_during_outage} calls during the outage (bound {bound})"
    );
    // Batches of 25; a round may end a batch early when the rest is not due yet (jittered retry times).
    assert!(
        calls_after <= (total as u64).div_ceil(25) + 10,
        "batches of 25 after the outage: {calls_after}"
    );
    assert_eq!(status(&app, &key).await["breaker"]["state"], "closed");
}

/// The CLI binary against the same database as a server, with the fake Omi configured. Run off the
/// runtime's thread: the fake Omi answers from this same runtime.
async fn cli(app: &TestApp, fake: &FakeOmi, args: &[&str]) -> std::process::Output {
    let command = cli_command(app, fake, args);
    tokio::task::spawn_blocking(move || {
        let mut command = command;
        command.output().expect("run the binary")
    })
    .await
    .unwrap()
}

fn cli_command(app: &TestApp, fake: &FakeOmi, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_angel-memory"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ANGEL_MEMORY_") {
            command.env_remove(name);
        }
    }
    command
        .env("ANGEL_MEMORY_OMI__BASE_URL", fake.url())
        .env("ANGEL_MEMORY_OMI__APP_ID", crate::fake_omi::APP_ID)
        .env("ANGEL_MEMORY_OMI__APP_KEY", APP_KEY)
        .env("ANGEL_MEMORY_OMI__RETRY__RETRIES", "0")
        .arg("--data-dir")
        .arg(app.dir.path())
        .args(args);
    command
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

#[tokio::test]
async fn pull_backfills_resumes_after_an_interruption_and_stores_everything_once() {
    // The CLI finds the server's database through --data-dir: the embedded file.
    let (app, fake, key) = app_with_fake(on_sqlite).await;
    let contents: Vec<String> = (0..120).map(|i| format!("omi fact {i}")).collect();
    fake.add_memories(
        UID,
        &contents.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    fake.state.conversations.lock().unwrap().insert(
        UID.into(),
        (0..3)
            .map(|i| json!({"id": format!("conv-{i}"), "created_at": "2024-07-22T10:00:00+00:00", "source": "omi",
                             "structured": {"title": format!("Meeting {i}"), "overview": format!("We planned part {i} of the trip."), "category": "travel"},
                             "transcript_segments": []}))
            .collect(),
    );
    fake.state.tasks.lock().unwrap().insert(
        UID.into(),
        vec![
            json!({"id": "task-1", "description": "Book the train", "completed": false}),
            json!({"id": "task-2", "description": "Pack", "completed": true}),
        ],
    );
    // An existing memory with the same content as one in Omi is not stored twice.
    create(&app, &key, "omi fact 7", &[]).await;
    // Nothing pulled from Omi goes back to it, nor is announced.
    set_sync(
        &app,
        &key,
        json!({"push_memories": true, "notify": ["memory_created", "conversation_processed"]}),
    )
    .await;
    let queued_before = status(&app, &key).await["outbox"].clone();

    fake.state.fail_from_offset.store(100, Ordering::SeqCst);
    let interrupted = cli(
        &app,
        &fake,
        &["omi", "pull", "--uid", UID, "--page-size", "50"],
    )
    .await;
    assert_eq!(
        interrupted.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&interrupted.stderr)
    );
    assert!(
        String::from_utf8_lossy(&interrupted.stderr).contains("500"),
        "{}",
        String::from_utf8_lossy(&interrupted.stderr)
    );

    fake.state.fail_from_offset.store(0, Ordering::SeqCst);
    let calls_before = fake.calls();
    let report = json_of(
        &cli(
            &app,
            &fake,
            &["--json", "omi", "pull", "--uid", UID, "--page-size", "50"],
        )
        .await,
    );
    assert_eq!(
        report["memories"]["fetched"], 20,
        "resumed at offset 100: {report}"
    );
    assert_eq!(report["conversations"]["new"], 3, "{report}");
    assert_eq!(report["tasks"]["new"], 2, "{report}");
    // 1 memory page + 1 conversation page + 1 task page.
    assert_eq!(fake.calls() - calls_before, 3);

    let stats = body(
        app.request(Method::GET, "/v1/stats", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        stats["by_source"]["import"], 119,
        "120 from Omi, one already here: {stats}"
    );
    let conversations = body(
        app.request(Method::GET, "/v1/conversations", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(conversations["items"].as_array().unwrap().len(), 3);
    let tasks = body(
        app.request(Method::GET, "/v1/tasks", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 2);

    let queued_after = status(&app, &key).await["outbox"].clone();
    assert_eq!(
        queued_after["pending"].as_u64().unwrap() + queued_after["delivered"].as_u64().unwrap(),
        queued_before["pending"].as_u64().unwrap() + queued_before["delivered"].as_u64().unwrap(),
        "the pull queued nothing: {queued_before} → {queued_after}"
    );
    // Pulling again stores nothing new.
    let again = json_of(
        &cli(
            &app,
            &fake,
            &["--json", "omi", "pull", "--uid", UID, "--page-size", "50"],
        )
        .await,
    );
    assert_eq!(
        (
            again["memories"]["new"].as_u64(),
            again["conversations"]["new"].as_u64(),
            again["tasks"]["new"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{again}"
    );

    let status = json_of(&cli(&app, &fake, &["--json", "omi", "status"]).await);
    assert_eq!(status["integration_configured"], true);
    assert!(
        status["upstreams"][0]["status"]["breaker"]["state"].is_string(),
        "recorded by the server: {status}"
    );
    let listed = json_of(
        &cli(
            &app,
            &fake,
            &["--json", "omi", "outbox", "list", "--state", "dead"],
        )
        .await,
    );
    assert_eq!(listed["items"], json!([]));
    let unknown_user = cli(&app, &fake, &["omi", "pull", "--uid", "nobody"]).await;
    assert_eq!(unknown_user.status.code(), Some(3));

    let set = json_of(
        &cli(
            &app,
            &fake,
            &[
                "--json",
                "omi",
                "sync",
                "set",
                "--user",
                UID,
                "--push-memories",
                "--tags",
                "Omi,cars",
                "--notify",
                "conversation_processed",
            ],
        )
        .await,
    );
    assert_eq!(
        (
            set["push_memories"].clone(),
            set["tags"].clone(),
            set["notify"].clone()
        ),
        (
            json!(true),
            json!(["omi", "cars"]),
            json!(["conversation_processed"])
        )
    );
    let shown = body(
        app.request(Method::GET, "/v1/omi/sync", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        shown["tags"],
        json!(["omi", "cars"]),
        "the API sees what the CLI set"
    );
    let bad = cli(
        &app,
        &fake,
        &[
            "omi",
            "sync",
            "set",
            "--user",
            UID,
            "--notify",
            "everything",
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
}
