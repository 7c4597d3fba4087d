//! `/v1/memories` through HTTP: creation, validation, versions, delete/restore, batches, listing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{body, problem, spawn_app};

#[tokio::test]
async fn create_answers_201_then_returns_the_existing_memory_for_identical_content() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let response = app
        .request(Method::POST, "/v1/memories", &key)
        .json(&json!({"content": "Sam drives a red Volvo", "tags": ["Cars", " sam "], "category": "interesting",
                      "metadata": {"from": "test"}, "occurred_at": "2024-07-22T23:59:45.910559+00:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["etag"], "\"1\"");
    let created = body(response).await;
    assert_eq!(
        location,
        format!("/v1/memories/{}", created["id"].as_str().unwrap())
    );
    for field in [
        "id",
        "content",
        "category",
        "tags",
        "source",
        "metadata",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
    ] {
        assert!(created.get(field).is_some(), "memory JSON has {field}");
    }
    assert_eq!(created["tags"], json!(["cars", "sam"]));
    assert_eq!(created["source"], "api");
    assert_eq!(created["duplicate"], false);
    assert_eq!(created["occurred_at"], "2024-07-22T23:59:45.910559Z");

    let again = app
        .request(Method::POST, "/v1/memories", &key)
        .json(&json!({"content": " Sam drives a red Volvo "}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again = body(again).await;
    assert_eq!(
        (again["id"].clone(), again["duplicate"].clone()),
        (created["id"].clone(), json!(true))
    );

    let fetched = body(
        app.request(Method::GET, &location, &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(fetched["content"], "Sam drives a red Volvo");
}

#[tokio::test]
async fn bad_input_gets_a_problem_with_a_reason_and_stores_nothing() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let too_many_tags: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    let cases = [
        (json!({"content": "   "}), "content"),
        (json!({"content": "x".repeat(16_001)}), "content"),
        (json!({"content": "ok", "category": "nonsense"}), "category"),
        (json!({"content": "ok", "tags": too_many_tags}), "tags"),
        (json!({"content": "ok", "tags": ["a,b"]}), "tags"),
        (json!({"content": "ok", "metadata": [1, 2]}), "metadata"),
        (
            json!({"content": "ok", "metadata": {"big": "x".repeat(17_000)}}),
            "metadata",
        ),
        (
            json!({"content": "ok", "occurred_at": "last tuesday"}),
            "occurred_at",
        ),
        (
            json!({"content": "ok", "source": "omi_conversation"}),
            "source",
        ),
        (
            json!({"content": "ok", "visibility": "everyone"}),
            "visibility",
        ),
        (json!({"content": "ok", "owner": "bob"}), "owner"),
        (json!({"content": 42}), "content"),
    ];
    for (payload, field) in cases {
        let response = app
            .request(Method::POST, "/v1/memories", &key)
            .json(&payload)
            .send()
            .await
            .unwrap();
        let doc = problem(response, 400).await;
        assert!(
            doc["detail"].as_str().unwrap().contains(field),
            "{field}: {doc}"
        );
    }
    let not_json = app
        .request(Method::POST, "/v1/memories", &key)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    problem(not_json, 400).await;
    let no_type = app
        .request(Method::POST, "/v1/memories", &key)
        .body("{\"content\":\"x\"}")
        .send()
        .await
        .unwrap();
    problem(no_type, 415).await;
    let huge = json!({"content": "y".repeat(2 * 1024 * 1024)});
    problem(
        app.request(Method::POST, "/v1/memories", &key)
            .json(&huge)
            .send()
            .await
            .unwrap(),
        413,
    )
    .await;
    let stats = body(
        app.request(Method::GET, "/v1/stats", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stats["active"], 0, "nothing was stored");
}

#[tokio::test]
async fn updates_need_the_current_version_and_keep_history() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let id = app.create_memory(&key, "first").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/memories/{id}");
    let patch = |body: Value| app.request(Method::PATCH, &path, &key).json(&body);

    problem(
        patch(json!({"content": "second"})).send().await.unwrap(),
        428,
    )
    .await;
    let ok = patch(json!({"content": "second"}))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["etag"], "\"2\"");
    assert_eq!(body(ok).await["version"], 2);
    let stale = problem(
        patch(json!({"content": "lost"}))
            .header("if-match", "\"1\"")
            .send()
            .await
            .unwrap(),
        412,
    )
    .await;
    assert_eq!(stale["current_version"], 2);
    let stale = problem(
        patch(json!({"content": "lost", "expected_version": 1}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(stale["current_version"], 2);
    problem(
        patch(json!({"content": "x", "expected_version": 1}))
            .header("if-match", "\"2\"")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    problem(
        patch(json!({"expected_version": 2})).send().await.unwrap(),
        400,
    )
    .await;
    problem(
        patch(json!({"content": "x"}))
            .header("if-match", "*")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let third = patch(json!({"tags": ["later"], "expected_version": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(third).await["content"], "second", "absent fields stay");

    let versions = body(
        app.request(Method::GET, &format!("{path}/versions"), &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let contents: Vec<_> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "second", "second"]);

    app.request(Method::DELETE, &path, &key)
        .send()
        .await
        .unwrap();
    let deleted = problem(
        patch(json!({"content": "zombie", "expected_version": 3}))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(deleted["detail"].as_str().unwrap().contains("restore"));
}

#[tokio::test]
async fn delete_is_idempotent_and_restore_brings_it_back() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let id = app.create_memory(&key, "forget me maybe").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/memories/{id}");
    let first = body(
        app.request(Method::DELETE, &path, &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let second = body(
        app.request(Method::DELETE, &path, &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(first["deleted_at"].is_string());
    assert_eq!(
        first["deleted_at"], second["deleted_at"],
        "a second delete changes nothing"
    );
    problem(
        app.request(Method::DELETE, &path, &key)
            .header("if-match", "\"9\"")
            .send()
            .await
            .unwrap(),
        412,
    )
    .await;

    let active = body(
        app.request(Method::GET, "/v1/memories", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(active["items"].as_array().unwrap().len(), 0);
    let deleted = body(
        app.request(Method::GET, "/v1/memories?state=deleted", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(deleted["items"][0]["id"], id.as_str());
    assert!(
        body(app.request(Method::GET, &path, &key).send().await.unwrap()).await["deleted_at"]
            .is_string()
    );

    let restored = app
        .request(Method::POST, &format!("{path}/restore"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), 200);
    assert!(body(restored).await["deleted_at"].is_null());
}

#[tokio::test]
async fn another_users_memory_is_exactly_as_missing_as_a_missing_one() {
    let app = spawn_app().await;
    let alice = app.user_with_key("alice").await;
    let bob = app.user_with_key("bob").await;
    let id = app.create_memory(&alice, "alice only").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = uuid::Uuid::now_v7().to_string();
    for target in [&id, &missing] {
        let path = format!("/v1/memories/{target}");
        for request in [
            app.request(Method::GET, &path, &bob),
            app.request(Method::PATCH, &path, &bob)
                .header("if-match", "\"1\"")
                .json(&json!({"content": "hijack"})),
            app.request(Method::DELETE, &path, &bob),
            app.request(Method::POST, &format!("{path}/restore"), &bob),
            app.request(Method::GET, &format!("{path}/versions"), &bob),
        ] {
            let doc = problem(request.send().await.unwrap(), 404).await;
            assert_eq!(doc["detail"], "not found");
        }
    }
    let still = body(
        app.request(Method::GET, &format!("/v1/memories/{id}"), &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (
            still["content"].as_str(),
            still["version"].as_i64(),
            still["deleted_at"].is_null()
        ),
        (Some("alice only"), Some(1), true)
    );
    problem(
        app.request(Method::GET, "/v1/memories/not-a-uuid", &bob)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn lists_paginate_with_opaque_cursors_and_refuse_bad_parameters() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    for i in 0..12 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd", "x"])
        };
        app.request(Method::POST, "/v1/memories", &key)
            .json(&json!({"content": format!("m{i}"), "tags": tags}))
            .send()
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut url = "/v1/memories?limit=5".to_owned();
    loop {
        let page = body(app.request(Method::GET, &url, &key).send().await.unwrap()).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/v1/memories?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "newest first, each once");

    let odd = body(
        app.request(Method::GET, "/v1/memories?tags=odd,x&tags_mode=all", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(odd["items"].as_array().unwrap().len(), 6);
    let asc = body(
        app.request(Method::GET, "/v1/memories?order=asc&limit=1", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(asc["items"][0]["content"], "m0");
    let future = body(
        app.request(
            Method::GET,
            "/v1/memories?created_after=2999-01-01T00:00:00Z",
            &key,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(future["items"].as_array().unwrap().len(), 0);
    for bad in [
        "limit=0",
        "limit=201",
        "cursor=garbage",
        "state=gone",
        "tags_mode=some",
        "created_after=soon",
        "category=nope",
        "colour=red",
    ] {
        problem(
            app.request(Method::GET, &format!("/v1/memories?{bad}"), &key)
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
    }
}

#[tokio::test]
async fn batches_answer_per_item_and_are_bounded() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    app.create_memory(&key, "exists").await;
    let response = app
        .request(Method::POST, "/v1/memories/batch", &key)
        .json(&json!({"memories": [{"content": "new one"}, {"content": ""}, {"content": "exists"}, {"nope": 1}, {"content": "new two", "tags": ["b"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result = body(response).await;
    let statuses: Vec<_> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        ["created", "error", "duplicate", "error", "created"]
    );
    assert!(
        result["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("content")
    );
    assert_eq!(
        (result["succeeded"].clone(), result["failed"].clone()),
        (json!(3), json!(2))
    );

    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"content": format!("c{i}")}))
        .collect();
    problem(
        app.request(Method::POST, "/v1/memories/batch", &key)
            .json(&json!({"memories": too_many}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;

    let ids: Vec<String> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["memory"]["id"].as_str().map(str::to_owned))
        .collect();
    let mut request_ids = ids.clone();
    request_ids.push(ids[0].clone());
    request_ids.push(uuid::Uuid::now_v7().to_string());
    request_ids.push("bad-id".into());
    let deleted = body(
        app.request(Method::POST, "/v1/memories/batch-delete", &key)
            .json(&json!({"ids": request_ids}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let statuses: Vec<_> = deleted["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        [
            "deleted",
            "deleted",
            "deleted",
            "already_deleted",
            "not_found",
            "error"
        ]
    );
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    problem(
        app.request(Method::POST, "/v1/memories/batch-delete", &key)
            .json(&json!({"ids": too_many}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}
