//! Omi's webhooks through HTTP with the shared fixtures: authenticity, dedupe, processing, replies.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, body, problem, spawn_app, spawn_app_with};

const UID: &str = "5Z9Lil2WHl1vvn5iP2pZw0fKm4BR";
const TOKEN: &str = "7Qm2Xr9LbV4sK8nW1cYt6PdZ3hJf0GaE";
const CURRENT: &str = "whsec_QIktf9hRC0HwxheESHB71z2KSGTB7E0cjeqL5tgV1y4";
const PREVIOUS: &str = "whsec_YIFj7PAD9UncEbs7KPah0RCAf7J0ErakWLm47yd5KRg";
const OWN_APP: &str = "01JJ721682E66VBGQJPE985XGT";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../shared/fixtures/omi/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// One second of a 440 Hz tone, PCM16 mono, as `gen_audio.py` writes it.
fn tone(rate: u32) -> Vec<u8> {
    (0..rate)
        .flat_map(|i| {
            let sample = (f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin()
                * 0.3
                * 32767.0;
            (sample as i16).to_le_bytes()
        })
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn omi_signature(secret: &str, uid: &str, body: &[u8], t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{uid}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn app_with_token() -> TestApp {
    spawn_app_with(|c| {
        c.webhook_token = Some(TOKEN.to_owned().into());
        c.omi.app_id = Some(OWN_APP.into());
    })
    .await
}

fn post(app: &TestApp, event: &str, query: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/webhooks/omi/{event}?{query}")))
        .body(body)
        .header("content-type", "application/json")
}

fn with_token(uid: &str) -> String {
    format!("token={TOKEN}&uid={uid}")
}

/// Waits until the inbox worker has nothing pending.
async fn drained(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = body(
            app.admin(Method::GET, "/v1/admin/inbox?state=pending")
                .send()
                .await
                .unwrap(),
        )
        .await;
        if pending["items"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the inbox did not drain: {pending}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let response = app.request(Method::GET, path, key).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    body(response).await
}

#[tokio::test]
async fn every_fixture_is_accepted_and_processed() {
    let app = app_with_token().await;
    let q = with_token(UID);
    for name in [
        "conversation_created_full.json",
        "conversation_created_developer.json",
        "conversation_created_minimal.json",
        "conversation_imported.json",
        "conversation_discarded.json",
    ] {
        let response = post(&app, "conversation", &q, fixture(name))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
    }
    for name in [
        "realtime_transcript_batch1.json",
        "realtime_transcript_batch2.json",
    ] {
        assert_eq!(
            post(&app, "transcript", &q, fixture(name))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let legacy = post(
        &app,
        "transcript",
        &format!("session_id=abc&{q}"),
        fixture("realtime_transcript_legacy_array.json"),
    );
    assert_eq!(legacy.send().await.unwrap().status(), 200);
    assert_eq!(
        post(&app, "day-summary", &q, fixture("day_summary.json"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let audio = app
        .client
        .post(app.url(&format!("/webhooks/omi/audio?sample_rate=16000&{q}")))
        .body(tone(16_000));
    assert_eq!(audio.send().await.unwrap().status(), 200);
    drained(&app).await;

    let key = app.user_with_key(UID).await;
    let conversations = get(&app, &key, "/v1/conversations").await;
    assert_eq!(
        conversations["items"].as_array().unwrap().len(),
        4,
        "full and developer are one conversation"
    );
    let full = get(
        &app,
        &key,
        "/v1/conversations/11c4af5e-338a-4250-a16e-8e3b60bfe934",
    )
    .await;
    assert_eq!(full["title"], "Bike-Repair Kiosk Budget and Permit Check");
    assert_eq!(full["transcript_segments"].as_array().unwrap().len(), 12);
    assert_eq!(full["events"].as_array().unwrap().len(), 1);
    // Its two action items, plus the day summary's reworded copy of one (the verbatim copy merges).
    assert_eq!(full["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(full["deliveries"], 2);
    assert!(
        full["transcript_segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["speaker_name"].is_string())
    );
    let memory_id = full["memory_id"].as_str().unwrap();
    let summary = get(&app, &key, &format!("/v1/memories/{memory_id}")).await;
    assert_eq!(summary["source"], "omi_conversation");
    assert_eq!(
        summary["conversation_id"],
        "11c4af5e-338a-4250-a16e-8e3b60bfe934"
    );
    assert!(
        summary["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("business"))
    );
    assert_eq!(
        summary["version"], 1,
        "the developer copy had the same summary: no new version"
    );

    let minimal = get(
        &app,
        &key,
        "/v1/conversations/57b7a952-2269-43ed-b0e5-91644a2ee8cf",
    )
    .await;
    assert_eq!(
        minimal["transcript_segments"][0]["id"],
        "ec5e477c-860d-5c29-ab8d-ebe3aa080c92"
    );
    let imported = get(
        &app,
        &key,
        "/v1/conversations/b7fb0ed0-6dc6-43f1-8759-0eaa692c5892",
    )
    .await;
    assert_eq!(
        (
            imported["imported_by_this_app"].clone(),
            imported["memory_id"].clone()
        ),
        (json!(true), Value::Null)
    );
    let discarded = get(
        &app,
        &key,
        "/v1/conversations/c8c6f0e4-486d-4ce6-8e6f-ef99685b796b",
    )
    .await;
    assert_eq!(
        (
            discarded["discarded"].clone(),
            discarded["memory_id"].clone()
        ),
        (json!(true), Value::Null)
    );

    let from_day = get(&app, &key, "/v1/memories?source=omi_day_summary&limit=200").await;
    assert!(from_day["items"].as_array().unwrap().len() >= 2);
    assert!(from_day["items"].as_array().unwrap().iter().all(|m| {
        m["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("day_summary"))
    }));
    let tasks = get(&app, &key, "/v1/tasks?limit=200").await;
    assert!(
        tasks["items"].as_array().unwrap().len() > 2,
        "conversation and day-summary action items"
    );
    let recordings = get(&app, &key, "/v1/recordings").await;
    assert_eq!(recordings["items"][0]["bytes"], 32_000);
    let dead = body(
        app.admin(Method::GET, "/v1/admin/inbox?state=dead")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(dead["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn omi_signatures_are_verified_over_the_raw_bytes() {
    let app = spawn_app_with(|c| {
        c.omi_signing_secret = Some(CURRENT.to_owned().into());
        c.omi_signing_secret_previous = Some(PREVIOUS.to_owned().into());
    })
    .await;
    let body_bytes = fixture("realtime_transcript_batch1.json");
    let send = |signature: String, uid: &str, body_bytes: Vec<u8>| {
        post(&app, "transcript", &format!("uid={uid}"), body_bytes)
            .header("x-omi-signature", signature)
            .send()
    };
    let t = now();
    assert_eq!(
        send(
            omi_signature(CURRENT, UID, &body_bytes, t),
            UID,
            body_bytes.clone()
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let current_v1 = omi_signature(CURRENT, UID, &body_bytes, t)
        .split_once(",v1=")
        .unwrap()
        .1
        .to_owned();
    let both = format!(
        "{},v1={current_v1}",
        omi_signature(PREVIOUS, UID, &body_bytes, t)
    );
    assert_eq!(
        send(both, UID, body_bytes.clone()).await.unwrap().status(),
        200,
        "rotation"
    );
    let mut tampered = body_bytes.clone();
    tampered[40] ^= 1;
    problem(
        send(omi_signature(CURRENT, UID, &body_bytes, t), UID, tampered)
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        send(
            omi_signature(CURRENT, UID, &body_bytes, t),
            "Qm4TzR8vXc2LpN6yHs0WdK3fJb7A",
            body_bytes.clone(),
        )
        .await
        .unwrap(),
        401,
    )
    .await;
    problem(
        send(
            omi_signature(CURRENT, UID, &body_bytes, t - 301),
            UID,
            body_bytes.clone(),
        )
        .await
        .unwrap(),
        401,
    )
    .await;
    // From a fresh clock reading, and two seconds beyond the tolerance: the server reads its clock a
    // moment later, and a second ticking over in between must not bring this inside the window (the
    // test failed so once, slowed down on PostgreSQL).
    problem(
        send(
            omi_signature(CURRENT, UID, &body_bytes, now() + 302),
            UID,
            body_bytes.clone(),
        )
        .await
        .unwrap(),
        401,
    )
    .await;
    problem(
        send(
            omi_signature("whsec_some-other-secret", UID, &body_bytes, t),
            UID,
            body_bytes.clone(),
        )
        .await
        .unwrap(),
        401,
    )
    .await;
    problem(
        send("v1=abc".into(), UID, body_bytes.clone())
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        post(
            &app,
            "transcript",
            &format!("uid={UID}"),
            body_bytes.clone(),
        )
        .send()
        .await
        .unwrap(),
        401,
    )
    .await;
}

#[tokio::test]
async fn standard_webhooks_and_the_url_token() {
    let secret = "whsec_+ODON7F6UYGmgZGhqD5EQw5svs7nJjw2";
    let app = spawn_app_with(|c| {
        c.standard_webhooks_secret = Some(secret.to_owned().into());
        c.webhook_token = Some(TOKEN.to_owned().into());
    })
    .await;
    let payload = fixture("realtime_transcript_batch2.json");
    let t = now().to_string();
    let key = base64_decode(&secret[6..]);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("msg_1.{t}.").as_bytes());
    mac.update(&payload);
    let signature = format!("v1,{}", base64_encode(&mac.finalize().into_bytes()));
    let signed = post(&app, "transcript", &format!("uid={UID}"), payload.clone())
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", &t)
        .header("webhook-signature", &signature);
    assert_eq!(signed.send().await.unwrap().status(), 200);
    let wrong_id = post(&app, "transcript", &format!("uid={UID}"), payload.clone())
        .header("webhook-id", "msg_2")
        .header("webhook-timestamp", &t)
        .header("webhook-signature", &signature);
    problem(wrong_id.send().await.unwrap(), 401).await;

    assert_eq!(
        post(&app, "transcript", &with_token(UID), payload.clone())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    problem(
        post(
            &app,
            "transcript",
            &format!("token={}x&uid={UID}", &TOKEN[..TOKEN.len() - 1]),
            payload.clone(),
        )
        .send()
        .await
        .unwrap(),
        401,
    )
    .await;
    problem(
        post(&app, "transcript", &format!("uid={UID}"), payload)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_never_a_5xx() {
    let app = spawn_app_with(|c| {
        c.webhook_token = Some(TOKEN.to_owned().into());
        c.webhooks.max_event_bytes = 4 * 1024;
        c.webhooks.auto_create_users = false;
    })
    .await;
    problem(
        post(
            &app,
            "conversation",
            &format!("token={TOKEN}"),
            fixture("conversation_created_minimal.json"),
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    problem(
        post(
            &app,
            "conversation",
            &with_token("a%20b"),
            fixture("conversation_created_minimal.json"),
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    problem(
        post(
            &app,
            "conversation",
            &with_token(UID),
            b"{not json".to_vec(),
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    problem(
        post(
            &app,
            "conversation",
            &with_token(UID),
            b"{\"structured\":{}}".to_vec(),
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    problem(
        post(&app, "conversation", &with_token(UID), b"[1,2]".to_vec())
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    problem(
        post(&app, "transcript", &with_token(UID), b"\"text\"".to_vec())
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    problem(
        post(&app, "day-summary", &with_token(UID), vec![b' '; 5 * 1024])
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    for query in [
        "sample_rate=999",
        "sample_rate=192001",
        "sample_rate=abc",
        "",
    ] {
        let request = app
            .client
            .post(app.url(&format!("/webhooks/omi/audio?{query}&{}", with_token(UID))))
            .body(tone(8_000));
        let status = request.send().await.unwrap().status();
        assert_eq!(status, 400, "{query}");
    }
    let odd = app
        .client
        .post(app.url(&format!(
            "/webhooks/omi/audio?sample_rate=8000&{}",
            with_token(UID)
        )))
        .body(vec![0u8; 3]);
    problem(odd.send().await.unwrap(), 400).await;
    let unknown = post(
        &app,
        "conversation",
        &with_token(UID),
        fixture("conversation_created_minimal.json"),
    );
    problem(unknown.send().await.unwrap(), 403).await;
    problem(
        app.client
            .get(app.url(&format!("/webhooks/omi/conversation?{}", with_token(UID))))
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
}

#[tokio::test]
async fn webhooks_stay_closed_until_an_authenticity_method_is_configured() {
    let app = spawn_app().await;
    let response = post(
        &app,
        "conversation",
        &format!("uid={UID}"),
        fixture("conversation_created_minimal.json"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let insecure = spawn_app_with(|c| c.webhooks.insecure_accept_unauthenticated = true).await;
    let response = post(
        &insecure,
        "conversation",
        &format!("uid={UID}"),
        fixture("conversation_created_minimal.json"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_copies_of_a_delivery_have_one_effect() {
    let app = app_with_token().await;
    let payload = fixture("conversation_created_full.json");
    let requests = (0..50).map(|_| {
        post(&app, "conversation", &with_token(UID), payload.clone())
            .header(
                "x-omi-idempotency-key",
                "conversation:11c4af5e-338a-4250-a16e-8e3b60bfe934:finalization",
            )
            .send()
    });
    for response in futures_util::future::join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(body(response).await, json!({}));
    }
    drained(&app).await;
    let key = app.user_with_key(UID).await;
    let conversation = get(
        &app,
        &key,
        "/v1/conversations/11c4af5e-338a-4250-a16e-8e3b60bfe934",
    )
    .await;
    assert_eq!(conversation["deliveries"], 1);
    let memories = get(&app, &key, "/v1/memories?source=omi_conversation").await;
    assert_eq!(memories["items"].as_array().unwrap().len(), 1);
    let done = body(
        app.admin(Method::GET, "/v1/admin/inbox?state=done")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        done["items"].as_array().unwrap().len(),
        1,
        "one event recorded"
    );
    let tasks = get(&app, &key, "/v1/tasks").await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_redelivered_conversation_updates_its_memory_as_a_new_version() {
    let app = app_with_token().await;
    let mut conversation: Value =
        serde_json::from_slice(&fixture("conversation_created_minimal.json")).unwrap();
    post(
        &app,
        "conversation",
        &with_token(UID),
        serde_json::to_vec(&conversation).unwrap(),
    )
    .send()
    .await
    .unwrap();
    drained(&app).await;
    conversation["structured"]["overview"] =
        json!("The hub cost $138; the shop also trued the front wheel.");
    conversation["structured"]["action_items"] =
        json!([{"description": "Pick up the receipt", "completed": false}]);
    post(
        &app,
        "conversation",
        &with_token(UID),
        serde_json::to_vec(&conversation).unwrap(),
    )
    .send()
    .await
    .unwrap();
    drained(&app).await;

    let key = app.user_with_key(UID).await;
    let detail = get(
        &app,
        &key,
        "/v1/conversations/57b7a952-2269-43ed-b0e5-91644a2ee8cf",
    )
    .await;
    assert_eq!(detail["deliveries"], 2);
    let id = detail["memory_id"].as_str().unwrap();
    let versions = get(&app, &key, &format!("/v1/memories/{id}/versions")).await;
    let contents: Vec<_> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(contents.len(), 2);
    assert!(contents[1].ends_with("trued the front wheel."));
    let all = get(&app, &key, "/v1/memories?source=omi_conversation&state=all").await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        1,
        "never a second memory"
    );
    assert_eq!(detail["tasks"].as_array().unwrap().len(), 1);

    // A memory the user deleted is not brought back by another delivery.
    app.request(Method::DELETE, &format!("/v1/memories/{id}"), &key)
        .send()
        .await
        .unwrap();
    conversation["structured"]["overview"] = json!("A third version.");
    post(
        &app,
        "conversation",
        &with_token(UID),
        serde_json::to_vec(&conversation).unwrap(),
    )
    .send()
    .await
    .unwrap();
    drained(&app).await;
    let memory = get(&app, &key, &format!("/v1/memories/{id}")).await;
    assert!(memory["deleted_at"].is_string());
    assert_eq!(memory["version"], 2);
}

#[tokio::test]
async fn a_spoken_trigger_phrase_becomes_a_memory_and_omi_is_told() {
    let app = app_with_token().await;
    let batch = json!({"session_id": UID, "segments": [
        {"id": "seg-1", "text": "Remember that Sam's birthday is on May 3rd.", "speaker": "SPEAKER_00", "speaker_id": 0, "is_user": true, "start": 0.0, "end": 3.1},
        {"id": "seg-2", "text": "remember that the gate code is 4411", "speaker": "SPEAKER_01", "speaker_id": 1, "is_user": false, "start": 3.5, "end": 5.0}
    ]});
    let bytes = serde_json::to_vec(&batch).unwrap();
    let first = body(
        post(&app, "transcript", &with_token(UID), bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        first,
        json!({"message": "Remembered: Sam's birthday is on May 3rd."})
    );
    let again = body(
        post(&app, "transcript", &with_token(UID), bytes)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again, first, "a repeated delivery gets the same answer");
    let overlapping = json!({"session_id": UID, "segments": [batch["segments"][0].clone(),
        {"id": "seg-3", "text": "Okay.", "is_user": true, "start": 6.0, "end": 6.5}]});
    let third = body(
        post(
            &app,
            "transcript",
            &with_token(UID),
            serde_json::to_vec(&overlapping).unwrap(),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        third,
        json!({}),
        "a segment seen before remembers nothing again"
    );

    let key = app.user_with_key(UID).await;
    let voice = get(&app, &key, "/v1/memories?source=omi_realtime").await;
    let items = voice["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the wearer's own words, once");
    assert_eq!(items[0]["content"], "Sam's birthday is on May 3rd.");
    assert_eq!(items[0]["tags"], json!(["voice"]));
}

#[tokio::test]
async fn failing_events_go_dead_and_an_operator_can_retry_them() {
    let app = spawn_app_with(|c| {
        c.webhook_token = Some(TOKEN.to_owned().into());
        c.webhooks.max_attempts = 1;
        crate::helpers::on_sqlite(c);
    })
    .await;
    app.user_with_key(UID).await;
    // An event recorded by an older build whose body today's parser cannot read.
    let db = rusqlite::Connection::open(app.dir.path().join("angel-memory.db.inbox")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let now_micros = now() * 1_000_000;
    // The body first: the worker takes an event only with its body.
    db.execute(
        "INSERT INTO inbox_bodies (uid, id, body) VALUES (?1, 'legacy-1', X'7B6E6F7065')",
        rusqlite::params![UID],
    )
    .unwrap();
    db.execute(
        "INSERT INTO inbox_events (uid, id, kind, dedupe_key, state, attempts, next_attempt_at, response, received_at)
         VALUES (?1, 'legacy-1', 'conversation', NULL, 'pending', 0, ?2, '{}', ?2)",
        rusqlite::params![UID, now_micros],
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = body(
            app.admin(Method::GET, "/v1/admin/inbox?state=dead")
                .send()
                .await
                .unwrap(),
        )
        .await;
        if !dead["items"].as_array().unwrap().is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "the event never went dead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let entry = &dead["items"][0];
    assert_eq!(
        (entry["id"].as_str(), entry["attempts"].as_i64()),
        (Some("legacy-1"), Some(1))
    );
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap()
            .contains("conversation payload")
    );

    let retried = body(
        app.admin(Method::POST, "/v1/admin/inbox/legacy-1/retry")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(retried["state"], "pending");
    problem(
        app.admin(Method::POST, "/v1/admin/inbox/nope/retry")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        app.admin(Method::GET, "/v1/admin/inbox?state=lost")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn audio_becomes_wav_recordings_with_a_quota() {
    let app = spawn_app_with(|c| {
        c.webhook_token = Some(TOKEN.to_owned().into());
        c.webhooks.audio_quota_megabytes = 1;
    })
    .await;
    let send = |rate: u32, delivery: &str| {
        app.client
            .post(app.url(&format!(
                "/webhooks/omi/audio?sample_rate={rate}&{}",
                with_token(UID)
            )))
            .header("content-type", "application/octet-stream")
            .header("idempotency-key", delivery)
            .body(tone(rate))
            .send()
    };
    assert_eq!(
        body(send(16_000, "d1").await.unwrap()).await["stored"],
        true
    );
    assert_eq!(
        body(send(16_000, "d2").await.unwrap()).await["stored"],
        true
    );
    assert_eq!(
        body(send(16_000, "d2").await.unwrap()).await["repeat"],
        true,
        "a retried delivery is not appended twice"
    );
    assert_eq!(body(send(8_000, "d3").await.unwrap()).await["stored"], true);
    let key = app.user_with_key(UID).await;
    let recordings = get(&app, &key, "/v1/recordings").await;
    let items = recordings["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "a change of sample rate starts a new recording"
    );
    let at_16k = items.iter().find(|r| r["sample_rate"] == 16_000).unwrap();
    assert_eq!(at_16k["bytes"], 64_000);
    assert_eq!(at_16k["duration_seconds"], 2.0);
    let wav = app
        .request(
            Method::GET,
            &format!("/v1/recordings/{}", at_16k["id"].as_str().unwrap()),
            &key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wav.headers()["content-type"], "audio/wav");
    let bytes = wav.bytes().await.unwrap();
    assert_eq!(bytes.len(), 44 + 64_000);
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(
        u32::from_le_bytes(bytes[40..44].try_into().unwrap()),
        64_000
    );
    // 1 MiB quota: 16 more seconds at 16 kHz do not fit.
    let mut over = None;
    for i in 0..40 {
        let answer = body(send(16_000, &format!("q{i}")).await.unwrap()).await;
        if answer["stored"] == false {
            over = Some(answer);
            break;
        }
    }
    assert!(
        over.expect("the quota is enforced")["reason"]
            .as_str()
            .unwrap()
            .contains("quota")
    );
    let bob = app.user_with_key("bob").await;
    problem(
        app.request(
            Method::GET,
            &format!("/v1/recordings/{}", at_16k["id"].as_str().unwrap()),
            &bob,
        )
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn setup_check_and_derived_data_belong_to_the_right_user() {
    let app = spawn_app_with(|c| {
        c.webhook_token = Some(TOKEN.to_owned().into());
        c.webhooks.auto_create_users = false;
    })
    .await;
    let check = |uid: &str| {
        app.client
            .get(app.url(&format!(
                "/webhooks/omi/setup-completed?{}",
                with_token(uid)
            )))
            .send()
    };
    assert_eq!(
        body(check(UID).await.unwrap()).await,
        json!({"is_setup_completed": false})
    );
    let key = app.user_with_key(UID).await;
    assert_eq!(
        body(check(UID).await.unwrap()).await,
        json!({"is_setup_completed": true})
    );
    problem(
        app.client
            .get(app.url(&format!("/webhooks/omi/setup-completed?uid={UID}")))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    post(
        &app,
        "conversation",
        &with_token(UID),
        fixture("conversation_created_full.json"),
    )
    .send()
    .await
    .unwrap();
    drained(&app).await;
    let tasks = get(&app, &key, "/v1/tasks").await;
    let task_id = tasks["items"][0]["id"].as_str().unwrap().to_owned();
    let done = app
        .request(Method::PATCH, &format!("/v1/tasks/{task_id}"), &key)
        .json(&json!({"completed": true}))
        .send()
        .await
        .unwrap();
    let done = body(done).await;
    assert_eq!(done["completed"], true);
    assert!(done["completed_at"].is_string());
    let open = get(&app, &key, "/v1/tasks?completed=false").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 1);
    problem(
        app.request(Method::PATCH, &format!("/v1/tasks/{task_id}"), &key)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;

    let bob = app.user_with_key("bob").await;
    problem(
        app.request(Method::PATCH, &format!("/v1/tasks/{task_id}"), &bob)
            .json(&json!({"completed": false}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        app.request(
            Method::GET,
            "/v1/conversations/11c4af5e-338a-4250-a16e-8e3b60bfe934",
            &bob,
        )
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
    assert!(
        get(&app, &bob, "/v1/tasks").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
