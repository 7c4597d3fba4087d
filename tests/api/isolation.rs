//! Users never observe each other's data: random sequences of operations by three users, checked
//! after every step against a model of who owns which memory; and cursors and idempotency keys,
//! which must not carry anything across users either.

use crate::helpers::{TestApp, body, problem, spawn_app};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

const USERS: usize = 3;
/// Few contents and tags, so that duplicates and tag matches happen often.
const CONTENTS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const TAGS: [&str; 3] = ["red", "green", "blue"];
/// A well-formed id that nobody created: used while no memory exists yet.
const UNKNOWN_ID: &str = "01890000-0000-7000-8000-000000000000";

/// Which memory an operation is about: one of the user's own memories, or any memory anyone
/// created (so that most of these are someone else's).
#[derive(Debug, Clone)]
struct Target {
    mine: bool,
    index: Index,
}

fn target() -> impl Strategy<Value = Target> {
    (any::<bool>(), any::<Index>()).prop_map(|(mine, index)| Target { mine, index })
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        user: usize,
        content: usize,
        tags: Vec<usize>,
    },
    Update {
        user: usize,
        target: Target,
        content: usize,
        stale: bool,
    },
    Delete {
        user: usize,
        target: Target,
    },
    Restore {
        user: usize,
        target: Target,
    },
    Get {
        user: usize,
        target: Target,
    },
    List {
        user: usize,
        tags: Vec<usize>,
    },
    Versions {
        user: usize,
        target: Target,
    },
    BatchDelete {
        user: usize,
        targets: Vec<Target>,
    },
    Stats {
        user: usize,
    },
    Audit {
        user: usize,
    },
    Export {
        user: usize,
    },
}

fn tag_subset() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..TAGS.len()).collect::<Vec<_>>(), 0..=2)
}

fn op() -> impl Strategy<Value = Op> {
    let user = || 0..USERS;
    let content = || 0..CONTENTS.len();
    prop_oneof![
        4 => (user(), content(), tag_subset())
            .prop_map(|(user, content, tags)| Op::Create { user, content, tags }),
        3 => (user(), target(), content(), proptest::bool::weighted(0.2)).prop_map(
            |(user, target, content, stale)| Op::Update { user, target, content, stale }
        ),
        2 => (user(), target()).prop_map(|(user, target)| Op::Delete { user, target }),
        2 => (user(), target()).prop_map(|(user, target)| Op::Restore { user, target }),
        2 => (user(), target()).prop_map(|(user, target)| Op::Get { user, target }),
        1 => (user(), tag_subset()).prop_map(|(user, tags)| Op::List { user, tags }),
        1 => (user(), target()).prop_map(|(user, target)| Op::Versions { user, target }),
        1 => (user(), proptest::collection::vec(target(), 1..5))
            .prop_map(|(user, targets)| Op::BatchDelete { user, targets }),
        1 => user().prop_map(|user| Op::Stats { user }),
        1 => user().prop_map(|user| Op::Audit { user }),
        1 => user().prop_map(|user| Op::Export { user }),
    ]
}

/// What the service should hold for one memory.
#[derive(Debug, Clone)]
struct Mem {
    owner: usize,
    content: String,
    tags: BTreeSet<String>,
    version: i64,
    deleted: bool,
}

/// One property-test case: fresh users on the shared server, and the model of their memories.
struct Case<'a> {
    app: &'a TestApp,
    uids: Vec<String>,
    keys: Vec<String>,
    memories: BTreeMap<String, Mem>,
    /// Every id ever created, by anyone, in creation order: targets are drawn from all of them.
    created: Vec<String>,
    /// Audit events about memories each user should have.
    audit_events: [usize; USERS],
    step: String,
}

impl<'a> Case<'a> {
    async fn new(app: &'a TestApp, case: usize) -> Self {
        let mut uids = Vec::new();
        let mut keys = Vec::new();
        for user in 0..USERS {
            let uid = format!("iso{case}-user{user}");
            keys.push(app.user_with_key(&uid).await);
            uids.push(uid);
        }
        Self {
            app,
            uids,
            keys,
            memories: BTreeMap::new(),
            created: Vec::new(),
            audit_events: [0; USERS],
            step: String::new(),
        }
    }

    fn request(&self, user: usize, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.request(method, path, &self.keys[user])
    }

    fn pick(&self, user: usize, target: &Target) -> String {
        let own: Vec<&String> = self
            .created
            .iter()
            .filter(|id| self.owner(id) == Some(user))
            .collect();
        if target.mine && !own.is_empty() {
            own[target.index.index(own.len())].clone()
        } else if self.created.is_empty() {
            UNKNOWN_ID.to_owned()
        } else {
            self.created[target.index.index(self.created.len())].clone()
        }
    }

    fn owner(&self, id: &str) -> Option<usize> {
        self.memories.get(id).map(|m| m.owner)
    }

    /// The id of `user`'s active memory with this content, other than `except`.
    fn active_with_content(&self, user: usize, content: &str, except: &str) -> Option<String> {
        self.memories
            .iter()
            .find(|(id, m)| {
                m.owner == user && !m.deleted && m.content == content && id.as_str() != except
            })
            .map(|(id, _)| id.clone())
    }

    fn ids_of(&self, user: usize) -> BTreeSet<String> {
        self.memories
            .iter()
            .filter(|(_, m)| m.owner == user)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A memory shown to `user`: it must be theirs, and as the model says.
    fn check_memory(&self, user: usize, memory: &Value) {
        let step = &self.step;
        assert_eq!(
            memory["uid"], self.uids[user],
            "{step}: a memory of another uid was shown: {memory}"
        );
        let id = memory["id"].as_str().expect("id");
        assert_eq!(
            self.owner(id),
            Some(user),
            "{step}: user {user} was shown memory {id}, which they did not create: {memory}"
        );
        let expected = &self.memories[id];
        assert_eq!(
            memory["content"], expected.content,
            "{step}: content of {id}"
        );
        assert_eq!(
            memory["version"], expected.version,
            "{step}: version of {id}"
        );
        assert_eq!(
            memory["deleted_at"].is_null(),
            !expected.deleted,
            "{step}: deleted state of {id}: {memory}"
        );
        let tags: BTreeSet<String> = memory["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().expect("tag").to_owned())
            .collect();
        assert_eq!(tags, expected.tags, "{step}: tags of {id}");
    }

    /// The owner's own view of a memory, to show that another user's attempt changed nothing.
    async fn owner_view(&self, id: &str) -> Option<Value> {
        let owner = self.owner(id)?;
        let response = self
            .request(owner, Method::GET, &format!("/v1/memories/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}: owner reads {id}", self.step);
        let memory = body(response).await;
        Some(json!({
            "content": memory["content"],
            "version": memory["version"],
            "deleted_at": memory["deleted_at"],
            "updated_at": memory["updated_at"],
        }))
    }

    async fn assert_unchanged(&self, id: &str, before: Option<Value>) {
        let after = self.owner_view(id).await;
        assert_eq!(
            before, after,
            "{}: another user's operation changed memory {id}",
            self.step
        );
    }

    /// Sends an operation on someone else's (or nobody's) memory: 404, and nothing changes.
    async fn foreign(&self, id: &str, send: impl AsyncFnOnce() -> Response) {
        let before = self.owner_view(id).await;
        let response = send().await;
        let status = response.status();
        assert_eq!(status, 404, "{}: on another user's memory {id}", self.step);
        problem(response, 404).await;
        self.assert_unchanged(id, before).await;
    }

    async fn run(&mut self, op: &Op) {
        self.step = format!("{op:?} (uids {:?})", self.uids);
        match op {
            Op::Create {
                user,
                content,
                tags,
            } => self.create(*user, CONTENTS[*content], tags).await,
            Op::Update {
                user,
                target,
                content,
                stale,
            } => {
                let id = self.pick(*user, target);
                self.update(*user, &id, CONTENTS[*content], *stale).await;
            }
            Op::Delete { user, target } => self.delete(*user, &self.pick(*user, target)).await,
            Op::Restore { user, target } => self.restore(*user, &self.pick(*user, target)).await,
            Op::Get { user, target } => self.get(*user, &self.pick(*user, target)).await,
            Op::List { user, tags } => self.list(*user, tags).await,
            Op::Versions { user, target } => self.versions(*user, &self.pick(*user, target)).await,
            Op::BatchDelete { user, targets } => {
                let mut ids: Vec<String> = Vec::new();
                for target in targets {
                    let id = self.pick(*user, target);
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                self.batch_delete(*user, &ids).await;
            }
            Op::Stats { user } => self.stats(*user).await,
            Op::Audit { user } => self.audit(*user).await,
            Op::Export { user } => self.export(*user).await,
        }
    }

    async fn create(&mut self, user: usize, content: &str, tags: &[usize]) {
        let tags: BTreeSet<String> = tags.iter().map(|&t| TAGS[t].to_owned()).collect();
        let response = self
            .request(user, Method::POST, "/v1/memories")
            .json(&json!({"content": content, "tags": tags}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let memory = body(response).await;
        let step = &self.step;
        match self.active_with_content(user, content, "") {
            Some(existing) => {
                assert_eq!(
                    status, 200,
                    "{step}: identical to own active {existing}: {memory}"
                );
                assert_eq!(memory["duplicate"], true, "{step}: {memory}");
                assert_eq!(
                    memory["id"],
                    existing.as_str(),
                    "{step}: the existing memory"
                );
            }
            None => {
                assert_eq!(status, 201, "{step}: a new memory: {memory}");
                assert_eq!(memory["duplicate"], false, "{step}: {memory}");
                let id = memory["id"].as_str().expect("id").to_owned();
                assert!(
                    !self.memories.contains_key(&id),
                    "{step}: a new memory reuses id {id}"
                );
                self.memories.insert(
                    id.clone(),
                    Mem {
                        owner: user,
                        content: content.to_owned(),
                        tags,
                        version: 1,
                        deleted: false,
                    },
                );
                self.created.push(id);
                self.audit_events[user] += 1;
            }
        }
        self.check_memory(user, &memory);
    }

    async fn update(&mut self, user: usize, id: &str, content: &str, stale: bool) {
        // For someone else's memory, send its real current version: only ownership may stop it.
        let version = self.memories.get(id).map_or(1, |m| m.version) + i64::from(stale);
        let send = async || {
            self.request(user, Method::PATCH, &format!("/v1/memories/{id}"))
                .header("If-Match", format!("\"{version}\""))
                .json(&json!({"content": content}))
                .send()
                .await
                .unwrap()
        };
        if self.owner(id) != Some(user) {
            return self.foreign(id, send).await;
        }
        let response = send().await;
        let current = self.memories[id].clone();
        let conflict = self.active_with_content(user, content, id);
        let step = &self.step;
        if current.deleted {
            problem(response, 409).await;
        } else if stale {
            let doc = problem(response, 412).await;
            assert_eq!(doc["current_version"], current.version, "{step}");
        } else if current.content == content {
            assert_eq!(
                response.status(),
                200,
                "{step}: an update that changes nothing"
            );
            let memory = body(response).await;
            self.check_memory(user, &memory);
        } else if let Some(other) = conflict {
            let doc = problem(response, 409).await;
            assert!(
                doc["detail"].as_str().unwrap().contains(&other),
                "{step}: names the memory {other} that has the content: {doc}"
            );
        } else {
            assert_eq!(response.status(), 200, "{step}");
            let mem = self.memories.get_mut(id).unwrap();
            mem.content = content.to_owned();
            mem.version += 1;
            self.audit_events[user] += 1;
            let memory = body(response).await;
            self.check_memory(user, &memory);
        }
    }

    async fn delete(&mut self, user: usize, id: &str) {
        let send = async || {
            self.request(user, Method::DELETE, &format!("/v1/memories/{id}"))
                .send()
                .await
                .unwrap()
        };
        if self.owner(id) != Some(user) {
            return self.foreign(id, send).await;
        }
        let response = send().await;
        assert_eq!(response.status(), 200, "{}", self.step);
        let memory = body(response).await;
        let mem = self.memories.get_mut(id).unwrap();
        if !mem.deleted {
            mem.deleted = true;
            self.audit_events[user] += 1;
        }
        self.check_memory(user, &memory);
    }

    async fn restore(&mut self, user: usize, id: &str) {
        let send = async || {
            self.request(user, Method::POST, &format!("/v1/memories/{id}/restore"))
                .send()
                .await
                .unwrap()
        };
        if self.owner(id) != Some(user) {
            return self.foreign(id, send).await;
        }
        let response = send().await;
        let current = self.memories[id].clone();
        if current.deleted
            && self
                .active_with_content(user, &current.content, id)
                .is_some()
        {
            problem(response, 409).await;
            return;
        }
        assert_eq!(response.status(), 200, "{}", self.step);
        if current.deleted {
            self.memories.get_mut(id).unwrap().deleted = false;
            self.audit_events[user] += 1;
        }
        let memory = body(response).await;
        self.check_memory(user, &memory);
    }

    async fn get(&mut self, user: usize, id: &str) {
        let send = async || {
            self.request(user, Method::GET, &format!("/v1/memories/{id}"))
                .send()
                .await
                .unwrap()
        };
        if self.owner(id) != Some(user) {
            return self.foreign(id, send).await;
        }
        let response = send().await;
        assert_eq!(response.status(), 200, "{}", self.step);
        let memory = body(response).await;
        self.check_memory(user, &memory);
    }

    async fn versions(&mut self, user: usize, id: &str) {
        let send = async || {
            self.request(user, Method::GET, &format!("/v1/memories/{id}/versions"))
                .send()
                .await
                .unwrap()
        };
        if self.owner(id) != Some(user) {
            return self.foreign(id, send).await;
        }
        let response = send().await;
        assert_eq!(response.status(), 200, "{}", self.step);
        let items = body(response).await["items"].clone();
        self.check_versions(id, &items);
    }

    /// A memory's history as shown to its owner: numbered 1…n, all of it, and only of this memory.
    fn check_versions(&self, id: &str, versions: &Value) {
        let step = &self.step;
        let versions = versions.as_array().expect("versions");
        let expected = &self.memories[id];
        assert_eq!(
            versions.len() as i64,
            expected.version,
            "{step}: versions of {id}"
        );
        for (number, version) in (1..).zip(versions) {
            assert_eq!(
                version["memory_id"], id,
                "{step}: a version of another memory"
            );
            assert_eq!(version["version"], number, "{step}: {version}");
        }
        assert_eq!(
            versions.last().map(|v| &v["content"]),
            Some(&json!(expected.content)),
            "{step}: the last version is the current content"
        );
    }

    async fn list(&mut self, user: usize, tags: &[usize]) {
        let filter: Vec<&str> = tags.iter().map(|&t| TAGS[t]).collect();
        let mut path = "/v1/memories?state=all&limit=200".to_owned();
        if !filter.is_empty() {
            path.push_str(&format!("&tags={}", filter.join(",")));
        }
        let response = self.request(user, Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", self.step);
        let page = body(response).await;
        assert!(page["next_cursor"].is_null(), "{}: one page", self.step);
        let mut seen = BTreeSet::new();
        for memory in page["items"].as_array().expect("items") {
            self.check_memory(user, memory);
            seen.insert(memory["id"].as_str().unwrap().to_owned());
        }
        let expected: BTreeSet<String> = self
            .memories
            .iter()
            .filter(|(_, m)| m.owner == user)
            .filter(|(_, m)| filter.is_empty() || filter.iter().any(|t| m.tags.contains(*t)))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(
            seen, expected,
            "{}: the list shows exactly the user's own matching memories",
            self.step
        );
    }

    async fn batch_delete(&mut self, user: usize, ids: &[String]) {
        let mut before = Vec::new();
        for id in ids {
            if self.owner(id) != Some(user) {
                before.push((id.clone(), self.owner_view(id).await));
            }
        }
        let response = self
            .request(user, Method::POST, "/v1/memories/batch-delete")
            .json(&json!({"ids": ids}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.step);
        let report = body(response).await;
        let results = report["results"].as_array().expect("results");
        assert_eq!(results.len(), ids.len(), "{}: {report}", self.step);
        let mut failed = 0;
        for (index, (id, result)) in ids.iter().zip(results).enumerate() {
            assert_eq!(result["index"], index, "{}: {report}", self.step);
            assert_eq!(result["id"], id.as_str(), "{}: {report}", self.step);
            let expected = match self.memories.get_mut(id) {
                Some(mem) if mem.owner == user && mem.deleted => "already_deleted",
                Some(mem) if mem.owner == user => {
                    mem.deleted = true;
                    self.audit_events[user] += 1;
                    "deleted"
                }
                _ => {
                    failed += 1;
                    "not_found"
                }
            };
            assert_eq!(
                result["status"], expected,
                "{}: item {index} ({id}): {report}",
                self.step
            );
        }
        assert_eq!(report["failed"], failed, "{}: {report}", self.step);
        assert_eq!(report["succeeded"], ids.len() - failed, "{}", self.step);
        for (id, before) in before {
            self.assert_unchanged(&id, before).await;
        }
    }

    async fn stats(&mut self, user: usize) {
        let response = self
            .request(user, Method::GET, "/v1/stats")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.step);
        let stats = body(response).await;
        let own = || self.memories.values().filter(|m| m.owner == user);
        let active = own().filter(|m| !m.deleted).count();
        let deleted = own().filter(|m| m.deleted).count();
        assert_eq!(stats["active"], active, "{}: {stats}", self.step);
        assert_eq!(stats["deleted"], deleted, "{}: {stats}", self.step);
        assert_eq!(
            stats["versions"],
            own().map(|m| m.version).sum::<i64>(),
            "{}: {stats}",
            self.step
        );
        let mut by_tag: BTreeMap<String, usize> = BTreeMap::new();
        for mem in own().filter(|m| !m.deleted) {
            for tag in &mem.tags {
                *by_tag.entry(tag.clone()).or_default() += 1;
            }
        }
        assert_eq!(stats["by_tag"], json!(by_tag), "{}: {stats}", self.step);
    }

    /// Audit events shown to `user` name only their memories, and every change they made.
    fn check_audit(&self, user: usize, events: &[&Value]) {
        let step = &self.step;
        let mut about_memories = 0;
        for event in events {
            let Some(id) = event["memory_id"].as_str() else {
                continue;
            };
            about_memories += 1;
            assert_eq!(
                self.owner(id),
                Some(user),
                "{step}: user {user} sees an audit event about memory {id}: {event}"
            );
        }
        assert_eq!(
            about_memories, self.audit_events[user],
            "{step}: audit events about memories"
        );
    }

    async fn audit(&mut self, user: usize) {
        let response = self
            .request(user, Method::GET, "/v1/audit?limit=200")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.step);
        let page = body(response).await;
        assert!(page["next_cursor"].is_null(), "{}: one page", self.step);
        let events: Vec<&Value> = page["items"].as_array().expect("items").iter().collect();
        self.check_audit(user, &events);
    }

    async fn export(&mut self, user: usize) {
        let response = self
            .request(user, Method::GET, "/v1/export")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.step);
        let text = response.text().await.unwrap();
        let step = &self.step;
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("{step}: not JSON: {l}")))
            .collect();
        let (Some(header), Some(end)) = (lines.first(), lines.last()) else {
            panic!("{step}: an empty export");
        };
        assert_eq!(header["type"], "header", "{step}");
        assert_eq!(header["uid"], self.uids[user], "{step}: {header}");
        assert_eq!(end["type"], "end", "{step}: the export is complete");
        let mut ids = BTreeSet::new();
        let mut events = Vec::new();
        for line in &lines[1..lines.len() - 1] {
            match line["type"].as_str() {
                Some("memory") => {
                    self.check_memory(user, &line["memory"]);
                    let id = line["memory"]["id"].as_str().unwrap();
                    self.check_versions(id, &line["versions"]);
                    ids.insert(id.to_owned());
                }
                Some("audit") => events.push(&line["event"]),
                _ => panic!("{step}: unexpected line {line}"),
            }
        }
        assert_eq!(
            ids,
            self.ids_of(user),
            "{step}: the export holds every own memory"
        );
        assert_eq!(end["memories"], ids.len(), "{step}: {end}");
        assert_eq!(end["audit_events"], events.len(), "{step}: {end}");
        self.check_audit(user, &events);
    }
}

async fn run_case(app: &TestApp, case: usize, ops: Vec<Op>) {
    let mut state = Case::new(app, case).await;
    for op in &ops {
        state.run(op).await;
    }
    // Finally, everything every user can see agrees with the model.
    for user in 0..USERS {
        state.step = format!("final check of user {user} (uids {:?})", state.uids);
        state.list(user, &[]).await;
        state.stats(user).await;
    }
}

#[test]
fn users_never_observe_each_others_data() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // Every case, shrinking ones included, gets users of its own: cases do not see each other.
    let case = Cell::new(0);
    let result = runner.run(&proptest::collection::vec(op(), 20..=40), |ops| {
        case.set(case.get() + 1);
        runtime.block_on(run_case(&app, case.get(), ops));
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

async fn list_page(app: &TestApp, key: &str, path: &str) -> Value {
    let response = app.request(Method::GET, path, key).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    body(response).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn cursors_and_idempotency_keys_do_not_cross_users() {
    let app = spawn_app().await;
    let alice = app.user_with_key("cursor-alice").await;
    let bob = app.user_with_key("cursor-bob").await;
    let mut alice_ids = Vec::new();
    for content in ["a one", "a two", "a three"] {
        alice_ids.push(app.create_memory(&alice, content).await["id"].clone());
    }
    let mut bob_ids = Vec::new();
    for content in ["b one", "b two"] {
        bob_ids.push(app.create_memory(&bob, content).await["id"].clone());
    }

    // Alice's cursor, used by Bob, pages through Bob's memories (or none), never Alice's.
    let first = list_page(&app, &alice, "/v1/memories?limit=1").await;
    assert_eq!(ids(&first).len(), 1);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    for path in [
        format!("/v1/memories?cursor={cursor}&limit=200"),
        format!("/v1/memories?cursor={cursor}&limit=200&state=all"),
        format!("/v1/memories?cursor={cursor}&limit=200&order=asc"),
    ] {
        let page = list_page(&app, &bob, &path).await;
        for memory in page["items"].as_array().unwrap() {
            assert_eq!(memory["uid"], "cursor-bob", "{path}: {memory}");
            assert!(bob_ids.contains(&memory["id"]), "{path}: {memory}");
        }
    }
    // Alice's own cursor still works for her and shows only her memories.
    let rest = list_page(
        &app,
        &alice,
        &format!("/v1/memories?cursor={cursor}&limit=200"),
    )
    .await;
    assert_eq!(ids(&rest).len(), 2);
    assert!(
        rest["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| alice_ids.contains(&m["id"]))
    );

    // Same for the audit trail's cursor.
    let first = list_page(&app, &alice, "/v1/audit?limit=1").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let page = list_page(&app, &bob, &format!("/v1/audit?cursor={cursor}&limit=200")).await;
    for event in page["items"].as_array().unwrap() {
        assert!(
            event["memory_id"].is_null() || bob_ids.contains(&event["memory_id"]),
            "Bob sees an audit event of Alice: {event}"
        );
    }

    // Idempotency keys are per user: the same key is a fresh request for Bob.
    let post = |key: &str, content: &str| {
        app.request(Method::POST, "/v1/memories", key)
            .header("Idempotency-Key", "k1")
            .json(&json!({"content": content}))
            .send()
    };
    let first = post(&alice, "alice with a key").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let alice_memory = body(first).await;
    assert_eq!(alice_memory["uid"], "cursor-alice");

    let response = post(&bob, "bob with the same key").await.unwrap();
    assert_eq!(
        response.status(),
        201,
        "Bob's request runs: keys are per user"
    );
    assert!(response.headers().get("idempotent-replayed").is_none());
    let bob_memory = body(response).await;
    assert_eq!(bob_memory["uid"], "cursor-bob");
    assert_eq!(bob_memory["content"], "bob with the same key");
    assert_ne!(bob_memory["id"], alice_memory["id"]);

    // Alice's repeat replays her own response, not Bob's.
    let replay = post(&alice, "alice with a key").await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(body(replay).await, alice_memory);
    // Bob's repeat replays his.
    let replay = post(&bob, "bob with the same key").await.unwrap();
    assert_eq!(replay.status(), 201);
    assert!(replay.headers().get("idempotent-replayed").is_some());
    assert_eq!(body(replay).await, bob_memory);
    // Bob's body under Alice's key is a different request for Alice: refused, not Bob's response.
    let reused = post(&alice, "bob with the same key").await.unwrap();
    problem(reused, 422).await;

    // Each has exactly their own memories.
    let page = list_page(&app, &alice, "/v1/memories?limit=200&state=all").await;
    assert_eq!(ids(&page).len(), 4);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["uid"] == "cursor-alice")
    );
    let page = list_page(&app, &bob, "/v1/memories?limit=200&state=all").await;
    assert_eq!(ids(&page).len(), 3);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["uid"] == "cursor-bob")
    );
}
