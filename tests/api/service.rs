//! Cross-cutting behaviour: health, readiness, request ids, metrics, OpenAPI, rate limits, fallbacks.

use reqwest::Method;
use std::time::{Duration, Instant};

use crate::helpers::{ADMIN_TOKEN, body, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        body(app.client.get(app.url("/readyz")).send().await.unwrap()).await["status"],
        "ready"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_cannot_be_written() {
    let app = spawn_app_with(crate::helpers::on_sqlite).await;
    // Another process holding the write lock makes the database unusable for writes.
    let blocker = rusqlite::Connection::open(app.dir.path().join("angel-memory.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let doc = problem(response, 503).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "readiness answers promptly"
    );
    assert!(
        !doc.to_string().contains("angel-memory.db"),
        "no paths or database errors leak: {doc}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_always_returned() {
    let app = spawn_app().await;
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    let made = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(made.headers()["x-request-id"].len(), 36);
    let hostile = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hostile.headers()["x-request-id"].len(),
        36,
        "an unreasonable id is replaced"
    );
    let error = app
        .client
        .get(app.url("/v1/memories"))
        .header("x-request-id", "on-error")
        .send()
        .await
        .unwrap();
    assert_eq!(error.headers()["x-request-id"], "on-error");
}

#[tokio::test]
async fn metrics_count_requests_by_route_behind_the_admin_token() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    app.request(Method::GET, "/v1/memories", &key)
        .send()
        .await
        .unwrap();
    problem(
        app.client.get(app.url("/metrics")).send().await.unwrap(),
        401,
    )
    .await;
    let text = app
        .request(Method::GET, "/metrics", ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("http_requests_total{method=\"GET\",route=\"/v1/memories\",status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let doc = body(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let routes = [
        ("/v1/memories", ["post", "get"].as_slice()),
        ("/v1/memories/{id}", &["get", "patch", "delete"]),
        ("/v1/memories/{id}/restore", &["post"]),
        ("/v1/memories/{id}/versions", &["get"]),
        ("/v1/memories/batch", &["post"]),
        ("/v1/memories/batch-delete", &["post"]),
        ("/v1/stats", &["get"]),
        ("/v1/audit", &["get"]),
        ("/v1/export", &["get"]),
        ("/v1/import", &["post"]),
        ("/v1/admin/users", &["post", "get"]),
        ("/v1/admin/users/{uid}", &["delete"]),
        ("/v1/admin/users/{uid}/keys", &["post", "get"]),
        ("/v1/admin/users/{uid}/keys/{key_id}", &["delete"]),
        ("/v1/admin/purge", &["post"]),
    ];
    for (path, methods) in routes {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is documented"
            );
        }
    }
    assert!(doc["components"]["schemas"]["Memory"].is_object());
}

#[tokio::test]
async fn rate_limits_apply_per_key_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.per_second = 1;
        c.rate_limit.burst = 3;
    })
    .await;
    let alice = app.user_with_key("alice").await;
    let bob = app.user_with_key("bob").await;
    let mut limited = None;
    for _ in 0..5 {
        let response = app
            .request(Method::GET, "/v1/memories", &alice)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the fourth request in a burst of three is limited");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after));
    problem(response, 429).await;
    assert_eq!(
        app.request(Method::GET, "/v1/memories", &bob)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "other keys are unaffected"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problems() {
    let app = spawn_app().await;
    problem(
        app.client.get(app.url("/v2/nothing")).send().await.unwrap(),
        404,
    )
    .await;
    let key = app.user_with_key("alice").await;
    problem(
        app.request(Method::PUT, "/v1/memories", &key)
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
}
