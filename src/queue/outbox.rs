//! The outbox worker: delivers queued writes to Omi (memories, notifications).
//!
//! Items are enqueued in the transaction of the write that causes them (triggers of migration 6), so
//! nothing is lost to a crash or an outage. The worker waits while the breaker is open instead of
//! spending attempts, defers a rate-limited user's items by Omi's `Retry-After` without counting an
//! attempt, retries other transient failures with full-jitter backoff, and leaves items dead for an
//! operator after `max_attempts` or a failure that will not heal by itself.
//!
//! Re-sending is safe for memories only because Omi derives a memory's id from its content (SHA-256 →
//! UUID, contract §8) when it is created as an explicit memory without `text`: a memory delivered but not
//! marked done (crash, timeout after Omi stored it) is upserted again, not duplicated. Notifications have
//! no such identity: they are re-sent only when the failure proves Omi never got them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

use crate::config::OutboxSettings;
use crate::domain::{Timestamp, Uid};
use crate::omi::client::types::{ExplicitMemory, NewMemories, Text};
use crate::omi::client::{OmiClient, OmiError};
use crate::resilience::{FullJitter, Retryable};
use crate::store::{OutboxItem, OutboxKind, OutboxOutcome, Store};

/// Items read at a time.
const BATCH: u32 = 200;
/// The worker also looks for due items this often without being woken.
const POLL: Duration = Duration::from_secs(1);
/// A 429 without a readable `Retry-After` waits this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Depth gauges and the recorded upstream status are refreshed at most this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// A round starts no call later than this after reading its items. On PostgreSQL reading claims them
/// for `postgres.claim_lease_ms` (60 s by default); a call started within the budget ends (request
/// timeout) before the lease does, so no other instance takes an item while it is being sent. What a
/// round leaves is read again: at once on SQLite, after the lease on PostgreSQL.
const ROUND_BUDGET: Duration = Duration::from_secs(20);

/// What the worker saw last, for status pages. Errors are kept as kind and status only: Omi's detail
/// can echo one user's content, and this is shown to every user.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct WorkerStatus {
    pub running: bool,
    pub delivered: u64,
    pub last_delivery_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

#[derive(Clone)]
pub struct OutboxWorker {
    store: Arc<dyn Store>,
    client: Option<OmiClient>,
    settings: OutboxSettings,
    wake: Arc<Notify>,
    status: Arc<Mutex<WorkerStatus>>,
    /// What `publish` recorded last.
    recorded: Arc<Mutex<Option<serde_json::Value>>>,
}

impl OutboxWorker {
    /// `client` is `None` when the Integration API is not configured: items then wait in the outbox.
    pub fn new(store: Arc<dyn Store>, client: Option<OmiClient>, settings: OutboxSettings) -> Self {
        Self {
            store,
            // The outbox is the retry loop: each attempt is one call, counted and persisted here.
            client: client.map(|c| c.without_retries()),
            settings,
            wake: Arc::new(Notify::new()),
            status: Arc::new(Mutex::new(WorkerStatus::default())),
            recorded: Arc::new(Mutex::new(None)),
        }
    }

    pub fn client(&self) -> Option<&OmiClient> {
        self.client.as_ref()
    }

    pub fn status(&self) -> WorkerStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Tells the worker that an item was queued again.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn backoff(&self) -> FullJitter {
        FullJitter::new(
            Duration::from_millis(self.settings.backoff_base_ms),
            Duration::from_secs(self.settings.backoff_cap_seconds),
        )
    }

    pub async fn run(self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if let Ok(mut status) = self.status.lock() {
            status.running = true;
        }
        let mut published = tokio::time::Instant::now() - PUBLISH_EVERY;
        loop {
            if published.elapsed() >= PUBLISH_EVERY {
                self.publish(&client).await;
                published = tokio::time::Instant::now();
            }
            // An open breaker refuses every call: wait it out instead of reading the queue.
            let closed_in = client.breaker().wait_time();
            if !closed_in.is_zero() {
                tokio::time::sleep(closed_in.min(PUBLISH_EVERY)).await;
                continue;
            }
            let due = match self.store.due_outbox(Timestamp::now(), BATCH).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the Omi outbox");
                    Vec::new()
                }
            };
            let full = due.len() == BATCH as usize;
            let stopped_early = self.deliver_all(&client, due).await;
            if !full && !stopped_early {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Sends the items in groups (one call per group); `true` when the round stopped early: the
    /// breaker opened, or the round used up its budget (see [`ROUND_BUDGET`]).
    async fn deliver_all(&self, client: &OmiClient, due: Vec<OutboxItem>) -> bool {
        let started = tokio::time::Instant::now();
        // Omi rate-limits per app and user: once a user is limited, their other items this round wait
        // as long, without a call each.
        let mut limited: BTreeMap<Uid, Timestamp> = BTreeMap::new();
        let mut groups = self.groups(due).into_iter();
        while let Some(group) = groups.next() {
            if started.elapsed() >= ROUND_BUDGET {
                self.release(std::iter::once(group).chain(groups)).await;
                return true;
            }
            let Some(uid) = group.first().map(|i| i.uid.clone()) else {
                continue;
            };
            let outcomes = match limited.get(&uid) {
                Some(until) => Some(
                    group
                        .iter()
                        .map(|i| {
                            let error = "waiting for Omi's rate limit".to_owned();
                            (
                                i.uid.clone(),
                                i.id.clone(),
                                OutboxOutcome::Retry {
                                    at: *until,
                                    counted: false,
                                    error,
                                },
                            )
                        })
                        .collect(),
                ),
                None => self.deliver(client, &group).await,
            };
            let Some(outcomes) = outcomes else {
                self.release(std::iter::once(group).chain(groups)).await;
                return true;
            };
            if let Some(until) = outcomes.iter().find_map(|(_, _, o)| match o {
                OutboxOutcome::Retry {
                    at, counted: false, ..
                } => Some(*at),
                _ => None,
            }) {
                limited.insert(uid, until);
            }
            if let Err(error) = self.store.settle_outbox(outcomes).await {
                tracing::warn!(%error, "cannot record outbox deliveries; they stay due and are sent again");
            }
        }
        false
    }

    /// Gives back what this round claimed but did not try, so it is due again as soon as the worker
    /// reads the queue (on PostgreSQL a claim would otherwise hold it until its lease ends).
    async fn release(&self, groups: impl Iterator<Item = Vec<OutboxItem>>) {
        let released: Vec<_> = groups
            .flatten()
            .map(|i| (i.uid, i.id, OutboxOutcome::Released))
            .collect();
        if released.is_empty() {
            return;
        }
        if let Err(error) = self.store.settle_outbox(released).await {
            tracing::warn!(%error, "cannot release unsent outbox items; they are due when their claim ends");
        }
    }

    /// Memories of one user travel together (up to `batch_size`); notifications one by one.
    fn groups(&self, due: Vec<OutboxItem>) -> Vec<Vec<OutboxItem>> {
        let mut memories: BTreeMap<Uid, Vec<OutboxItem>> = BTreeMap::new();
        let mut groups = Vec::new();
        for item in due {
            match item.kind {
                OutboxKind::Memory => memories.entry(item.uid.clone()).or_default().push(item),
                OutboxKind::Notification => groups.push(vec![item]),
            }
        }
        let size = self.settings.batch_size.max(1) as usize;
        for (_, items) in memories {
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                groups.push(items.by_ref().take(size).collect());
            }
        }
        groups
    }

    /// One call for the group. `None`: the breaker refused it (nothing to record, nothing counted).
    async fn deliver(
        &self,
        client: &OmiClient,
        group: &[OutboxItem],
    ) -> Option<Vec<(Uid, String, OutboxOutcome)>> {
        let first = group.first()?;
        let uid = first.uid.clone();
        let kind = first.kind;
        // A batch carries the first item's cause; the others are logged with theirs.
        let request_id = first
            .request_id
            .clone()
            .unwrap_or_else(|| format!("outbox-{}", first.id));
        for item in group.iter().skip(1) {
            tracing::debug!(request_id = %request_id, item = %item.id, caused_by = item.request_id.as_deref().unwrap_or("-"), "sent in a batch");
        }
        let client = client.for_request(request_id);
        let mut outcomes = Vec::new();
        let result = match kind {
            OutboxKind::Memory => {
                let mut memories = Vec::new();
                let mut sent = Vec::new();
                for item in group {
                    match explicit_memory(&item.payload) {
                        Some(memory) => {
                            memories.push(memory);
                            sent.push(item);
                        }
                        None => outcomes.push((
                            item.uid.clone(),
                            item.id.clone(),
                            OutboxOutcome::Dead {
                                error: "the queued memory cannot be read".into(),
                            },
                        )),
                    }
                }
                if memories.is_empty() {
                    return Some(outcomes);
                }
                let request =
                    NewMemories::explicit(memories).map_err(|e| OmiError::Invalid(e.to_string()));
                let result = match request {
                    Ok(request) => client.create_memories(&uid, &request).await,
                    Err(error) => Err(error),
                };
                return self.settle_group(result, &sent, kind, outcomes);
            }
            OutboxKind::Notification => {
                let message = first
                    .payload
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default();
                client.notify(&uid, message).await.map(drop)
            }
        };
        self.settle_group(result, &group.iter().collect::<Vec<_>>(), kind, outcomes)
    }

    fn settle_group(
        &self,
        result: Result<(), OmiError>,
        items: &[&OutboxItem],
        kind: OutboxKind,
        mut outcomes: Vec<(Uid, String, OutboxOutcome)>,
    ) -> Option<Vec<(Uid, String, OutboxOutcome)>> {
        let now = Timestamp::now();
        let label = kind.as_str();
        match result {
            Ok(()) => {
                metrics::counter!("omi_outbox_deliveries_total", "kind" => label, "outcome" => "delivered").increment(items.len() as u64);
                if let Ok(mut status) = self.status.lock() {
                    status.delivered += items.len() as u64;
                    status.last_delivery_at = Some(now);
                }
                outcomes.extend(
                    items
                        .iter()
                        .map(|i| (i.uid.clone(), i.id.clone(), OutboxOutcome::Delivered)),
                );
                return Some(outcomes);
            }
            Err(OmiError::CircuitOpen { .. }) => return None,
            Err(error) => {
                if let Ok(mut status) = self.status.lock() {
                    status.last_error = Some(error.summary());
                    status.last_error_at = Some(now);
                }
                for item in items {
                    let outcome = self.outcome_of(&error, item, now);
                    let name = match outcome {
                        OutboxOutcome::Delivered => "delivered",
                        OutboxOutcome::Retry { .. } => "retry",
                        OutboxOutcome::Dead { .. } => "dead",
                        OutboxOutcome::Released => "released",
                    };
                    metrics::counter!("omi_outbox_deliveries_total", "kind" => label, "outcome" => name).increment(1);
                    outcomes.push((item.uid.clone(), item.id.clone(), outcome));
                }
                tracing::warn!(kind = label, items = items.len(), error = %error.summary(), "Omi outbox delivery failed");
            }
        }
        Some(outcomes)
    }

    fn outcome_of(&self, error: &OmiError, item: &OutboxItem, now: Timestamp) -> OutboxOutcome {
        let text = error.to_string();
        if let OmiError::RateLimited { retry_after } = error {
            // Not the item's fault: it waits as long as Omi asks, without using up an attempt.
            let wait = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
            return OutboxOutcome::Retry {
                at: later(now, wait),
                counted: false,
                error: text,
            };
        }
        // A notification whose fate is unclear is not sent again: a duplicate push is worse than none.
        let may_repeat = match item.kind {
            OutboxKind::Memory => true,
            OutboxKind::Notification => error.not_applied(),
        };
        let attempt = u32::try_from(item.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if error.is_retryable() && may_repeat && attempt < self.settings.max_attempts {
            OutboxOutcome::Retry {
                at: later(now, self.backoff().delay(attempt)),
                counted: true,
                error: text,
            }
        } else {
            OutboxOutcome::Dead { error: text }
        }
    }

    /// Refreshes the depth gauges and records the breaker and worker state for the CLI.
    async fn publish(&self, client: &OmiClient) {
        if let Ok(counts) = self.store.outbox_counts(None).await {
            metrics::gauge!("omi_outbox_pending").set(counts.pending as f64);
            metrics::gauge!("omi_outbox_dead").set(counts.dead as f64);
        }
        let breaker = client.breaker_snapshot();
        let status = serde_json::json!({"breaker": breaker, "worker": self.status()});
        // Written only when something changed (the countdown aside): an idle server does not write.
        let mut comparable = status.clone();
        comparable["breaker"]["retry_in_ms"] = serde_json::Value::Null;
        let changed = self
            .recorded
            .lock()
            .map(|mut last| {
                let changed = last.as_ref() != Some(&comparable);
                *last = Some(comparable);
                changed
            })
            .unwrap_or(true);
        if !changed {
            return;
        }
        if let Err(error) = self
            .store
            .record_omi_status(&breaker.upstream, status)
            .await
        {
            tracing::debug!(%error, "cannot record the Omi status");
        }
    }
}

fn later(now: Timestamp, wait: Duration) -> Timestamp {
    Timestamp::from_micros(
        now.as_micros()
            .saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX)),
    )
}

fn explicit_memory(payload: &serde_json::Value) -> Option<ExplicitMemory> {
    let content = payload.get("content")?.as_str()?;
    let tags = payload
        .get("tags")
        .and_then(|t| t.as_array())
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some(ExplicitMemory {
        content: Text::parse("content", content).ok()?,
        tags,
        source_id: None,
        source_url: None,
        artifact_ref: None,
    })
}
