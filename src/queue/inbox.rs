//! The inbox worker: turns acknowledged Omi events into conversations, memories and tasks.
//! The store applies each event at most once, however the process stops (`Store::complete_event`): a
//! crash at any point leaves the event either untouched (processed again later) or finished (never
//! again).

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use crate::domain::Timestamp;
use crate::omi::{derive, payload};
use crate::resilience::FullJitter;
use crate::store::{Actor, Context, DueEvent, EventKind, EventWork, Store};

/// Events read from the inbox at a time.
const BATCH: u32 = 64;
/// Events processed at once by `drain` (tools and tests, which want an answer soon, not throughput).
const CONCURRENCY: usize = 4;
/// Retries wait a random time up to `BASE · 2^attempt`, capped (full jitter: retries of many events
/// do not fire in waves; the same formula as the outbox, `resilience::FullJitter`). A persisted attempt
/// count drives it.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(600);
/// A safety net: the worker also looks for due retries this often without being woken.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct InboxWorker {
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    own_app_id: Option<String>,
    max_attempts: u32,
}

impl InboxWorker {
    pub fn new(store: Arc<dyn Store>, own_app_id: Option<String>, max_attempts: u32) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
            own_app_id,
            max_attempts,
        }
    }

    /// Tells the worker that a new event is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self) {
        loop {
            let processed = match self.store.due_events(Timestamp::now(), BATCH).await {
                Ok(due) => {
                    let count = due.len();
                    futures_util::future::join_all(
                        due.into_iter().map(|event| self.process(event)),
                    )
                    .await;
                    count
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read the inbox");
                    0
                }
            };
            if processed < BATCH as usize {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Processes every due event now; returns how many were handled. For tools and tests.
    pub async fn drain(&self) -> usize {
        let mut total = 0;
        while let Ok(due) = self.store.due_events(Timestamp::now(), BATCH).await {
            if due.is_empty() {
                break;
            }
            total += due.len();
            self.process_all(due).await;
        }
        total
    }

    async fn process_all(&self, due: Vec<DueEvent>) {
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |event| self.process(event))
            .await;
    }

    async fn process(&self, event: DueEvent) {
        let span = tracing::info_span!("inbox", event_id = %event.id, kind = event.kind.as_str());
        let _enter = span.enter();
        let ctx = Context::new(Actor::System, Some(format!("inbox:{}", event.id)));
        let outcome = match work_for(&event, self.own_app_id.as_deref()) {
            Ok(work) => self
                .store
                .complete_event(&event.uid, &event.id, work, &ctx)
                .await
                .map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        match outcome {
            Ok(_) => metrics::counter!("inbox_events_total", "kind" => event.kind.as_str(), "outcome" => "done").increment(1),
            Err(reason) => {
                let attempt = u32::try_from(event.attempts).unwrap_or(u32::MAX).saturating_add(1);
                let retry_at = (attempt < self.max_attempts).then(|| backoff(attempt));
                let outcome = if retry_at.is_some() { "retry" } else { "dead" };
                tracing::warn!(attempt, outcome, error = %reason, "inbox event failed");
                metrics::counter!("inbox_events_total", "kind" => event.kind.as_str(), "outcome" => outcome).increment(1);
                if let Err(error) = self.store.fail_event(&event.uid, &event.id, &reason, retry_at).await {
                    tracing::warn!(%error, "cannot record the failure; the event stays due");
                }
            }
        }
    }
}

fn backoff(attempt: u32) -> Timestamp {
    let wait = FullJitter::new(BACKOFF_BASE, BACKOFF_CAP).delay(attempt);
    Timestamp::from_micros(Timestamp::now().as_micros() + wait.as_micros() as i64)
}

/// Parses the raw event again (the inbox keeps bytes, so a better parser can reprocess old events) and
/// derives what it holds.
fn work_for(event: &DueEvent, own_app_id: Option<&str>) -> Result<EventWork, String> {
    match event.kind {
        EventKind::Conversation => {
            let conversation: payload::Conversation = serde_json::from_slice(&event.body)
                .map_err(|e| format!("conversation payload: {e}"))?;
            Ok(EventWork::Conversation(Box::new(derive::conversation(
                conversation,
                own_app_id,
                event.received_at,
            ))))
        }
        EventKind::DaySummary => {
            let body: payload::DaySummaryBody = serde_json::from_slice(&event.body)
                .map_err(|e| format!("day summary payload: {e}"))?;
            Ok(derive::day_summary(body, event.received_at)
                .map_or(EventWork::Nothing, EventWork::DaySummary))
        }
        // Transcripts and audio are handled when they arrive; nothing is left for the worker.
        EventKind::Transcript | EventKind::Audio => Ok(EventWork::Nothing),
    }
}
