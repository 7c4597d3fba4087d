//! `/v1/admin/*`: the admin token, users, keys and purge.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, body, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    problem(
        app.client
            .get(app.url("/v1/admin/users"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        app.request(Method::GET, "/v1/admin/users", "wrong-token-wrong-token")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        app.request(Method::GET, "/v1/admin/users", &key)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        app.request(Method::GET, "/v1/memories", ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;

    let off = spawn_app_with(|c| c.admin_token = None).await;
    let doc = problem(
        off.admin(Method::GET, "/v1/admin/users")
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("ANGEL_MEMORY_ADMIN_TOKEN")
    );
}

#[tokio::test]
async fn users_are_validated_and_unique() {
    let app = spawn_app().await;
    let create = |uid: String| {
        app.admin(Method::POST, "/v1/admin/users")
            .json(&json!({"uid": uid}))
    };
    assert_eq!(
        create("5Z9Lil2WHl1vvn5iP2pZw0fKm4BR".into())
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    problem(
        create("5Z9Lil2WHl1vvn5iP2pZw0fKm4BR".into())
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    for bad in [
        String::new(),
        " B ".into(),
        "a b".into(),
        "x".repeat(129),
        "tab\there".into(),
    ] {
        let doc = problem(create(bad).send().await.unwrap(), 400).await;
        assert_eq!(doc["field"], "uid");
    }
    for i in 0..4 {
        create(format!("user-{i}")).send().await.unwrap();
    }
    let first = body(
        app.admin(Method::GET, "/v1/admin/users?limit=3")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second = body(
        app.admin(
            Method::GET,
            &format!("/v1/admin/users?limit=3&cursor={cursor}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        first["items"].as_array().unwrap().len() + second["items"].as_array().unwrap().len(),
        5
    );
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn keys_are_shown_once_tracked_and_revocable() {
    let app = spawn_app().await;
    problem(
        app.admin(Method::POST, "/v1/admin/users/nobody/keys")
            .json(&json!({"name": "k"}))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let key = app.user_with_key("alice").await;
    assert!(key.starts_with("am_") && key.len() == 46);
    assert_eq!(
        app.request(Method::GET, "/v1/memories", &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let keys = body(
        app.admin(Method::GET, "/v1/admin/users/alice/keys")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed = &keys["items"][0];
    assert!(key.starts_with(listed["prefix"].as_str().unwrap()));
    assert!(
        !keys.to_string().contains(&key),
        "the secret is never listed"
    );
    // The use is recorded off the request path (a background write), so allow it a moment.
    let mut recorded = listed["last_used_at"].is_string();
    for _ in 0..50 {
        if recorded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let keys = body(
            app.admin(Method::GET, "/v1/admin/users/alice/keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        recorded = keys["items"][0]["last_used_at"].is_string();
    }
    assert!(recorded, "use is recorded");
    let key_id = listed["id"].as_str().unwrap().to_owned();

    let revoked = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/users/alice/keys/{key_id}"),
        )
        .send()
        .await
        .unwrap();
    assert!(body(revoked).await["revoked_at"].is_string());
    problem(
        app.request(Method::GET, "/v1/memories", &key)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        app.admin(
            Method::DELETE,
            &format!("/v1/admin/users/bob/keys/{key_id}"),
        )
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_erases_their_data_and_keys() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    app.create_memory(&key, "soon gone").await;
    let other = app.user_with_key("bob").await;
    app.create_memory(&other, "bob's").await;
    assert_eq!(
        app.admin(Method::DELETE, "/v1/admin/users/alice")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    problem(
        app.request(Method::GET, "/v1/memories", &key)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(
        app.admin(Method::DELETE, "/v1/admin/users/alice")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let bobs = body(
        app.request(Method::GET, "/v1/memories", &other)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn purge_hard_deletes_only_old_soft_deleted_memories() {
    let app = spawn_app().await;
    let key = app.user_with_key("alice").await;
    let gone = app.create_memory(&key, "purge me").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = app.create_memory(&key, "keep me").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.request(Method::DELETE, &format!("/v1/memories/{gone}"), &key)
        .send()
        .await
        .unwrap();

    let default = body(
        app.admin(Method::POST, "/v1/admin/purge")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(default["purged"], 0, "retention (30 days) has not passed");
    let now = body(
        app.admin(Method::POST, "/v1/admin/purge")
            .json(&json!({"older_than_days": 0, "uid": "alice"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(now["purged"], 1);
    problem(
        app.request(Method::GET, &format!("/v1/memories/{gone}"), &key)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(
        app.request(Method::GET, &format!("/v1/memories/{kept}"), &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let audit = body(
        app.request(Method::GET, "/v1/audit", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(audit["items"][0]["action"], "memory.purge");
    assert!(!audit.to_string().contains("purge me"));
}
