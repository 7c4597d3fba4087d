//! Stats, the audit trail, export and import over HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{body, problem, spawn_app, spawn_app_with};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn stats_and_audit_describe_the_users_data() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let created = app
        .request(Method::POST, "/v1/memories", &key)
        .header("x-request-id", "req-audit-1")
        .json(&json!({"content": "tagged", "tags": ["a"], "category": "system"}))
        .send()
        .await
        .unwrap();
    let id = body(created).await["id"].as_str().unwrap().to_owned();
    app.create_memory(&key, "plain").await;
    app.request(Method::DELETE, &format!("/v1/memories/{id}"), &key)
        .send()
        .await
        .unwrap();

    let stats = body(
        app.request(Method::GET, "/v1/stats", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (stats["active"].clone(), stats["deleted"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(stats["by_category"], json!({"manual": 1}));
    assert_eq!(stats["bytes"], 5);

    let audit = body(
        app.request(Method::GET, "/v1/audit?limit=2", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let actions: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["memory.delete", "memory.create"]);
    let cursor = audit["next_cursor"].as_str().unwrap();
    let older = body(
        app.request(Method::GET, &format!("/v1/audit?cursor={cursor}"), &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(older["items"][0]["request_id"], "req-audit-1");
    assert_eq!(older["items"][0]["memory_id"], id.as_str());
    assert!(
        older["items"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("key:")
    );
}

#[tokio::test]
async fn export_then_import_reproduces_every_memory_and_version() {
    let app = spawn_app().await;
    let alice = app.user_with_key("alice").await;
    let bob = app.user_with_key("bob").await;
    for i in 0..5 {
        let id = app.create_memory(&alice, &format!("fact {i}")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if i == 2 {
            let path = format!("/v1/memories/{id}");
            app.request(Method::PATCH, &path, &alice)
                .header("if-match", "\"1\"")
                .json(&json!({"content": "fact 2, fixed"}))
                .send()
                .await
                .unwrap();
            app.request(Method::DELETE, &path, &alice)
                .send()
                .await
                .unwrap();
        }
    }
    let response = app
        .request(Method::GET, "/v1/export", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let export = response.text().await.unwrap();
    let parsed = lines(&export);
    assert_eq!(parsed[0]["type"], "header");
    assert_eq!(parsed.last().unwrap()["type"], "end");
    assert_eq!(parsed.last().unwrap()["memories"], 5);

    let imported = app
        .request(Method::POST, "/v1/import", &bob)
        .body(export.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 200);
    let report = body(imported).await;
    assert_eq!(report["imported"], 5);
    let again = body(
        app.request(Method::POST, "/v1/import", &bob)
            .body(export.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (again["imported"].clone(), again["unchanged"].clone()),
        (json!(0), json!(5))
    );

    let memories = |text: &str| -> Vec<Value> {
        lines(text)
            .into_iter()
            .filter(|l| l["type"] == "memory")
            .map(|mut l| {
                l["memory"]["uid"] = json!("-");
                l
            })
            .collect()
    };
    let bobs = app
        .request(Method::GET, "/v1/export", &bob)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        memories(&bobs),
        memories(&export),
        "nothing lost: ids, contents, versions, deleted state, times"
    );
    assert!(
        bobs.lines()
            .skip(1)
            .all(|l| !l.contains("\"uid\":\"alice\"")),
        "imported data belongs to the importer"
    );
}

#[tokio::test]
async fn a_broken_import_writes_nothing() {
    let app = spawn_app_with(|c| c.limits.max_import_bytes = 64 * 1024).await;
    let alice = app.user_with_key("alice").await;
    app.create_memory(&alice, "one").await;
    app.create_memory(&alice, "two").await;
    let export = app
        .request(Method::GET, "/v1/export", &alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bob = app.user_with_key("bob").await;

    let wrong_count = export.replace("\"memories\":2", "\"memories\":3");
    let doc = problem(
        app.request(Method::POST, "/v1/import", &bob)
            .body(wrong_count)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(doc["detail"].as_str().unwrap().contains("incomplete"));
    let mut garbled: Vec<&str> = export.lines().collect();
    garbled.insert(2, "{\"type\":\"memory\",\"memory\":{}}");
    problem(
        app.request(Method::POST, "/v1/import", &bob)
            .body(garbled.join("\n"))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let tampered = export.replacen("\"version\":1", "\"version\":5", 1);
    problem(
        app.request(Method::POST, "/v1/import", &bob)
            .body(tampered)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let too_big = "x".repeat(65 * 1024);
    problem(
        app.request(Method::POST, "/v1/import", &bob)
            .body(too_big)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;

    let stats = body(
        app.request(Method::GET, "/v1/stats", &bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stats["active"], 0);
}
