//! The MCP server at `/mcp`, driven by the official Rust SDK's client over Streamable HTTP: initialize,
//! list tools, call each tool; clear tool errors; and no way into another user's data.

use reqwest::Method;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::helpers::{TestApp, body, spawn_app};

type Client = RunningService<RoleClient, ()>;

async fn connect(app: &TestApp, key: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(key);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP initialize")
}

async fn call(client: &Client, tool: &'static str, arguments: Value) -> CallToolResult {
    let arguments: JsonObject = serde_json::from_value(arguments).unwrap();
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .collect()
}

/// The JSON a successful tool returned.
fn ok(result: CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool error: {}", text(&result));
    serde_json::from_str(&text(&result)).expect("JSON")
}

/// The message of a tool error.
fn failed(result: CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected an error: {}",
        text(&result)
    );
    text(&result)
}

#[tokio::test]
async fn an_mcp_session_lists_and_calls_every_tool() {
    let app = spawn_app().await;
    let key = app.user_with_key("mcp-user").await;
    let client = connect(&app, &key).await;

    let info = client.peer_info().expect("server info after initialize");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("angel-memory")
    );

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "create_memory",
            "delete_memory",
            "get_conversation",
            "get_memory",
            "list_action_items",
            "list_conversations",
            "memory_history",
            "restore_memory",
            "search_memories",
            "update_memory"
        ]
    );
    let create = tools.iter().find(|t| t.name == "create_memory").unwrap();
    let schema = Value::Object((*create.input_schema).clone());
    assert_eq!(schema["required"], json!(["content"]), "{schema}");
    assert!(schema["properties"]["tags"].is_object());

    let created = ok(call(
        &client,
        "create_memory",
        json!({"content": "Sam drives a red Volvo", "tags": ["sam"]}),
    )
    .await);
    assert_eq!(created["duplicate"], false);
    let id = created["memory"]["id"].as_str().unwrap().to_owned();
    let duplicate = ok(call(
        &client,
        "create_memory",
        json!({"content": "Sam drives a red Volvo"}),
    )
    .await);
    assert_eq!(duplicate["duplicate"], true);

    let got = ok(call(&client, "get_memory", json!({"id": id})).await);
    assert_eq!(got["content"], "Sam drives a red Volvo");
    assert_eq!(got["version"], 1);

    let found = ok(call(
        &client,
        "search_memories",
        json!({"query": "what car does Sam drive"}),
    )
    .await);
    assert_eq!(found["items"][0]["memory"]["id"], id.as_str());

    let updated = ok(call(
        &client,
        "update_memory",
        json!({"id": id, "content": "Sam drives a blue Volvo"}),
    )
    .await);
    assert_eq!(updated["version"], 2);
    let stale = failed(
        call(
            &client,
            "update_memory",
            json!({"id": id, "content": "x", "expected_version": 1}),
        )
        .await,
    );
    assert!(stale.starts_with("conflict:"), "{stale}");

    let history = ok(call(&client, "memory_history", json!({"id": id})).await);
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[0]["content"], "Sam drives a red Volvo");

    let deleted = ok(call(&client, "delete_memory", json!({"id": id})).await);
    assert!(deleted["deleted_at"].is_string());
    let restored = ok(call(&client, "restore_memory", json!({"id": id})).await);
    assert_eq!(restored["deleted_at"], Value::Null);

    // Conversations and action items, written through the Developer API.
    let dev = app
        .admin(Method::POST, "/v1/admin/users/mcp-user/keys")
        .json(&json!({"name": "dev", "format": "omi_dev"}))
        .send()
        .await
        .unwrap();
    let dev = body(dev).await["key"].as_str().unwrap().to_owned();
    let conversation = app
        .request(Method::POST, "/v1/dev/user/conversations/from-segments", &dev)
        .json(&json!({"transcript_segments": [{"text": "Remind me to water the plants.", "start": 0.0, "end": 2.0}]}))
        .send()
        .await
        .unwrap();
    let conversation_id = body(conversation).await["id"].as_str().unwrap().to_owned();
    app.request(Method::POST, "/v1/dev/user/action-items", &dev)
        .json(&json!({"description": "Water the plants"}))
        .send()
        .await
        .unwrap();

    let conversations = ok(call(&client, "list_conversations", json!({"limit": 10})).await);
    assert_eq!(conversations["items"][0]["id"], conversation_id.as_str());
    let one = ok(call(&client, "get_conversation", json!({"id": conversation_id})).await);
    assert_eq!(
        one["transcript_segments"][0]["text"],
        "Remind me to water the plants."
    );
    let items = ok(call(&client, "list_action_items", json!({"completed": false})).await);
    assert_eq!(items["items"][0]["description"], "Water the plants");

    // Clear tool errors.
    let bad_id = failed(call(&client, "get_memory", json!({"id": "not-an-id"})).await);
    assert!(bad_id.starts_with("invalid_arguments:"), "{bad_id}");
    let missing = failed(call(&client, "get_conversation", json!({"id": "nope"})).await);
    assert!(missing.starts_with("not_found:"), "{missing}");
    let empty = failed(call(&client, "update_memory", json!({"id": id})).await);
    assert!(
        empty.starts_with("invalid_arguments: nothing to update"),
        "{empty}"
    );
    let limit = failed(call(&client, "list_conversations", json!({"limit": 1000})).await);
    assert!(limit.starts_with("invalid_arguments:"), "{limit}");
    let schema_error = client
        .call_tool(CallToolRequestParams::new("get_memory").with_arguments(JsonObject::new()))
        .await;
    // Refused before the tool runs: as a protocol error or a tool error, naming the argument.
    match schema_error {
        Err(e) => assert!(e.to_string().contains("id"), "{e}"),
        Ok(result) => assert!(failed(result).contains("id")),
    }

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn mcp_needs_a_valid_key() {
    let app = spawn_app().await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let without = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .request(Method::POST, "/mcp", "am_not-a-key")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn mcp_never_reaches_another_users_data() {
    let app = spawn_app().await;
    let alice_key = app.user_with_key("mcp-alice").await;
    let bob_key = app.user_with_key("mcp-bob").await;
    let alice = connect(&app, &alice_key).await;
    let bob = connect(&app, &bob_key).await;

    let secret = ok(call(
        &alice,
        "create_memory",
        json!({"content": "Alice's locker code is 4711"}),
    )
    .await);
    let id = secret["memory"]["id"].as_str().unwrap().to_owned();

    for (tool, args) in [
        ("get_memory", json!({"id": id})),
        (
            "update_memory",
            json!({"id": id, "content": "Bob was here"}),
        ),
        ("delete_memory", json!({"id": id})),
        ("memory_history", json!({"id": id})),
        ("restore_memory", json!({"id": id})),
    ] {
        let refused = failed(call(&bob, tool, args).await);
        assert!(refused.starts_with("not_found:"), "{tool}: {refused}");
    }
    let searched = ok(call(&bob, "search_memories", json!({"query": "locker code"})).await);
    assert_eq!(searched["items"], json!([]));
    let listed = ok(call(&bob, "list_conversations", json!({})).await);
    assert_eq!(listed["items"], json!([]));

    let still = ok(call(&alice, "get_memory", json!({"id": id})).await);
    assert_eq!(still["content"], "Alice's locker code is 4711");
    assert_eq!(still["version"], 1);
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}
