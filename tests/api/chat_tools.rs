//! Omi chat tools: the manifest and the tool calls, as Omi makes them (`{uid, app_id, tool_name,
//! …params}` → `{"result"}` / `{"error"}`), with and without valid authentication.

use angel_memory::omi::signature::{SignedRequest, sign_omi_v2};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, body, spawn_app_with};

const TOKEN: &str = "chat-tools-url-secret-0123456789";
const SIGNING: &str = "whsec_QIktf9hRC0HwxheESHB71z2KSGTB7E0cjeqL5tgV1y4";

async fn tokened_app() -> TestApp {
    spawn_app_with(|c| c.webhook_token = Some(TOKEN.to_owned().into())).await
}

async fn call(app: &TestApp, tool: &str, token: Option<&str>, call: Value) -> Response {
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    app.client
        .post(app.url(&format!("/omi/tools/{tool}{query}")))
        .json(&call)
        .send()
        .await
        .unwrap()
}

/// The `result` text of a successful call.
async fn result(response: Response) -> String {
    assert_eq!(response.status(), 200);
    let doc = body(response).await;
    doc["result"]
        .as_str()
        .unwrap_or_else(|| panic!("a result: {doc}"))
        .to_owned()
}

async fn error(response: Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let doc = body(response).await;
    assert_eq!(doc.as_object().unwrap().len(), 1, "only error: {doc}");
    doc["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error: {doc}"))
        .to_owned()
}

fn omi_call(uid: &str, tool: &str, params: Value) -> Value {
    let mut call = json!({"uid": uid, "app_id": "01JJ721682E66VBGQJPE985XGT", "tool_name": tool});
    call.as_object_mut()
        .unwrap()
        .extend(params.as_object().unwrap().clone());
    call
}

#[tokio::test]
async fn the_manifest_lists_the_tools_and_needs_the_url_secret() {
    let app = tokened_app().await;
    let refused = app
        .client
        .get(app.url("/.well-known/omi-tools.json"))
        .send()
        .await
        .unwrap();
    assert!(!error(refused, 401).await.is_empty());

    let manifest = app
        .client
        .get(app.url(&format!("/.well-known/omi-tools.json?token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let manifest = body(manifest).await;
    let tools = manifest["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "search_memories",
            "remember",
            "forget",
            "recent_conversations"
        ]
    );
    for tool in tools {
        let mut keys: Vec<&String> = tool.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "auth_required",
                "description",
                "endpoint",
                "method",
                "name",
                "parameters",
                "status_message"
            ]
        );
        assert_eq!(tool["method"], "POST");
        assert_eq!(
            tool["endpoint"],
            format!(
                "/omi/tools/{}?token={TOKEN}",
                tool["name"].as_str().unwrap()
            )
        );
        assert!(tool["parameters"]["properties"].is_object());
        assert!(tool["parameters"]["required"].is_array());
    }
    assert_eq!(manifest["chat_messages"]["enabled"], false);
}

#[tokio::test]
async fn tools_remember_search_forget_and_list_conversations() {
    let app = tokened_app().await;
    let uid = "chat-user";

    let remembered = result(
        call(
            &app,
            "remember",
            Some(TOKEN),
            omi_call(
                uid,
                "remember",
                json!({"content": "Priya's birthday is 12 March", "tags": ["family"]}),
            ),
        )
        .await,
    )
    .await;
    assert!(
        remembered.starts_with("Remembered: Priya's birthday is 12 March"),
        "{remembered}"
    );
    let again = result(
        call(
            &app,
            "remember",
            Some(TOKEN),
            omi_call(
                uid,
                "remember",
                json!({"content": "Priya's birthday is 12 March"}),
            ),
        )
        .await,
    )
    .await;
    assert!(again.starts_with("Already remembered"), "{again}");

    let found = result(
        call(
            &app,
            "search_memories",
            Some(TOKEN),
            omi_call(
                uid,
                "search_memories",
                json!({"query": "when is Priya's birthday", "limit": 3}),
            ),
        )
        .await,
    )
    .await;
    assert!(found.contains("Priya's birthday is 12 March"), "{found}");
    let id = found
        .split("(memory ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_owned();
    let by_tag = result(
        call(
            &app,
            "search_memories",
            Some(TOKEN),
            omi_call(
                uid,
                "search_memories",
                json!({"query": "birthday", "tag": "work"}),
            ),
        )
        .await,
    )
    .await;
    assert!(by_tag.starts_with("No memories match"), "{by_tag}");

    // The same memory through the native API: it belongs to the uid Omi named.
    let key = app.user_with_key(uid).await;
    let native = body(
        app.request(Method::GET, &format!("/v1/memories/{id}"), &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(native["tags"], json!(["family"]));

    let forgot = result(
        call(
            &app,
            "forget",
            Some(TOKEN),
            omi_call(uid, "forget", json!({"memory_id": id})),
        )
        .await,
    )
    .await;
    assert!(forgot.starts_with("Forgot: Priya's birthday"), "{forgot}");
    let native = body(
        app.request(Method::GET, &format!("/v1/memories/{id}"), &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(native["deleted_at"].is_string(), "forget is a soft delete");
    let gone = result(
        call(
            &app,
            "search_memories",
            Some(TOKEN),
            omi_call(uid, "search_memories", json!({"query": "Priya birthday"})),
        )
        .await,
    )
    .await;
    assert!(gone.starts_with("No memories match"), "{gone}");

    let none = result(
        call(
            &app,
            "recent_conversations",
            Some(TOKEN),
            omi_call(uid, "recent_conversations", json!({})),
        )
        .await,
    )
    .await;
    assert_eq!(none, "No conversations yet.");
    let dev = app
        .admin(Method::POST, &format!("/v1/admin/users/{uid}/keys"))
        .json(&json!({"name": "dev", "format": "omi_dev"}))
        .send()
        .await
        .unwrap();
    let dev = body(dev).await["key"].as_str().unwrap().to_owned();
    app.request(Method::POST, "/v1/dev/user/conversations", &dev)
        .json(&json!({"text": "Planning the garden with Sam."}))
        .send()
        .await
        .unwrap();
    let recent = result(
        call(
            &app,
            "recent_conversations",
            Some(TOKEN),
            omi_call(uid, "recent_conversations", json!({"limit": 2})),
        )
        .await,
    )
    .await;
    assert!(recent.contains("Planning the garden with Sam."), "{recent}");
    app.request(Method::POST, "/v1/dev/user/conversations", &dev)
        .json(&json!({"text": "Small talk about nothing."}))
        .send()
        .await
        .unwrap();
    let listed = body(
        app.request(Method::GET, "/v1/dev/user/conversations", &dev)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let small_talk = listed[0]["id"].as_str().unwrap();
    app.request(
        Method::PATCH,
        &format!("/v1/dev/user/conversations/{small_talk}"),
        &dev,
    )
    .json(&json!({"discarded": true}))
    .send()
    .await
    .unwrap();
    let recent = result(
        call(
            &app,
            "recent_conversations",
            Some(TOKEN),
            omi_call(uid, "recent_conversations", json!({})),
        )
        .await,
    )
    .await;
    assert!(
        !recent.contains("Small talk"),
        "discarded ones are left out: {recent}"
    );
    assert!(recent.contains("Planning the garden"), "{recent}");

    // What the model asked for cannot be done: a readable error, and the call itself succeeded.
    assert_eq!(
        error(
            call(
                &app,
                "remember",
                Some(TOKEN),
                omi_call(uid, "remember", json!({}))
            )
            .await,
            200
        )
        .await,
        "content is required"
    );
    assert!(
        error(
            call(
                &app,
                "forget",
                Some(TOKEN),
                omi_call(uid, "forget", json!({"memory_id": "nope"}))
            )
            .await,
            200
        )
        .await
        .contains("UUID")
    );
    assert!(
        !error(
            call(&app, "fly", Some(TOKEN), omi_call(uid, "fly", json!({}))).await,
            404
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn calls_without_valid_authentication_are_refused() {
    let app = tokened_app().await;
    let remember = omi_call("intruded", "remember", json!({"content": "planted"}));
    assert!(
        !error(call(&app, "remember", None, remember.clone()).await, 401)
            .await
            .is_empty()
    );
    assert!(
        !error(
            call(
                &app,
                "remember",
                Some("wrong-token-wrong-token"),
                remember.clone()
            )
            .await,
            401
        )
        .await
        .is_empty()
    );
    assert_eq!(
        app.admin(Method::GET, "/v1/admin/users/intruded/keys")
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "no user was created"
    );
}

#[tokio::test]
async fn omi_signed_calls_verify_and_tampering_is_refused() {
    let app = spawn_app_with(|c| c.omi_signing_secret = Some(SIGNING.to_owned().into())).await;
    let manifest = body(
        app.client
            .get(app.url("/.well-known/omi-tools.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        manifest["tools"][0]["endpoint"], "/omi/tools/search_memories",
        "no secret to carry"
    );

    let payload = serde_json::to_vec(&omi_call(
        "signed-user",
        "remember",
        json!({"content": "Signed fact"}),
    ))
    .unwrap();
    let request = SignedRequest {
        delivery: "0f7d4c9e-delivery",
        event: "chat_tool",
        method: "POST",
        path: "/omi/tools/remember",
        query: "",
    };
    let now = chrono::Utc::now().timestamp();
    let signature = sign_omi_v2(&request, &payload, SIGNING, now);
    let send = |body: Vec<u8>, signature: String| {
        app.client
            .post(app.url("/omi/tools/remember"))
            .header("content-type", "application/json")
            .header("x-omi-signature", signature)
            .header("x-omi-delivery", "0f7d4c9e-delivery")
            .header("x-omi-event", "chat_tool")
            .body(body)
            .send()
    };
    let ok = result(send(payload.clone(), signature.clone()).await.unwrap()).await;
    assert!(ok.starts_with("Remembered: Signed fact"), "{ok}");

    let mut tampered = payload.clone();
    let at = tampered.len() - 3;
    tampered[at] = b'X';
    assert!(
        !error(send(tampered, signature.clone()).await.unwrap(), 401)
            .await
            .is_empty()
    );
    let stale = sign_omi_v2(&request, &payload, SIGNING, now - 600);
    assert!(
        !error(send(payload.clone(), stale).await.unwrap(), 401)
            .await
            .is_empty()
    );
    let unsigned = app
        .client
        .post(app.url("/omi/tools/remember"))
        .body(payload)
        .send()
        .await
        .unwrap();
    assert!(!error(unsigned, 401).await.is_empty());
}

#[tokio::test]
async fn tools_never_reach_another_users_memories() {
    let app = tokened_app().await;
    let remembered = result(
        call(
            &app,
            "remember",
            Some(TOKEN),
            omi_call(
                "chat-alice",
                "remember",
                json!({"content": "Alice's locker code is 4711"}),
            ),
        )
        .await,
    )
    .await;
    let id = remembered
        .split("(memory ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_owned();

    let searched = result(
        call(
            &app,
            "search_memories",
            Some(TOKEN),
            omi_call(
                "chat-bob",
                "search_memories",
                json!({"query": "locker code"}),
            ),
        )
        .await,
    )
    .await;
    assert!(searched.starts_with("No memories match"), "{searched}");
    let forgot = error(
        call(
            &app,
            "forget",
            Some(TOKEN),
            omi_call("chat-bob", "forget", json!({"memory_id": id})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(forgot, "no memory has that id");
    let still = result(
        call(
            &app,
            "search_memories",
            Some(TOKEN),
            omi_call(
                "chat-alice",
                "search_memories",
                json!({"query": "locker code"}),
            ),
        )
        .await,
    )
    .await;
    assert!(still.contains("4711"), "{still}");
}

/// `angel-memory omi manifest`: the app form's fields as Omi's example has them, with this
/// deployment's addresses and secret; and `key create --format omi-dev` for the Developer API.
#[test]
fn the_cli_prints_the_app_manifest_and_mints_omi_dev_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_angel-memory"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ANGEL_MEMORY_") {
                command.env_remove(name);
            }
        }
        if let Some(token) = token {
            command.env("ANGEL_MEMORY_WEBHOOK_TOKEN", token);
        }
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let output = run(
        &[
            "omi",
            "manifest",
            "--public-url",
            "https://memory.example.org/",
        ],
        Some(TOKEN),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/omi/app_manifest_example.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let integration = &manifest["external_integration"];
    for field in [
        "triggers_on",
        "webhook_url",
        "setup_completed_url",
        "app_home_url",
        "actions",
        "chat_tools_manifest_url",
        "chat_messages_enabled",
        "chat_messages_target",
        "chat_messages_notify",
        "mcp_server_url",
        "mcp_oauth_tokens",
    ] {
        assert!(
            example["external_integration"].get(field).is_some(),
            "Omi's example has {field}"
        );
        assert!(integration.get(field).is_some(), "the manifest has {field}");
    }
    for field in [
        "name",
        "description",
        "category",
        "capabilities",
        "private",
        "is_paid",
        "price",
    ] {
        assert!(
            example.get(field).is_some() && manifest.get(field).is_some(),
            "{field}"
        );
    }
    assert_eq!(
        integration["triggers_on"],
        example["external_integration"]["triggers_on"]
    );
    assert_eq!(
        integration["webhook_url"],
        format!("https://memory.example.org/webhooks/omi/conversation?token={TOKEN}")
    );
    assert_eq!(
        integration["setup_completed_url"],
        format!("https://memory.example.org/webhooks/omi/setup-completed?token={TOKEN}")
    );
    assert_eq!(
        integration["app_home_url"],
        "https://memory.example.org/app"
    );
    assert_eq!(
        integration["chat_tools_manifest_url"],
        format!("https://memory.example.org/.well-known/omi-tools.json?token={TOKEN}")
    );
    assert_eq!(manifest["capabilities"], json!(["external_integration"]));

    let unconfigured = run(
        &[
            "omi",
            "manifest",
            "--public-url",
            "https://memory.example.org",
        ],
        None,
    );
    assert_eq!(
        unconfigured.status.code(),
        Some(2),
        "no secret to put in the URLs"
    );
    let not_a_url = run(
        &["omi", "manifest", "--public-url", "memory.example.org"],
        Some(TOKEN),
    );
    assert_eq!(not_a_url.status.code(), Some(2));

    assert!(run(&["user", "add", "cli-dev"], None).status.success());
    let key = run(&["key", "create", "cli-dev", "--format", "omi-dev"], None);
    assert!(key.status.success());
    assert!(
        String::from_utf8_lossy(&key.stdout)
            .trim()
            .starts_with("omi_dev_")
    );
    let native = run(&["key", "create", "cli-dev"], None);
    assert!(
        String::from_utf8_lossy(&native.stdout)
            .trim()
            .starts_with("am_")
    );
}
