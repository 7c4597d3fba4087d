//! `Idempotency-Key` on POST: one effect per key, replays, mismatches, concurrency.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{body, problem, spawn_app};

#[tokio::test]
async fn a_repeat_replays_the_first_response() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let send = |content: &str, idem: &str| {
        app.request(Method::POST, "/v1/memories", &key)
            .header("idempotency-key", idem)
            .json(&json!({"content": content}))
    };
    let first = send("once", "\"k-1\"").send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = body(first).await;
    let repeat = send("once", "\"k-1\"").send().await.unwrap();
    assert_eq!(
        repeat.status(),
        201,
        "the stored outcome, not a fresh duplicate answer"
    );
    assert_eq!(repeat.headers()["idempotent-replayed"], "true");
    assert!(
        repeat.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(first_body["id"].as_str().unwrap())
    );
    assert_eq!(body(repeat).await, first_body);

    let reused = problem(send("something else", "\"k-1\"").send().await.unwrap(), 422).await;
    assert_eq!(reused["code"], "idempotency-key-reused");
    problem(send("x", &"k".repeat(256)).send().await.unwrap(), 400).await;
    // Without a key, the same request is an ordinary duplicate.
    let plain = app
        .request(Method::POST, "/v1/memories", &key)
        .json(&json!({"content": "once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_copies_have_exactly_one_effect() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let requests = (0..50).map(|_| {
        app.request(Method::POST, "/v1/memories/batch", &key)
            .header("idempotency-key", "batch-1")
            .json(&json!({"memories": [{"content": "a"}, {"content": "b"}]}))
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut executed = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => {
                let replayed = response.headers().get("idempotent-replayed").is_some();
                let result = body(response).await;
                // Every 200 carries the one execution's outcome: both items "created".
                assert_eq!(result["results"][0]["status"], "created", "{result}");
                if !replayed {
                    executed += 1;
                }
            }
            409 => assert_eq!(
                problem(response, 409).await["code"],
                "idempotency-key-in-flight"
            ),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(executed, 1, "the batch ran once");
    let audit = body(
        app.request(Method::GET, "/v1/audit?limit=200", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let creates = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "memory.create")
        .count();
    assert_eq!(creates, 2);
}
