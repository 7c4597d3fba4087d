//! Omi's Developer API dialect (`/v1/dev/user/*`), driven as a client written for Omi would, and
//! compared field by field with the contract (shared/reference/omi-contract.md §6).

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, body, fields, names, spawn_app};

const MEMORY_CREATE_FIELDS: [&str; 9] = [
    "id",
    "content",
    "category",
    "visibility",
    "tags",
    "created_at",
    "updated_at",
    "manually_added",
    "scoring",
];
const MEMORY_LIST_FIELDS: [&str; 12] = [
    "id",
    "content",
    "category",
    "visibility",
    "tags",
    "created_at",
    "updated_at",
    "manually_added",
    "scoring",
    "reviewed",
    "user_review",
    "edited",
];
const ACTION_ITEM_FIELDS: [&str; 8] = [
    "id",
    "description",
    "completed",
    "created_at",
    "updated_at",
    "due_at",
    "completed_at",
    "conversation_id",
];
const CONVERSATION_FIELDS: [&str; 9] = [
    "id",
    "created_at",
    "started_at",
    "finished_at",
    "structured",
    "language",
    "source",
    "transcript_segments",
    "geolocation",
];

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    json: Option<Value>,
) -> Response {
    let mut request = app.request(method, path, key);
    if let Some(json) = json {
        request = request.json(&json);
    }
    request.send().await.unwrap()
}

/// Omi's error body: `{"detail": …}` and nothing else, with this status.
async fn detail(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let doc = body(response).await;
    assert_eq!(fields(&doc), names(&["detail"]), "only detail: {doc}");
    doc["detail"].clone()
}

/// A FastAPI validation error: 422 whose detail is a list locating the field.
async fn validation(response: Response, field: &str) {
    let detail = detail(response, 422).await;
    let first = &detail
        .as_array()
        .unwrap_or_else(|| panic!("a list: {detail}"))[0];
    assert_eq!(first["loc"][1], field, "{detail}");
    assert!(first["msg"].as_str().is_some_and(|m| !m.is_empty()));
}

/// A request FastAPI could not even read into its model: 422 with a list.
async fn malformed(response: Response) {
    let detail = detail(response, 422).await;
    assert!(detail.as_array().is_some_and(|d| !d.is_empty()), "{detail}");
}

#[tokio::test]
async fn dev_keys_have_omis_prefix_and_other_keys_are_refused() {
    let app = spawn_app().await;
    let native = app.user_with_key("dev-key-user").await;
    let dev = app.user_with_omi_dev_key("dev-key-user").await;
    assert!(dev.starts_with("omi_dev_"), "{dev}");
    assert!(native.starts_with("am_"));

    let ok = send(&app, Method::GET, "/v1/dev/user/memories", &dev, None).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(body(ok).await, json!([]));

    let refused = send(&app, Method::GET, "/v1/dev/user/memories", &native, None).await;
    assert_eq!(detail(refused, 401).await, "Invalid API key");
    let unknown = send(
        &app,
        Method::GET,
        "/v1/dev/user/memories",
        "omi_dev_nope",
        None,
    )
    .await;
    assert_eq!(detail(unknown, 401).await, "Invalid API key");
    let missing = app
        .client
        .get(app.url("/v1/dev/user/memories"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        detail(missing, 401).await,
        "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"
    );

    // The key is listed like every key, with its recognisable prefix.
    let keys = body(
        app.admin(Method::GET, "/v1/admin/users/dev-key-user/keys")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["prefix"].as_str().unwrap().starts_with("omi_dev_"))
    );
}

#[tokio::test]
async fn memories_follow_omis_contract() {
    let app = spawn_app().await;
    let key = app.user_with_omi_dev_key("dev-memories").await;
    let path = "/v1/dev/user/memories";

    let created = send(
        &app,
        Method::POST,
        path,
        &key,
        Some(json!({"content": "  Sam drives a red Volvo  ", "tags": ["cars"]})),
    )
    .await;
    assert_eq!(created.status(), 200);
    let created = body(created).await;
    assert_eq!(fields(&created), names(&MEMORY_CREATE_FIELDS));
    assert_eq!(created["content"], "Sam drives a red Volvo");
    assert_eq!(created["category"], "manual");
    assert_eq!(created["visibility"], "private");
    assert_eq!(created["tags"], json!(["cars"]));
    assert_eq!(created["manually_added"], true);
    let scoring = created["scoring"].as_str().unwrap();
    let parts: Vec<&str> = scoring.split('_').collect();
    assert_eq!(parts[0], "01", "{scoring}");
    assert_eq!(parts[1], "998", "manual's boost is 1: {scoring}");
    assert_eq!(parts[2].len(), 10, "{scoring}");

    let system = body(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"content": "Prefers tea", "category": "system", "visibility": "public"})),
        )
        .await,
    )
    .await;
    assert_eq!(system["category"], "system");
    assert_eq!(system["visibility"], "public");
    assert!(system["scoring"].as_str().unwrap().starts_with("01_999_"));

    // Omi's validation: 1–500 characters, blank, visibility, category.
    validation(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"content": "x".repeat(501)})),
        )
        .await,
        "content",
    )
    .await;
    validation(
        send(&app, Method::POST, path, &key, Some(json!({"content": ""}))).await,
        "content",
    )
    .await;
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                path,
                &key,
                Some(json!({"content": "   "}))
            )
            .await,
            422
        )
        .await,
        "content cannot be empty"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                path,
                &key,
                Some(json!({"content": "a", "visibility": "friends"}))
            )
            .await,
            422
        )
        .await,
        "visibility must be 'public' or 'private'"
    );
    validation(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"content": "a", "category": "nonsense"})),
        )
        .await,
        "category",
    )
    .await;
    malformed(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"text": "no content"})),
        )
        .await,
    )
    .await;

    // List: Omi's fields, scoring order (system before manual at equal manual flag), filters, paging.
    let listed = body(send(&app, Method::GET, path, &key, None).await).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(fields(&listed[0]), names(&MEMORY_LIST_FIELDS));
    assert_eq!(listed[0]["content"], "Prefers tea", "999 sorts before 998");
    assert_eq!(listed[0]["reviewed"], false);
    assert_eq!(listed[0]["user_review"], Value::Null);
    assert_eq!(listed[0]["edited"], false);
    let only_manual = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?categories=manual"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(only_manual.as_array().unwrap().len(), 1);
    let page = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?limit=1&offset=1"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(page[0]["content"], "Sam drives a red Volvo");
    let clamped = send(
        &app,
        Method::GET,
        &format!("{path}?limit=0&offset=-5"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        body(clamped).await.as_array().unwrap().len(),
        1,
        "limit clamps to 1"
    );
    let bad = detail(
        send(
            &app,
            Method::GET,
            &format!("{path}?categories=bogus"),
            &key,
            None,
        )
        .await,
        400,
    )
    .await;
    assert!(
        bad.as_str().unwrap().starts_with("Invalid category"),
        "{bad}"
    );
    malformed(send(&app, Method::GET, &format!("{path}?limit=many"), &key, None).await).await;

    // Update: Omi's order of checks, then the full memory back.
    let id = created["id"].as_str().unwrap();
    let one = format!("{path}/{id}");
    assert_eq!(
        detail(
            send(&app, Method::PATCH, &one, &key, Some(json!({}))).await,
            422
        )
        .await,
        "At least one field (content, visibility, tags, or category) must be provided"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::PATCH,
                &format!("{path}/00000000-0000-7000-8000-000000000000"),
                &key,
                Some(json!({"content": "x"}))
            )
            .await,
            404
        )
        .await,
        "Memory not found"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::PATCH,
                &format!("{path}/not-a-uuid"),
                &key,
                Some(json!({"content": "x"}))
            )
            .await,
            404
        )
        .await,
        "Memory not found"
    );
    validation(
        send(
            &app,
            Method::PATCH,
            &one,
            &key,
            Some(json!({"content": "y".repeat(501)})),
        )
        .await,
        "content",
    )
    .await;
    let updated = send(
        &app,
        Method::PATCH,
        &one,
        &key,
        Some(json!({"content": "Sam drives a blue Volvo", "tags": ["cars", "sam"]})),
    )
    .await;
    assert_eq!(updated.status(), 200);
    let updated = body(updated).await;
    assert_eq!(fields(&updated), names(&MEMORY_LIST_FIELDS));
    assert_eq!(updated["content"], "Sam drives a blue Volvo");
    assert_eq!(updated["tags"], json!(["cars", "sam"]));
    assert_eq!(updated["edited"], true);

    // Delete: `{"success": true}`, then gone for Omi's clients, still restorable natively.
    let deleted = send(&app, Method::DELETE, &one, &key, None).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(body(deleted).await, json!({"success": true}));
    assert_eq!(
        detail(send(&app, Method::DELETE, &one, &key, None).await, 404).await,
        "Memory not found"
    );
    let native_key = app.user_with_key("dev-memories").await;
    let versions = body(
        send(
            &app,
            Method::GET,
            &format!("/v1/memories/{id}/versions"),
            &native_key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        versions["items"].as_array().unwrap().len(),
        2,
        "versions stay visible natively"
    );
    let restored = send(
        &app,
        Method::POST,
        &format!("/v1/memories/{id}/restore"),
        &native_key,
        None,
    )
    .await;
    assert_eq!(restored.status(), 200);
}

#[tokio::test]
async fn memory_batches_are_all_or_nothing_with_omis_limits() {
    let app = spawn_app().await;
    let key = app.user_with_omi_dev_key("dev-batch").await;
    let path = "/v1/dev/user/memories/batch";

    let empty = body(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"memories": []})),
        )
        .await,
    )
    .await;
    assert_eq!(empty, json!({"memories": [], "created_count": 0}));

    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"content": format!("fact {i}")}))
        .collect();
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                path,
                &key,
                Some(json!({"memories": too_many}))
            )
            .await,
            422
        )
        .await,
        "Maximum 25 memories per batch request"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                path,
                &key,
                Some(json!({"memories": [{"content": "fine"}, {"content": "  "}]}))
            )
            .await,
            422
        )
        .await,
        "All memories must have non-empty content"
    );
    let listed = body(send(&app, Method::GET, "/v1/dev/user/memories", &key, None).await).await;
    assert_eq!(listed, json!([]), "nothing of a refused batch is stored");

    let full: Vec<Value> = (0..25)
        .map(|i| json!({"content": format!("fact {i}"), "category": "interesting"}))
        .collect();
    let created = send(
        &app,
        Method::POST,
        path,
        &key,
        Some(json!({"memories": full})),
    )
    .await;
    assert_eq!(created.status(), 200);
    let created = body(created).await;
    assert_eq!(fields(&created), names(&["memories", "created_count"]));
    assert_eq!(created["created_count"], 25);
    assert_eq!(
        fields(&created["memories"][0]),
        names(&MEMORY_CREATE_FIELDS)
    );
    assert_eq!(created["memories"][3]["content"], "fact 3");
}

#[tokio::test]
async fn action_items_follow_omis_contract() {
    let app = spawn_app().await;
    let key = app.user_with_omi_dev_key("dev-actions").await;
    let path = "/v1/dev/user/action-items";

    let created = send(
        &app,
        Method::POST,
        path,
        &key,
        Some(json!({"description": "  Call the dentist ", "due_at": "2026-12-01T09:00:00+00:00"})),
    )
    .await;
    assert_eq!(created.status(), 200);
    let created = body(created).await;
    assert_eq!(fields(&created), names(&ACTION_ITEM_FIELDS));
    assert_eq!(created["description"], "Call the dentist");
    assert_eq!(created["completed"], false);
    assert_eq!(created["completed_at"], Value::Null);
    assert_eq!(created["conversation_id"], Value::Null);
    assert_eq!(created["due_at"], "2026-12-01T09:00:00.000000Z");

    validation(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"description": "d".repeat(501)})),
        )
        .await,
        "description",
    )
    .await;
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                path,
                &key,
                Some(json!({"description": " "}))
            )
            .await,
            422
        )
        .await,
        "description cannot be empty"
    );
    validation(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"description": "x", "due_at": "soon"})),
        )
        .await,
        "due_at",
    )
    .await;

    let batch = format!("{path}/batch");
    let too_many: Vec<Value> = (0..51)
        .map(|i| json!({"description": format!("task {i}")}))
        .collect();
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                &batch,
                &key,
                Some(json!({"action_items": too_many}))
            )
            .await,
            422
        )
        .await,
        "Maximum 50 action items per batch request"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                &batch,
                &key,
                Some(json!({"action_items": [{"description": "ok"}, {"description": "  "}]}))
            )
            .await,
            422
        )
        .await,
        "All action items must have non-empty descriptions"
    );
    let made = body(send(&app, Method::POST, &batch, &key, Some(json!({"action_items": [{"description": "Buy milk", "completed": true}, {"description": "Book flights"}]}))).await).await;
    assert_eq!(fields(&made), names(&["action_items", "created_count"]));
    assert_eq!(made["created_count"], 2);
    assert!(
        made["action_items"][0]["completed_at"].is_string(),
        "completed items carry completed_at"
    );

    let all = body(send(&app, Method::GET, path, &key, None).await).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let open = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?completed=false"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(open.as_array().unwrap().len(), 2);
    let page = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?limit=1&offset=2"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    let future = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?start_date=2100-01-01"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(future, json!([]));
    let none_for_conversation = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?conversation_id=c-1"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(none_for_conversation, json!([]));
    validation(
        send(
            &app,
            Method::GET,
            &format!("{path}?end_date=tomorrow"),
            &key,
            None,
        )
        .await,
        "end_date",
    )
    .await;

    let id = created["id"].as_str().unwrap();
    let one = format!("{path}/{id}");
    assert_eq!(
        detail(
            send(&app, Method::PATCH, &one, &key, Some(json!({}))).await,
            422
        )
        .await,
        "At least one field must be provided"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::PATCH,
                &format!("{path}/missing"),
                &key,
                Some(json!({}))
            )
            .await,
            404
        )
        .await,
        "Action item not found"
    );
    let done = body(
        send(
            &app,
            Method::PATCH,
            &one,
            &key,
            Some(json!({"completed": true})),
        )
        .await,
    )
    .await;
    assert_eq!(fields(&done), names(&ACTION_ITEM_FIELDS));
    assert_eq!(done["completed"], true);
    assert!(done["completed_at"].is_string());
    let reopened = body(
        send(
            &app,
            Method::PATCH,
            &one,
            &key,
            Some(json!({"completed": false, "description": "Call the dentist today"})),
        )
        .await,
    )
    .await;
    assert_eq!(reopened["completed_at"], Value::Null);
    assert_eq!(reopened["description"], "Call the dentist today");

    assert_eq!(
        body(send(&app, Method::DELETE, &one, &key, None).await).await,
        json!({"success": true})
    );
    assert_eq!(
        detail(send(&app, Method::DELETE, &one, &key, None).await, 404).await,
        "Action item not found"
    );
}

#[tokio::test]
async fn conversations_from_text_follow_omis_contract_without_inventing_a_summary() {
    let app = spawn_app().await;
    let key = app.user_with_omi_dev_key("dev-conversations").await;
    let path = "/v1/dev/user/conversations";

    let created = send(
        &app,
        Method::POST,
        path,
        &key,
        Some(json!({
            "text": "Lunch with Priya about the Lisbon trip. She books the flights.",
            "text_source": "message",
            "started_at": "2026-11-20T12:00:00Z",
            "geolocation": {"latitude": 38.72, "longitude": -9.14}
        })),
    )
    .await;
    assert_eq!(created.status(), 200);
    let created = body(created).await;
    assert_eq!(fields(&created), names(&["id", "status", "discarded"]));
    assert_eq!(created["status"], "completed");
    assert_eq!(created["discarded"], false);
    let id = created["id"].as_str().unwrap();

    let got = body(send(&app, Method::GET, &format!("{path}/{id}"), &key, None).await).await;
    assert_eq!(fields(&got), names(&CONVERSATION_FIELDS));
    assert_eq!(
        fields(&got["structured"]),
        names(&[
            "title",
            "overview",
            "emoji",
            "category",
            "action_items",
            "events"
        ])
    );
    assert_eq!(
        got["structured"]["title"],
        "Lunch with Priya about the Lisbon trip."
    );
    assert_eq!(
        got["structured"]["overview"], "",
        "no model writes an overview here"
    );
    assert_eq!(got["structured"]["category"], "other");
    assert_eq!(got["structured"]["action_items"], json!([]));
    assert_eq!(got["source"], "external_integration");
    assert_eq!(got["language"], "en");
    assert_eq!(got["created_at"], "2026-11-20T12:00:00.000000Z");
    assert_eq!(
        got["finished_at"], "2026-11-20T12:05:00.000000Z",
        "Omi's default: five minutes"
    );
    assert_eq!(got["transcript_segments"], Value::Null);
    assert_eq!(got["geolocation"]["latitude"], 38.72);

    // Omi's validation.
    validation(
        send(&app, Method::POST, path, &key, Some(json!({"text": ""}))).await,
        "text",
    )
    .await;
    validation(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"text": "x".repeat(100_001)})),
        )
        .await,
        "text",
    )
    .await;
    assert_eq!(
        detail(
            send(&app, Method::POST, path, &key, Some(json!({"text": "   "}))).await,
            422
        )
        .await,
        "text cannot be empty"
    );
    validation(
        send(
            &app,
            Method::POST,
            path,
            &key,
            Some(json!({"text": "hi", "text_source": "email"})),
        )
        .await,
        "text_source",
    )
    .await;
    assert_eq!(
        detail(send(&app, Method::POST, path, &key, Some(json!({"text": "hi", "started_at": "2026-11-20T12:00:00Z", "finished_at": "2026-11-20T11:00:00Z"}))).await, 422).await,
        "finished_at must be after started_at"
    );

    // Update, list filters, delete.
    assert_eq!(
        detail(
            send(
                &app,
                Method::PATCH,
                &format!("{path}/{id}"),
                &key,
                Some(json!({}))
            )
            .await,
            422
        )
        .await,
        "At least one field (title or discarded) must be provided"
    );
    assert_eq!(
        detail(
            send(
                &app,
                Method::PATCH,
                &format!("{path}/nope"),
                &key,
                Some(json!({}))
            )
            .await,
            404
        )
        .await,
        "Conversation not found"
    );
    validation(
        send(
            &app,
            Method::PATCH,
            &format!("{path}/{id}"),
            &key,
            Some(json!({"title": ""})),
        )
        .await,
        "title",
    )
    .await;
    let renamed = body(
        send(
            &app,
            Method::PATCH,
            &format!("{path}/{id}"),
            &key,
            Some(json!({"title": "Lisbon planning"})),
        )
        .await,
    )
    .await;
    assert_eq!(fields(&renamed), names(&CONVERSATION_FIELDS));
    assert_eq!(renamed["structured"]["title"], "Lisbon planning");

    let listed = body(send(&app, Method::GET, path, &key, None).await).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(fields(&listed[0]), names(&CONVERSATION_FIELDS));
    let other = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?categories=business"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(other, json!([]));
    let bad = detail(
        send(
            &app,
            Method::GET,
            &format!("{path}?categories=gossip"),
            &key,
            None,
        )
        .await,
        400,
    )
    .await;
    assert!(bad.as_str().unwrap().starts_with("Invalid category"));
    let before = body(
        send(
            &app,
            Method::GET,
            &format!("{path}?end_date=2026-11-19"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(before, json!([]));

    let discarded = body(
        send(
            &app,
            Method::PATCH,
            &format!("{path}/{id}"),
            &key,
            Some(json!({"discarded": true})),
        )
        .await,
    )
    .await;
    assert_eq!(discarded["structured"]["title"], "Lisbon planning");
    let listed = body(send(&app, Method::GET, path, &key, None).await).await;
    assert_eq!(listed, json!([]), "discarded conversations are not listed");

    assert_eq!(
        body(send(&app, Method::DELETE, &format!("{path}/{id}"), &key, None).await).await,
        json!({"success": true})
    );
    assert_eq!(
        detail(
            send(&app, Method::GET, &format!("{path}/{id}"), &key, None).await,
            404
        )
        .await,
        "Conversation not found"
    );
    assert_eq!(
        detail(
            send(&app, Method::DELETE, &format!("{path}/{id}"), &key, None).await,
            404
        )
        .await,
        "Conversation not found"
    );
}

#[tokio::test]
async fn conversations_from_segments_are_idempotent_per_client_session() {
    let app = spawn_app().await;
    let key = app.user_with_omi_dev_key("dev-segments").await;
    let path = "/v1/dev/user/conversations/from-segments";
    let request = json!({
        "transcript_segments": [
            {"text": "Did you book the table?", "speaker": "SPEAKER_00", "is_user": true, "start": 0.0, "end": 2.5},
            {"text": "Yes, for eight.", "speaker": "SPEAKER_01", "start": 2.8, "end": 4.0}
        ],
        "source": "phone",
        "started_at": "2026-11-21T19:00:00Z",
        "client_session_id": "call-42"
    });
    let first = body(send(&app, Method::POST, path, &key, Some(request.clone())).await).await;
    assert_eq!(fields(&first), names(&["id", "status", "discarded"]));
    assert_eq!(first["status"], "completed");
    let again = body(send(&app, Method::POST, path, &key, Some(request.clone())).await).await;
    assert_eq!(again["id"], first["id"], "a retry creates nothing new");
    let alias = json!({"transcript_segments": request["transcript_segments"], "client_conversation_id": "call-42"});
    assert_eq!(
        body(send(&app, Method::POST, path, &key, Some(alias)).await).await["id"],
        first["id"]
    );

    let id = first["id"].as_str().unwrap();
    let got = body(
        send(
            &app,
            Method::GET,
            &format!("/v1/dev/user/conversations/{id}?include_transcript=true"),
            &key,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(got["source"], "phone");
    assert_eq!(got["structured"]["title"], "Did you book the table?");
    assert_eq!(
        got["finished_at"], "2026-11-21T19:00:04.000000Z",
        "from the last segment's end"
    );
    let segments = got["transcript_segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert_eq!(
        fields(&segments[0]),
        names(&["id", "text", "speaker_id", "speaker_name", "start", "end"])
    );
    assert_eq!(segments[0]["speaker_name"], "User");
    assert_eq!(segments[1]["speaker_id"], 1);
    assert_eq!(segments[1]["speaker_name"], "Speaker 1");

    send(
        &app,
        Method::DELETE,
        &format!("/v1/dev/user/conversations/{id}"),
        &key,
        None,
    )
    .await;
    let after_delete = body(send(&app, Method::POST, path, &key, Some(request)).await).await;
    assert_eq!(after_delete["id"], first["id"]);
    assert_eq!(after_delete["status"], "deleted");

    // Omi's segment checks.
    let segment = |s: Value| json!({"transcript_segments": [s]});
    for (bad, message) in [
        (
            segment(json!({"text": "a", "start": 2.0, "end": 1.0})),
            "Segment 0: end time must be after start time",
        ),
        (
            segment(json!({"text": "a", "start": -1.0, "end": 1.0})),
            "Segment 0: start time cannot be negative",
        ),
        (
            segment(json!({"text": " ", "start": 0.0, "end": 1.0})),
            "Segment 0: text cannot be empty",
        ),
        (
            json!({"transcript_segments": []}),
            "transcript_segments cannot be empty",
        ),
    ] {
        assert_eq!(
            detail(send(&app, Method::POST, path, &key, Some(bad)).await, 422).await,
            message
        );
    }
    let many: Vec<Value> = (0..501)
        .map(|i| json!({"text": "a", "start": f64::from(i), "end": f64::from(i) + 0.5}))
        .collect();
    assert_eq!(
        detail(
            send(
                &app,
                Method::POST,
                path,
                &key,
                Some(json!({"transcript_segments": many}))
            )
            .await,
            422
        )
        .await,
        "Maximum 500 transcript segments allowed"
    );
    validation(send(&app, Method::POST, path, &key, Some(json!({"transcript_segments": [{"text": "a", "start": 0.0, "end": 1.0}], "source": "telepathy"}))).await, "source").await;
}

#[tokio::test]
async fn the_developer_api_never_reaches_another_users_data() {
    let app = spawn_app().await;
    let alice = app.user_with_omi_dev_key("dev-alice").await;
    let bob = app.user_with_omi_dev_key("dev-bob").await;

    let memory = body(
        send(
            &app,
            Method::POST,
            "/v1/dev/user/memories",
            &alice,
            Some(json!({"content": "Alice's secret"})),
        )
        .await,
    )
    .await;
    let item = body(
        send(
            &app,
            Method::POST,
            "/v1/dev/user/action-items",
            &alice,
            Some(json!({"description": "Alice's errand"})),
        )
        .await,
    )
    .await;
    let conversation = body(
        send(
            &app,
            Method::POST,
            "/v1/dev/user/conversations",
            &alice,
            Some(json!({"text": "Alice's talk."})),
        )
        .await,
    )
    .await;
    let session = json!({"transcript_segments": [{"text": "Alice speaking", "start": 0.0, "end": 1.0}], "client_session_id": "shared-id"});
    let alices_session = body(
        send(
            &app,
            Method::POST,
            "/v1/dev/user/conversations/from-segments",
            &alice,
            Some(session.clone()),
        )
        .await,
    )
    .await;

    for path in [
        "/v1/dev/user/memories",
        "/v1/dev/user/action-items",
        "/v1/dev/user/conversations",
    ] {
        assert_eq!(
            body(send(&app, Method::GET, path, &bob, None).await).await,
            json!([]),
            "{path}"
        );
    }
    let memory_path = format!("/v1/dev/user/memories/{}", memory["id"].as_str().unwrap());
    let item_path = format!("/v1/dev/user/action-items/{}", item["id"].as_str().unwrap());
    let conversation_path = format!(
        "/v1/dev/user/conversations/{}",
        conversation["id"].as_str().unwrap()
    );
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &memory_path,
            &bob,
            Some(json!({"content": "Bob was here"}))
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        send(&app, Method::DELETE, &memory_path, &bob, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &item_path,
            &bob,
            Some(json!({"completed": true}))
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        send(&app, Method::DELETE, &item_path, &bob, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(&app, Method::GET, &conversation_path, &bob, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &conversation_path,
            &bob,
            Some(json!({"title": "Bob's now"}))
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        send(&app, Method::DELETE, &conversation_path, &bob, None)
            .await
            .status(),
        404
    );
    // The same client session id names a different conversation per user.
    let bobs_session = body(
        send(
            &app,
            Method::POST,
            "/v1/dev/user/conversations/from-segments",
            &bob,
            Some(session),
        )
        .await,
    )
    .await;
    assert_ne!(bobs_session["id"], alices_session["id"]);

    // Alice's data is untouched.
    let memories = body(send(&app, Method::GET, "/v1/dev/user/memories", &alice, None).await).await;
    assert_eq!(memories[0]["content"], "Alice's secret");
    let items =
        body(send(&app, Method::GET, "/v1/dev/user/action-items", &alice, None).await).await;
    assert_eq!(items[0]["completed"], false);
    assert_eq!(
        send(&app, Method::GET, &conversation_path, &alice, None)
            .await
            .status(),
        200
    );
}
