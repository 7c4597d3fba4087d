//! The store's contract, written against `&dyn Store` so every backend runs the same checks.
//! A backend joins by adding one `conformance!` line at the bottom; its opener returns `None` when the
//! backend cannot run here (it then says why), and its tests pass as skipped.

use angel_memory::domain::{Category, Content, KeyName, MemoryId, Tags, Timestamp, Uid};
use angel_memory::http::new_key;
use angel_memory::store::*;
use std::sync::Arc;

fn uid(raw: &str) -> Uid {
    Uid::parse(raw).unwrap()
}

fn new(content: &str) -> NewMemory {
    NewMemory::new(
        Content::parse(content).unwrap(),
        angel_memory::domain::Source::Api,
    )
}

fn tagged(content: &str, tags: &[&str]) -> NewMemory {
    NewMemory {
        tags: Tags::parse(tags).unwrap(),
        ..new(content)
    }
}

fn ctx() -> Context {
    Context::new(Actor::System, Some("test-request".into()))
}

fn content_patch(text: &str) -> MemoryPatch {
    MemoryPatch {
        content: Some(Content::parse(text).unwrap()),
        ..MemoryPatch::default()
    }
}

async fn user(store: &dyn Store, raw: &str) -> Uid {
    let uid = uid(raw);
    store.create_user(&uid).await.unwrap();
    uid
}

async fn all_audit(store: &dyn Store, uid: &Uid) -> Vec<AuditEvent> {
    store
        .audit_events(uid, PageRequest::first(200))
        .await
        .unwrap()
        .items
}

pub async fn creates_reads_and_refuses_duplicates(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let created = store
        .create_memory(&alice, tagged("Sam drives a red Volvo", &["cars"]), &ctx())
        .await
        .unwrap();
    let Created::New(memory) = created else {
        panic!("expected a new memory")
    };
    assert_eq!(memory.version, 1);
    assert_eq!(memory.uid, alice);
    assert_eq!(store.get_memory(&alice, memory.id).await.unwrap(), memory);

    // Same content (after trimming) returns the existing memory, never a copy.
    let again = store
        .create_memory(&alice, new("  Sam drives a red Volvo "), &ctx())
        .await
        .unwrap();
    assert!(matches!(&again, Created::Duplicate(m) if m.id == memory.id));
    assert_eq!(store.stats(&alice).await.unwrap().active, 1);

    // Once deleted, the same content may be remembered again as a new memory.
    store
        .delete_memory(&alice, memory.id, None, &ctx())
        .await
        .unwrap();
    let fresh = store
        .create_memory(&alice, new("Sam drives a red Volvo"), &ctx())
        .await
        .unwrap();
    assert!(matches!(&fresh, Created::New(m) if m.id != memory.id));
}

pub async fn unknown_users_and_ids(store: &dyn Store) {
    let ghost = uid("ghost");
    assert!(matches!(
        store.create_memory(&ghost, new("x"), &ctx()).await,
        Err(StoreError::UnknownUser)
    ));
    let alice = user(store, "alice").await;
    assert!(matches!(
        store.get_memory(&alice, MemoryId::new()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.create_user(&alice).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn users_never_reach_each_other(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let memory = store
        .create_memory(&alice, tagged("alice's secret", &["private"]), &ctx())
        .await
        .unwrap()
        .into_memory();
    let id = memory.id;
    assert!(matches!(
        store.get_memory(&bob, id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_memory(&bob, id, 1, content_patch("mine now"), &ctx())
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_memory(&bob, id, None, &ctx()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.restore_memory(&bob, id, &ctx()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.memory_versions(&bob, id).await,
        Err(StoreError::NotFound)
    ));
    let batch = store.delete_memories(&bob, vec![id], &ctx()).await.unwrap();
    assert!(matches!(batch[0], Err(StoreError::NotFound)));
    let mut query = ListQuery::new(PageRequest::first(200));
    query.state = StateFilter::All;
    assert!(
        store
            .list_memories(&bob, &query)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(store.stats(&bob).await.unwrap().active, 0);
    assert!(
        store
            .export_memories(&bob, PageRequest::first(200))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // The same content is a separate memory for another user, not a duplicate.
    assert!(matches!(
        store
            .create_memory(&bob, new("alice's secret"), &ctx())
            .await
            .unwrap(),
        Created::New(_)
    ));
    // Alice's memory is untouched by all of the above.
    assert_eq!(store.get_memory(&alice, id).await.unwrap(), memory);
}

pub async fn updates_keep_every_version(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let m = store
        .create_memory(&alice, new("v1 text"), &ctx())
        .await
        .unwrap()
        .into_memory();
    let m2 = store
        .update_memory(&alice, m.id, 1, content_patch("v2 text"), &ctx())
        .await
        .unwrap();
    assert_eq!(m2.version, 2);
    let tags = MemoryPatch {
        tags: Some(Tags::parse(&["x"]).unwrap()),
        category: Some(Category::System),
        ..Default::default()
    };
    let m3 = store
        .update_memory(&alice, m.id, 2, tags, &ctx())
        .await
        .unwrap();
    assert_eq!(
        (m3.version, m3.content.as_str(), m3.category),
        (3, "v2 text", Category::System)
    );
    assert_eq!(
        m3.metadata, m.metadata,
        "a partial update keeps the other fields"
    );

    // A stale version is refused, never silently applied.
    let stale = store
        .update_memory(&alice, m.id, 2, content_patch("lost update"), &ctx())
        .await;
    assert!(matches!(
        stale,
        Err(StoreError::VersionConflict { current: 3 })
    ));
    // An update that changes nothing writes no version.
    assert_eq!(
        store
            .update_memory(&alice, m.id, 3, content_patch("v2 text"), &ctx())
            .await
            .unwrap()
            .version,
        3
    );

    let versions = store.memory_versions(&alice, m.id).await.unwrap();
    let texts: Vec<_> = versions
        .iter()
        .map(|v| (v.version, v.content.as_str().to_owned()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (1, "v1 text".into()),
            (2, "v2 text".into()),
            (3, "v2 text".into())
        ]
    );

    // Content that another active memory already has is a conflict.
    store
        .create_memory(&alice, new("taken"), &ctx())
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_memory(&alice, m.id, 3, content_patch("taken"), &ctx())
            .await,
        Err(StoreError::Conflict(_))
    ));
    // A deleted memory must be restored before it can change.
    store
        .delete_memory(&alice, m.id, None, &ctx())
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_memory(&alice, m.id, 3, content_patch("v4"), &ctx())
            .await,
        Err(StoreError::Deleted)
    ));
}

pub async fn delete_is_idempotent_and_restorable(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let m = store
        .create_memory(&alice, new("to delete"), &ctx())
        .await
        .unwrap()
        .into_memory();
    let first = store
        .delete_memory(&alice, m.id, None, &ctx())
        .await
        .unwrap();
    assert!(matches!(first, Deleted::Now(_)));
    let second = store
        .delete_memory(&alice, m.id, None, &ctx())
        .await
        .unwrap();
    assert!(matches!(second, Deleted::Already(_)));
    assert_eq!(
        first.memory().deleted_at,
        second.memory().deleted_at,
        "a second delete keeps deleted_at"
    );
    let deletes = all_audit(store, &alice)
        .await
        .iter()
        .filter(|e| e.action == "memory.delete")
        .count();
    assert_eq!(deletes, 1, "a second delete records nothing");
    assert!(matches!(
        store.delete_memory(&alice, m.id, Some(7), &ctx()).await,
        Err(StoreError::VersionConflict { .. })
    ));

    let restored = store.restore_memory(&alice, m.id, &ctx()).await.unwrap();
    assert_eq!(restored.deleted_at, None);
    assert_eq!(restored.version, 1);

    // Restoring next to an active duplicate would break "one active memory per content".
    store
        .delete_memory(&alice, m.id, None, &ctx())
        .await
        .unwrap();
    store
        .create_memory(&alice, new("to delete"), &ctx())
        .await
        .unwrap();
    assert!(matches!(
        store.restore_memory(&alice, m.id, &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
}

pub async fn purge_removes_content_and_keeps_the_audit_record(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let old = store
        .create_memory(&alice, tagged("purge me: secret words", &["t"]), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .update_memory(
            &alice,
            old.id,
            1,
            content_patch("purge me: more secret words"),
            &ctx(),
        )
        .await
        .unwrap();
    let kept = store
        .create_memory(&alice, new("keep me"), &ctx())
        .await
        .unwrap()
        .into_memory();
    let bobs = store
        .create_memory(&bob, new("bob deleted this"), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .delete_memory(&bob, bobs.id, None, &ctx())
        .await
        .unwrap();
    store
        .delete_memory(&alice, old.id, None, &ctx())
        .await
        .unwrap();

    // A cutoff before the deletion purges nothing.
    let report = store
        .purge_deleted(None, Timestamp::from_micros(0), &ctx())
        .await
        .unwrap();
    assert_eq!(report.purged, 0);
    // Only alice's deleted memory goes; her active one stays.
    let future = Timestamp::from_micros(Timestamp::now().as_micros() + 1_000_000);
    let report = store
        .purge_deleted(Some(&alice), future, &ctx())
        .await
        .unwrap();
    assert_eq!(report.purged, 1);
    assert!(matches!(
        store.get_memory(&alice, old.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.memory_versions(&alice, old.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_memory(&alice, kept.id).await.is_ok());
    let stats = store.stats(&alice).await.unwrap();
    assert_eq!((stats.active, stats.deleted, stats.versions), (1, 0, 1));
    assert!(!stats.by_tag.contains_key("t"));
    assert!(
        store.get_memory(&bob, bobs.id).await.is_ok(),
        "purging one user leaves the others alone"
    );

    let audit = all_audit(store, &alice).await;
    let purge = audit
        .iter()
        .find(|e| e.action == "memory.purge")
        .expect("purge is audited");
    assert_eq!(purge.memory_id, Some(old.id));
    let trail = serde_json::to_string(&audit).unwrap();
    assert!(
        !trail.contains("secret words"),
        "the audit trail never holds content"
    );
}

pub async fn lists_filter_and_paginate_stably(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let tags: &[&str] = match i % 3 {
            0 => &["even", "red"],
            1 => &["odd"],
            _ => &["red"],
        };
        ids.push(
            store
                .create_memory(&alice, tagged(&format!("memory {i}"), tags), &ctx())
                .await
                .unwrap()
                .into_memory()
                .id,
        );
    }
    // Walk the pages while new memories arrive: nothing repeats, nothing of the original set is skipped.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10);
    loop {
        let result = store
            .list_memories(&alice, &ListQuery::new(page.clone()))
            .await
            .unwrap();
        seen.extend(result.items.iter().map(|m| m.id));
        store
            .create_memory(
                &alice,
                new(&format!("arrived during paging {}", seen.len())),
                &ctx(),
            )
            .await
            .unwrap();
        match result.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no memory appears twice");
    assert!(
        ids.iter().all(|id| seen.contains(id)),
        "every memory that existed is listed"
    );

    let mut q = ListQuery::new(PageRequest::first(200));
    q.tags = Tags::parse(&["red", "even"])
        .unwrap()
        .iter()
        .cloned()
        .collect();
    q.tag_match = TagMatch::All;
    assert_eq!(
        store.list_memories(&alice, &q).await.unwrap().items.len(),
        9
    );
    q.tag_match = TagMatch::Any;
    assert_eq!(
        store.list_memories(&alice, &q).await.unwrap().items.len(),
        17
    );

    store
        .delete_memory(&alice, ids[0], None, &ctx())
        .await
        .unwrap();
    let mut q = ListQuery::new(PageRequest::first(200));
    q.state = StateFilter::Deleted;
    assert_eq!(
        store
            .list_memories(&alice, &q)
            .await
            .unwrap()
            .items
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![ids[0]]
    );
    q.state = StateFilter::Active;
    q.order = SortOrder::Asc;
    let asc = store.list_memories(&alice, &q).await.unwrap().items;
    assert_eq!(asc[0].id, ids[1], "oldest first");
    let mut q = ListQuery::new(PageRequest::first(200));
    q.category = Some(Category::System);
    assert!(
        store
            .list_memories(&alice, &q)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    q.category = None;
    q.created = TimeRange {
        from: Some(Timestamp::now()),
        to: None,
    };
    assert!(
        store
            .list_memories(&alice, &q)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn every_change_is_audited(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let m = store
        .create_memory(&alice, new("audited"), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .update_memory(&alice, m.id, 1, content_patch("audited twice"), &ctx())
        .await
        .unwrap();
    store
        .delete_memory(&alice, m.id, None, &ctx())
        .await
        .unwrap();
    store.restore_memory(&alice, m.id, &ctx()).await.unwrap();
    let (_, key) = new_key(KeyName::parse("k").unwrap());
    let key_id = key.id;
    store.create_key(&alice, key, &ctx()).await.unwrap();
    store.revoke_key(&alice, key_id, &ctx()).await.unwrap();
    let actions: Vec<_> = all_audit(store, &alice)
        .await
        .into_iter()
        .rev()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "memory.create",
            "memory.update",
            "memory.delete",
            "memory.restore",
            "key.create",
            "key.revoke"
        ]
    );
    let newest = &all_audit(store, &alice).await[0];
    assert_eq!(newest.request_id.as_deref(), Some("test-request"));
    assert_eq!(newest.actor, "system");
}

pub async fn batches_report_each_item(store: &dyn Store) {
    let alice = user(store, "alice").await;
    store
        .create_memory(&alice, new("already here"), &ctx())
        .await
        .unwrap();
    let results = store
        .create_memories(
            &alice,
            vec![new("one"), new("already here"), new("two"), new("one")],
            &ctx(),
        )
        .await
        .unwrap();
    let kinds: Vec<_> = results
        .iter()
        .map(|r| matches!(r, Ok(Created::New(_))))
        .collect();
    assert_eq!(kinds, [true, false, true, false]);
    let ids: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().memory().id)
        .collect();
    assert_eq!(
        ids[0], ids[3],
        "a duplicate within the batch returns the first"
    );
    let deleted = store
        .delete_memories(&alice, vec![ids[0], ids[0], MemoryId::new()], &ctx())
        .await
        .unwrap();
    assert!(matches!(deleted[0], Ok(Deleted::Now(_))));
    assert!(matches!(deleted[1], Ok(Deleted::Already(_))));
    assert!(matches!(deleted[2], Err(StoreError::NotFound)));
}

pub async fn idempotency_keys_are_per_user(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let (old, expired) = (Timestamp::from_micros(0), Timestamp::from_micros(0));
    assert_eq!(
        store
            .idempotency_begin(&alice, "k", "fp1", old, expired)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        store
            .idempotency_begin(&alice, "k", "fp1", old, expired)
            .await
            .unwrap(),
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        store
            .idempotency_begin(&alice, "k", "fp2", old, expired)
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    );
    assert_eq!(
        store
            .idempotency_begin(&bob, "k", "fp2", old, expired)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    let response = StoredResponse {
        status: 201,
        content_type: Some("application/json".into()),
        location: None,
        body: b"{}".to_vec(),
    };
    store
        .idempotency_complete(&alice, "k", response.clone())
        .await
        .unwrap();
    assert_eq!(
        store
            .idempotency_begin(&alice, "k", "fp1", old, expired)
            .await
            .unwrap(),
        IdempotencyBegin::Replay(response)
    );
    // An abandoned claim frees the key; an expired record is replaced.
    store.idempotency_abandon(&bob, "k").await.unwrap();
    assert_eq!(
        store
            .idempotency_begin(&bob, "k", "fp3", old, expired)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    let future = Timestamp::from_micros(Timestamp::now().as_micros() + 1_000_000);
    assert_eq!(
        store
            .idempotency_begin(&alice, "k", "fp9", old, future)
            .await
            .unwrap(),
        IdempotencyBegin::Started
    );
    assert!(store.idempotency_purge(future).await.unwrap() >= 2);
}

pub async fn export_and_import_round_trip(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    for i in 0..7 {
        let m = store
            .create_memory(&alice, tagged(&format!("fact {i}"), &["x"]), &ctx())
            .await
            .unwrap()
            .into_memory();
        if i % 2 == 0 {
            store
                .update_memory(
                    &alice,
                    m.id,
                    1,
                    content_patch(&format!("fact {i}, corrected")),
                    &ctx(),
                )
                .await
                .unwrap();
        }
        if i == 3 {
            store
                .delete_memory(&alice, m.id, None, &ctx())
                .await
                .unwrap();
        }
    }
    let mut exported = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let result = store.export_memories(&alice, page.clone()).await.unwrap();
        exported.extend(result.items);
        match result.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    assert_eq!(exported.len(), 7);
    let report = store
        .import_memories(&bob, exported.clone(), &ctx())
        .await
        .unwrap();
    assert_eq!(
        (report.imported, report.unchanged, report.skipped.len()),
        (7, 0, 0)
    );
    let reimported = store
        .export_memories(&bob, PageRequest::first(200))
        .await
        .unwrap()
        .items;
    let strip = |records: Vec<ExportedMemory>| {
        records
            .into_iter()
            .map(|mut r| {
                r.memory.uid = uid("x");
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(reimported),
        strip(exported.clone()),
        "the round trip loses nothing"
    );
    // Importing the same file again changes nothing.
    let again = store.import_memories(&bob, exported, &ctx()).await.unwrap();
    assert_eq!((again.imported, again.unchanged), (0, 7));
}

pub async fn keys_authenticate_until_revoked(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let (secret, key) = new_key(KeyName::parse("laptop").unwrap());
    let key_id = key.id;
    let info = store.create_key(&alice, key, &ctx()).await.unwrap();
    assert_eq!(info.prefix, secret.visible_prefix());
    let principal = store
        .authenticate(&secret.hash())
        .await
        .unwrap()
        .expect("key works");
    assert_eq!(
        principal,
        Principal {
            uid: alice.clone(),
            key_id
        }
    );
    store
        .touch_key(&alice, key_id, Timestamp::now())
        .await
        .unwrap();
    assert!(
        store.list_keys(&alice).await.unwrap()[0]
            .last_used_at
            .is_some()
    );
    let revoked = store.revoke_key(&alice, key_id, &ctx()).await.unwrap();
    let again = store.revoke_key(&alice, key_id, &ctx()).await.unwrap();
    assert_eq!(
        revoked.revoked_at, again.revoked_at,
        "revoking twice keeps the first time"
    );
    assert!(store.authenticate(&secret.hash()).await.unwrap().is_none());
    assert!(
        !serde_json::to_string(&store.list_keys(&alice).await.unwrap())
            .unwrap()
            .contains(secret.expose())
    );
}

pub async fn deleting_a_user_erases_everything(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    store
        .create_memory(&alice, new("gone soon"), &ctx())
        .await
        .unwrap();
    let bobs = store
        .create_memory(&bob, new("bob stays"), &ctx())
        .await
        .unwrap()
        .into_memory();
    let (secret, key) = new_key(KeyName::parse("k").unwrap());
    store.create_key(&alice, key, &ctx()).await.unwrap();
    let event = |key: &str| NewInboxEvent {
        kind: EventKind::DaySummary,
        dedupe_key: Some(key.to_owned()),
        body: b"{}".to_vec(),
    };
    store
        .ingest(&alice, false, event("before"), None, &ctx())
        .await
        .unwrap();
    store.delete_user(&alice).await.unwrap();
    assert!(matches!(
        store.get_user(&alice).await,
        Err(StoreError::NotFound)
    ));
    // Her events are gone, and a webhook no longer finds her.
    let pending = store
        .inbox(InboxState::Pending, PageRequest::first(50))
        .await
        .unwrap();
    assert!(pending.items.iter().all(|e| e.uid != alice));
    assert_eq!(
        store
            .ingest(&alice, false, event("after"), None, &ctx())
            .await
            .unwrap(),
        Ingested::UnknownUser
    );
    assert!(store.authenticate(&secret.hash()).await.unwrap().is_none());
    assert!(all_audit(store, &alice).await.is_empty());
    assert_eq!(store.stats(&alice).await.unwrap().active, 0);
    assert!(store.get_memory(&bob, bobs.id).await.is_ok());
    assert!(matches!(
        store.delete_user(&alice).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn stats_count_what_is_there(store: &dyn Store) {
    let alice = user(store, "alice").await;
    store
        .create_memory(&alice, tagged("héllo", &["a", "b"]), &ctx())
        .await
        .unwrap();
    let system = NewMemory {
        category: Category::System,
        ..tagged("world", &["a"])
    };
    store.create_memory(&alice, system, &ctx()).await.unwrap();
    let gone = store
        .create_memory(&alice, new("deleted one"), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .delete_memory(&alice, gone.id, None, &ctx())
        .await
        .unwrap();
    let stats = store.stats(&alice).await.unwrap();
    assert_eq!((stats.active, stats.deleted, stats.versions), (2, 1, 3));
    assert_eq!(stats.bytes, "héllo".len() as u64 + 5);
    assert_eq!(stats.by_tag.get("a"), Some(&2));
    assert_eq!(stats.by_category.get("system"), Some(&1));
    assert_eq!(stats.by_source.get("api"), Some(&2));
    assert!(stats.oldest <= stats.newest);
}

/// Many concurrent writes through the one interface: each lands exactly once.
pub async fn concurrent_writes_all_land(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (store, alice) = (Arc::clone(&store), alice.clone());
            tokio::spawn(async move {
                store
                    .create_memory(&alice, new(&format!("parallel {}", i % 100)), &ctx())
                    .await
            })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        if matches!(task.await.unwrap().unwrap(), Created::New(_)) {
            fresh += 1;
        }
    }
    assert_eq!(
        fresh, 100,
        "each distinct content is created once, however the writes interleave"
    );
    assert_eq!(store.stats(&alice).await.unwrap().active, 100);
}

/// The Omi outbox: filled by the store itself per the user's sync settings (with the causing request
/// id), settled by the worker, listed and retried by operators, erased with the user.
pub async fn omi_outbox_follows_sync_settings(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    assert_eq!(
        store.omi_sync_settings(&alice).await.unwrap(),
        SyncSettings::default()
    );
    store
        .create_memory(&alice, new("before any settings"), &ctx())
        .await
        .unwrap();
    let far = Timestamp::from_micros(i64::MAX);
    assert!(store.due_outbox(far, 100).await.unwrap().is_empty());

    let settings = SyncSettings {
        push_memories: true,
        tags: vec![angel_memory::domain::Tag::parse("omi").unwrap()],
        notify: vec![NotifyEvent::MemoryCreated],
        ..SyncSettings::default()
    };
    let saved = store
        .set_omi_sync_settings(&alice, settings.clone())
        .await
        .unwrap();
    assert_eq!(
        (
            saved.push_memories,
            saved.tags.clone(),
            saved.notify.clone()
        ),
        (true, settings.tags, settings.notify)
    );
    store
        .create_memory(&alice, tagged("for Omi", &["omi"]), &ctx())
        .await
        .unwrap();
    store
        .create_memory(&alice, tagged("not for Omi", &["home"]), &ctx())
        .await
        .unwrap();
    store
        .create_memory(&bob, tagged("bob's, no settings", &["omi"]), &ctx())
        .await
        .unwrap();
    let due = store.due_outbox(far, 100).await.unwrap();
    let kinds: Vec<_> = due
        .iter()
        .map(|i| (i.uid.as_str().to_owned(), i.kind))
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|(u, k)| u == "alice" && *k == OutboxKind::Memory)
            .count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|(_, k)| *k == OutboxKind::Notification)
            .count(),
        2,
        "one per new memory"
    );
    assert!(
        kinds.iter().all(|(u, _)| u == "alice"),
        "bob asked for nothing"
    );
    let push = due.iter().find(|i| i.kind == OutboxKind::Memory).unwrap();
    assert_eq!(push.payload["content"], "for Omi");
    assert_eq!(push.request_id.as_deref(), Some("test-request"));

    // Settling: a rate-limited try is not counted and waits; a dead item waits for an operator.
    let later = Timestamp::from_micros(Timestamp::now().as_micros() + 3_600_000_000);
    let retry = OutboxOutcome::Retry {
        at: later,
        counted: false,
        error: "rate_limited".into(),
    };
    store
        .settle_outbox(vec![(alice.clone(), push.id.clone(), retry)])
        .await
        .unwrap();
    assert!(
        store
            .due_outbox(Timestamp::now(), 100)
            .await
            .unwrap()
            .iter()
            .all(|i| i.id != push.id)
    );
    let again = store.due_outbox(far, 100).await.unwrap();
    assert_eq!(again.iter().find(|i| i.id == push.id).unwrap().attempts, 0);
    store
        .settle_outbox(vec![(
            alice.clone(),
            push.id.clone(),
            OutboxOutcome::Dead {
                error: "forbidden (403)".into(),
            },
        )])
        .await
        .unwrap();
    let dead = store
        .outbox(OutboxState::Dead, PageRequest::first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("forbidden (403)"));
    assert_eq!(store.outbox_counts(Some(&alice)).await.unwrap().dead, 1);
    assert_eq!(store.outbox_counts(Some(&bob)).await.unwrap().dead, 0);
    assert!(matches!(
        store.retry_outbox("nope").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.retry_outbox(&push.id).await.unwrap().state,
        OutboxState::Pending
    );
    // Asking again while it waits changes nothing; a delivered item cannot be retried.
    assert_eq!(
        store.retry_outbox(&push.id).await.unwrap().state,
        OutboxState::Pending
    );

    store
        .settle_outbox(vec![(
            alice.clone(),
            push.id.clone(),
            OutboxOutcome::Delivered,
        )])
        .await
        .unwrap();
    let counts = store.outbox_counts(Some(&alice)).await.unwrap();
    assert_eq!((counts.pending, counts.dead, counts.delivered), (2, 0, 1));
    assert!(matches!(
        store.retry_outbox(&push.id).await,
        Err(StoreError::Conflict(_))
    ));

    // A memory deleted before it was sent is not sent.
    let Created::New(doomed) = store
        .create_memory(&alice, tagged("changed my mind", &["omi"]), &ctx())
        .await
        .unwrap()
    else {
        panic!("new")
    };
    assert_eq!(store.outbox_counts(Some(&alice)).await.unwrap().pending, 4);
    store
        .delete_memory(&alice, doomed.id, None, &ctx())
        .await
        .unwrap();
    assert_eq!(store.outbox_counts(Some(&alice)).await.unwrap().pending, 2);

    // Pull checkpoints and pulled tasks.
    assert_eq!(
        store.omi_pull_checkpoint(&alice, "memories").await.unwrap(),
        None
    );
    store
        .set_omi_pull_checkpoint(&alice, "memories", Some(300))
        .await
        .unwrap();
    assert_eq!(
        store.omi_pull_checkpoint(&alice, "memories").await.unwrap(),
        Some(300)
    );
    assert_eq!(
        store.omi_pull_checkpoint(&bob, "memories").await.unwrap(),
        None
    );
    store
        .set_omi_pull_checkpoint(&alice, "memories", None)
        .await
        .unwrap();
    assert_eq!(
        store.omi_pull_checkpoint(&alice, "memories").await.unwrap(),
        None
    );
    let task = angel_memory::domain::NewTask {
        origin: "omi-task:1".into(),
        description: angel_memory::domain::TaskDescription::parse("Book the train").unwrap(),
        completed: false,
        due_at: None,
        conversation_id: None,
    };
    assert_eq!(
        store
            .save_pulled_tasks(&alice, vec![task.clone()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.save_pulled_tasks(&alice, vec![task]).await.unwrap(),
        0
    );

    store
        .record_omi_status(
            "api.omi.me",
            serde_json::json!({"breaker": {"state": "open"}}),
        )
        .await
        .unwrap();
    assert_eq!(
        store.omi_statuses().await.unwrap()[0].status["breaker"]["state"],
        "open"
    );

    store.delete_user(&alice).await.unwrap();
    let all = store.outbox_counts(None).await.unwrap();
    assert_eq!(
        (all.pending, all.dead, all.delivered),
        (0, 0, 0),
        "erased with the user"
    );
}

/// What search holds in memory follows the store through the change log (search::index).
pub async fn search_changes_name_what_changed(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let a = store
        .create_memory(&alice, new("alpha"), &ctx())
        .await
        .unwrap()
        .into_memory();
    let since = store.search_generation(&alice).await.unwrap();
    assert_eq!(
        store.search_changes(&alice, since).await.unwrap(),
        Some(vec![])
    );
    let b = store
        .create_memory(&alice, new("beta"), &ctx())
        .await
        .unwrap()
        .into_memory();
    store
        .delete_memory(&alice, a.id, None, &ctx())
        .await
        .unwrap();
    let mut changed = store.search_changes(&alice, since).await.unwrap().unwrap();
    changed.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(changed, expected);
    let held = store
        .searchable_memories(&alice, None, Some(&changed))
        .await
        .unwrap();
    assert_eq!(
        held.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        vec!["beta"],
        "a deleted memory is no longer held"
    );
    let now = store.search_generation(&alice).await.unwrap();
    assert!(now > since);
    // A generation the log does not reach (ahead of it, or trimmed away) asks for a full load.
    assert_eq!(store.search_changes(&alice, now + 1).await.unwrap(), None);
    assert_eq!(
        store.search_changes(&alice, now - 20_000).await.unwrap(),
        None
    );
    // A user created again under the same uid never repeats a generation of the old one.
    store.delete_user(&alice).await.unwrap();
    store.create_user(&alice).await.unwrap();
    store
        .create_memory(&alice, new("gamma"), &ctx())
        .await
        .unwrap();
    assert!(store.search_generation(&alice).await.unwrap() > now);
}

macro_rules! conformance {
    ($backend:ident, $open:path) => {
        mod $backend {
            use super::*;

            macro_rules! check {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let Some((store, _guard)) = $open(stringify!($name)).await else {
                            return;
                        };
                        super::$name(&*store).await;
                    }
                };
            }

            check!(creates_reads_and_refuses_duplicates);
            check!(unknown_users_and_ids);
            check!(users_never_reach_each_other);
            check!(updates_keep_every_version);
            check!(delete_is_idempotent_and_restorable);
            check!(purge_removes_content_and_keeps_the_audit_record);
            check!(lists_filter_and_paginate_stably);
            check!(every_change_is_audited);
            check!(batches_report_each_item);
            check!(idempotency_keys_are_per_user);
            check!(export_and_import_round_trip);
            check!(keys_authenticate_until_revoked);
            check!(deleting_a_user_erases_everything);
            check!(stats_count_what_is_there);
            check!(omi_outbox_follows_sync_settings);
            check!(search_changes_name_what_changed);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writes_all_land() {
                let Some((store, _guard)) = $open("concurrent_writes_all_land").await else {
                    return;
                };
                super::concurrent_writes_all_land(store).await;
            }
        }
    };
}

async fn sqlite_store(_test: &str) -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = angel_memory::store::sqlite::SqliteStore::open(
        &dir.path().join("test.db"),
        &angel_memory::store::sqlite::PoolOptions::default(),
    )
    .unwrap();
    Some((Arc::new(store), dir))
}

conformance!(sqlite, sqlite_store);

/// A fresh database on the local PostgreSQL; `None` (skipped) when there is none.
async fn postgres_store(
    test: &str,
) -> Option<(Arc<dyn Store>, crate::test_database::TestDatabase)> {
    let database = crate::test_database::TestDatabase::create(test).await?;
    let store = angel_memory::store::postgres::PostgresStore::open(
        &database.url,
        angel_memory::store::postgres::PgOptions::default(),
    )
    .await
    .unwrap();
    Some((Arc::new(store), database))
}

conformance!(postgres, postgres_store);
