//! The Omi client against the fake Omi: error mapping in Omi's order, Retry-After, timeouts, the
//! breaker's transitions, which calls are retried, pagination's end conditions, request ids.

use angel_memory::config::OmiSettings;
use angel_memory::domain::{Uid, Visibility};
use angel_memory::omi::client::types::{
    ConversationTextSource, DevMemoryBatch, NewConversation, NewDevMemory, NewMemories, Text,
};
use angel_memory::omi::client::{OmiClient, OmiError, items};
use angel_memory::resilience::{BreakerSettings, BreakerState, RetrySettings};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::fake_omi::{APP_ID, APP_KEY, DEV_KEY, FakeOmi};

const UID: &str = "omi-user-1";

pub fn settings(fake: &FakeOmi) -> OmiSettings {
    OmiSettings {
        base_url: fake.url(),
        app_id: Some(APP_ID.into()),
        app_key: Some(APP_KEY.to_owned().into()),
        dev_key: Some(DEV_KEY.to_owned().into()),
        request_timeout_seconds: 1,
        create_conversation_timeout_seconds: 5,
        retry: RetrySettings {
            retries: 3,
            base_ms: 10,
            cap_ms: 50,
            max_retry_after_seconds: 5,
        },
        breaker: BreakerSettings {
            consecutive_failures: 3,
            open_seconds: 1,
            ..BreakerSettings::default()
        },
        ..OmiSettings::default()
    }
}

async fn setup() -> (FakeOmi, OmiClient, Uid) {
    let fake = FakeOmi::start().await;
    fake.enable(UID);
    let client = OmiClient::new(&settings(&fake)).unwrap();
    (fake, client, Uid::parse(UID.to_owned()).unwrap())
}

fn memories(contents: &[&str]) -> NewMemories {
    let items = contents
        .iter()
        .map(|c| angel_memory::omi::client::types::ExplicitMemory {
            content: Text::parse("content", c).unwrap(),
            tags: vec!["t".into()],
            source_id: None,
            source_url: None,
            artifact_ref: None,
        })
        .collect();
    NewMemories::explicit(items).unwrap()
}

#[tokio::test]
async fn omi_refusals_map_to_errors_a_caller_can_act_on_in_omis_order() {
    let (fake, client, uid) = setup().await;
    let stranger = Uid::parse("not-enabled".to_owned()).unwrap();
    let error = client.memories(&stranger, 10, 0).await.unwrap_err();
    assert!(
        matches!(&error, OmiError::Forbidden { status: 403, detail } if detail.contains("not enabled")),
        "{error:?}"
    );

    let mut wrong_key = settings(&fake);
    wrong_key.app_key = Some("sk_wrong".to_owned().into());
    let error = OmiClient::new(&wrong_key)
        .unwrap()
        .memories(&uid, 10, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, OmiError::Forbidden { detail, .. } if detail == "Invalid integration API key"),
        "{error:?}"
    );

    // The key is checked before the app: a right key with an unknown app id is "App not found".
    let mut wrong_app = settings(&fake);
    wrong_app.app_id = Some("other-app".into());
    let error = OmiClient::new(&wrong_app)
        .unwrap()
        .memories(&uid, 10, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, OmiError::NotFound { detail } if detail == "App not found"),
        "{error:?}"
    );

    let mut wrong_dev = settings(&fake);
    wrong_dev.dev_key = Some("omi_dev_wrong".to_owned().into());
    let batch = DevMemoryBatch::new("memories", Vec::new()).unwrap();
    assert!(
        OmiClient::new(&wrong_dev)
            .unwrap()
            .dev_create_memories(&batch)
            .await
            .is_ok(),
        "an empty batch needs no call"
    );
    let one = NewDevMemory {
        content: Text::parse("content", "likes tea").unwrap(),
        category: None,
        visibility: Visibility::Private,
        tags: vec![],
    };
    let batch = DevMemoryBatch::new("memories", vec![one.clone()]).unwrap();
    let error = OmiClient::new(&wrong_dev)
        .unwrap()
        .dev_create_memories(&batch)
        .await
        .unwrap_err();
    assert!(matches!(error, OmiError::Unauthorized { .. }), "{error:?}");

    // Limits are refused before any call.
    assert!(DevMemoryBatch::new("memories", vec![one.clone(); 26]).is_err());
    let full = DevMemoryBatch::new("memories", vec![one; 25]).unwrap();
    assert_eq!(
        client
            .dev_create_memories(&full)
            .await
            .unwrap()
            .created_count,
        25
    );
    assert!(Text::<500>::parse("content", &"x".repeat(501)).is_err());
    assert!(matches!(
        client.memories(&uid, 1001, 0).await,
        Err(OmiError::Invalid(_))
    ));

    let mut unconfigured = settings(&fake);
    unconfigured.app_key = None;
    let error = OmiClient::new(&unconfigured)
        .unwrap()
        .memories(&uid, 10, 0)
        .await
        .unwrap_err();
    assert!(matches!(error, OmiError::NotConfigured("omi.app_key")));
}

#[tokio::test]
async fn a_rate_limited_read_waits_for_retry_after_then_succeeds() {
    let (fake, client, uid) = setup().await;
    fake.state.rate_limited.store(2, Ordering::SeqCst);
    fake.state.retry_after_seconds.store(1, Ordering::SeqCst);
    let started = Instant::now();
    client.memories(&uid, 10, 0).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(fake.calls(), 3);
    assert!(
        waited >= Duration::from_secs(2),
        "honoured Retry-After twice: {waited:?}"
    );
    assert_eq!(
        client.breaker_snapshot().state,
        BreakerState::Closed,
        "429 is not an outage"
    );

    // Longer than a caller may wait in-call: handed back at once, with the wait.
    fake.state.rate_limited.store(1, Ordering::SeqCst);
    fake.state.retry_after_seconds.store(120, Ordering::SeqCst);
    let error = client.memories(&uid, 10, 0).await.unwrap_err();
    assert!(
        matches!(error, OmiError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(120)),
        "{error:?}"
    );
    assert_eq!(fake.calls(), 4);
}

#[tokio::test]
async fn slow_answers_time_out_except_where_omi_is_slow_by_design() {
    let (fake, client, uid) = setup().await;
    fake.state.delay_ms.store(1_500, Ordering::SeqCst);
    let error = client
        .without_retries()
        .memories(&uid, 10, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(error, OmiError::Timeout(d) if d == Duration::from_secs(1)),
        "{error:?}"
    );
    // Create-conversation waits for Omi's LLM: its own, longer limit.
    let text = Text::parse("text", "We agreed to meet on Friday.").unwrap();
    client
        .create_conversation(
            &uid,
            &NewConversation::new(text, ConversationTextSource::OtherText),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_breaker_opens_on_an_outage_refuses_without_calling_and_closes_after_a_probe() {
    let (fake, client, uid) = setup().await;
    let client = client.without_retries();
    fake.state.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let error = client.memories(&uid, 10, 0).await.unwrap_err();
        assert!(
            matches!(error, OmiError::Server { status: 503, .. }),
            "{error:?}"
        );
    }
    assert_eq!(client.breaker_snapshot().state, BreakerState::Open);
    let error = client.memories(&uid, 10, 0).await.unwrap_err();
    assert!(matches!(error, OmiError::CircuitOpen { .. }), "{error:?}");
    assert_eq!(fake.calls(), 3, "an open breaker makes no call");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let error = client.memories(&uid, 10, 0).await.unwrap_err();
    assert!(
        matches!(error, OmiError::Server { .. }),
        "the probe reaches Omi: {error:?}"
    );
    assert_eq!(
        client.breaker_snapshot().state,
        BreakerState::Open,
        "a failed probe opens it again"
    );

    fake.state.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.memories(&uid, 10, 0).await.unwrap();
    let snapshot = client.breaker_snapshot();
    assert_eq!(snapshot.state, BreakerState::Closed);
    assert_eq!(snapshot.opened, 2);
    assert_eq!(fake.calls(), 5);
}

#[tokio::test]
async fn only_calls_omi_deduplicates_are_retried() {
    let (fake, _, uid) = setup().await;
    fake.state.down.store(true, Ordering::SeqCst);
    let mut settings = settings(&fake);
    settings.breaker.consecutive_failures = 100;
    let client = OmiClient::new(&settings).unwrap();

    client
        .create_memories(&uid, &memories(&["likes tea"]))
        .await
        .unwrap_err();
    assert_eq!(
        fake.calls(),
        4,
        "explicit memories are keyed by content: retried"
    );
    let text = Text::parse("text", "a conversation").unwrap();
    client
        .create_conversation(
            &uid,
            &NewConversation::new(text, ConversationTextSource::OtherText),
        )
        .await
        .unwrap_err();
    assert_eq!(fake.calls(), 5, "a new conversation each time: not retried");
    client.notify(&uid, "hello").await.unwrap_err();
    assert_eq!(
        fake.calls(),
        6,
        "a notification could arrive twice: not retried"
    );
}

#[tokio::test]
async fn writes_reach_omi_with_the_causing_request_id_and_repeat_without_duplicates() {
    let (fake, client, uid) = setup().await;
    let client = client.for_request("req-abc-123");
    client
        .create_memories(&uid, &memories(&["likes tea", "lives in Turin"]))
        .await
        .unwrap();
    client
        .create_memories(&uid, &memories(&["likes tea"]))
        .await
        .unwrap();
    assert_eq!(
        fake.stored_memories(UID),
        2,
        "the same content is the same Omi memory"
    );
    client
        .notify(&uid, "Remembered: likes tea & more")
        .await
        .unwrap();
    let notifications = fake.state.notifications.lock().unwrap().clone();
    assert_eq!(
        notifications,
        vec![(UID.to_owned(), "Remembered: likes tea & more".to_owned())]
    );
    let ids = fake.state.request_ids.lock().unwrap().clone();
    assert!(
        ids.len() == 3 && ids.iter().all(|id| id == "req-abc-123"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn pagination_ends_at_the_end_detects_an_ignored_offset_and_yields_errors() {
    let (fake, client, uid) = setup().await;
    let contents: Vec<String> = (0..250).map(|i| format!("fact number {i}")).collect();
    fake.add_memories(
        UID,
        &contents.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let page = |client: &OmiClient, uid: &Uid| {
        let (client, uid) = (client.clone(), uid.clone());
        items(0, 100, move |offset, limit| {
            let (client, uid) = (client.clone(), uid.clone());
            async move { client.memories(&uid, limit, offset).await }
        })
    };
    let all: Vec<_> = page(&client, &uid).collect().await;
    assert_eq!(all.len(), 250);
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(fake.calls(), 3, "the short third page ends it");

    fake.state.ignore_offset.store(true, Ordering::SeqCst);
    let all: Vec<_> = page(&client, &uid).collect().await;
    assert_eq!(all.len(), 101, "one page, then the error");
    assert!(matches!(
        all.last(),
        Some(Err(OmiError::PageRepeated { offset: 100 }))
    ));
    fake.state.ignore_offset.store(false, Ordering::SeqCst);

    fake.state.fail_from_offset.store(200, Ordering::SeqCst);
    let all: Vec<_> = page(&client.without_retries(), &uid).collect().await;
    assert_eq!(all.iter().filter(|r| r.is_ok()).count(), 200);
    assert!(
        matches!(all.last(), Some(Err(OmiError::Server { status: 500, .. }))),
        "not a silent end"
    );

    // The page stream of the client itself, with where to resume.
    fake.state.fail_from_offset.store(0, Ordering::SeqCst);
    let pages: Vec<_> = client.memory_pages(&uid, 200, 100).collect().await;
    assert_eq!(pages.len(), 1);
    let page = pages.into_iter().next().unwrap().unwrap();
    assert_eq!(
        (page.offset, page.items.len(), page.next_offset),
        (200, 50, 250)
    );
}

#[tokio::test]
async fn every_developer_api_call_uses_the_contracts_path_and_body() {
    use angel_memory::domain::Timestamp;
    use angel_memory::omi::client::types::*;
    let (fake, client, uid) = setup().await;
    let memory = NewDevMemory {
        content: Text::parse("content", "  likes tea ").unwrap(),
        category: Some(DevCategory::Interesting),
        visibility: Visibility::Private,
        tags: vec!["t".into()],
    };
    client
        .dev_memories(25, 50, &["interesting".into(), "system".into()])
        .await
        .unwrap();
    client.dev_create_memory(&memory).await.unwrap();
    let patch = DevMemoryPatch {
        tags: Some(vec!["a".into()]),
        ..DevMemoryPatch::default()
    };
    client.dev_update_memory("m/1", &patch).await.unwrap();
    assert!(matches!(
        client
            .dev_update_memory("m1", &DevMemoryPatch::default())
            .await,
        Err(OmiError::Invalid(_))
    ));
    assert!(client.dev_delete_memory("m1").await.unwrap().success);
    let due = Timestamp::parse("due_at", "2026-12-01T09:00:00Z").unwrap();
    let item = NewActionItem {
        description: Text::parse("description", "Book the train").unwrap(),
        completed: false,
        due_at: Some(due),
    };
    client
        .dev_action_items(
            &ActionItemFilter {
                completed: Some(false),
                ..ActionItemFilter::default()
            },
            100,
            0,
        )
        .await
        .unwrap();
    client.dev_create_action_item(&item).await.unwrap();
    assert!(ActionItemBatch::new("action_items", vec![item.clone(); 51]).is_err());
    let created = client
        .dev_create_action_items(&ActionItemBatch::new("action_items", vec![item; 2]).unwrap())
        .await
        .unwrap();
    assert_eq!(created.created_count, Some(1));
    client
        .dev_update_action_item(
            "a1",
            &ActionItemPatch {
                completed: Some(true),
                ..ActionItemPatch::default()
            },
        )
        .await
        .unwrap();
    client.dev_delete_action_item("a1").await.unwrap();
    client
        .dev_conversations(
            &DevConversationFilter {
                include_transcript: true,
                ..DevConversationFilter::default()
            },
            25,
            0,
        )
        .await
        .unwrap();
    client.dev_conversation("c1", false).await.unwrap();
    let start = Timestamp::parse("started_at", "2026-11-24T10:00:00Z").unwrap();
    assert!(
        NewDevConversation::new(Text::parse("text", "hello").unwrap())
            .between(start, Some(Timestamp::from_micros(0)))
            .is_err()
    );
    let conversation = NewDevConversation::new(Text::parse("text", "hello").unwrap())
        .between(start, None)
        .unwrap();
    assert_eq!(
        client
            .dev_create_conversation(&conversation)
            .await
            .unwrap()
            .id,
        "c1"
    );
    let segments = SegmentBatch::new(
        "transcript_segments",
        vec![NewSegment::new("hi", 0.0, 1.5, true).unwrap()],
    )
    .unwrap();
    assert!(NewSegment::new("hi", 2.0, 1.0, true).is_err());
    let from_segments = NewConversationFromSegments {
        transcript_segments: segments,
        source: None,
        started_at: None,
        finished_at: None,
        language: "en".into(),
        geolocation: None,
        client_session_id: Some("s-1".into()),
    };
    client
        .dev_create_conversation_from_segments(&from_segments)
        .await
        .unwrap();
    client
        .dev_update_conversation(
            "c1",
            &DevConversationPatch {
                discarded: Some(true),
                ..DevConversationPatch::default()
            },
        )
        .await
        .unwrap();
    client.dev_delete_conversation("c1").await.unwrap();
    // Integration reads with their filters.
    let filter = ConversationFilter {
        statuses: vec!["completed".into(), "failed".into()],
        start_date: Some("2026-11-01".into()),
        max_transcript_segments: Some(-1),
        ..ConversationFilter::default()
    };
    client.conversations(&uid, &filter, 10, 20).await.unwrap();
    client
        .tasks(
            &uid,
            &TaskFilter {
                completed: Some(true),
                due_end_date: Some("2026-12-31".into()),
                ..TaskFilter::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    client
        .search_conversations(
            &uid,
            &ConversationSearch::new("train", 1, 10).unwrap(),
            Some(5),
        )
        .await
        .unwrap();
    assert!(ConversationSearch::new("train", 1, 251).is_err());

    let recorded = fake.state.recorded.lock().unwrap().clone();
    let expected = [
        "GET /v1/dev/user/memories?limit=25&offset=50&categories=interesting%2Csystem",
        r#"POST /v1/dev/user/memories {"content":"likes tea","category":"interesting","visibility":"private","tags":["t"]}"#,
        r#"PATCH /v1/dev/user/memories/m%2F1 {"tags":["a"]}"#,
        "DELETE /v1/dev/user/memories/m1",
        "GET /v1/dev/user/action-items?limit=100&offset=0&completed=false",
        r#"POST /v1/dev/user/action-items {"description":"Book the train","completed":false,"due_at":"2026-12-01T09:00:00.000000Z"}"#,
        r#"POST /v1/dev/user/action-items/batch {"action_items":[{"description":"Book the train","completed":false,"due_at":"2026-12-01T09:00:00.000000Z"},{"description":"Book the train","completed":false,"due_at":"2026-12-01T09:00:00.000000Z"}]}"#,
        r#"PATCH /v1/dev/user/action-items/a1 {"completed":true}"#,
        "DELETE /v1/dev/user/action-items/a1",
        "GET /v1/dev/user/conversations?limit=25&offset=0&include_transcript=true",
        "GET /v1/dev/user/conversations/c1?include_transcript=false",
        r#"POST /v1/dev/user/conversations {"text":"hello","text_source":"other_text","started_at":"2026-11-24T10:00:00.000000Z","language":"en"}"#,
        r#"POST /v1/dev/user/conversations/from-segments {"transcript_segments":[{"text":"hi","speaker":"SPEAKER_00","is_user":true,"start":0.0,"end":1.5}],"language":"en","client_session_id":"s-1"}"#,
        r#"PATCH /v1/dev/user/conversations/c1 {"discarded":true}"#,
        "DELETE /v1/dev/user/conversations/c1",
        r#"POST /v2/integrations/angel-test-app/search/conversations?uid=omi-user-1&max_transcript_segments=5 {"query":"train","page":1,"per_page":10,"include_discarded":true}"#,
    ];
    assert_eq!(recorded, expected);
    // The two Integration reads have their own fake routes; their URLs carry the filters.
    assert_eq!(fake.calls() as usize, expected.len() + 2);
}
