//! The embedding worker: takes memories off the durable embedding queue in batches, embeds them and
//! stores their vectors. A new memory is text-searchable at once and semantically searchable once this
//! has run. It never invents a vector: a failure is recorded (or retried), and the memory stays out of
//! vector search.

use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::embed::{EmbedError, Embedder};
use crate::domain::Timestamp;
use crate::store::{EmbeddingJob, EmbeddingOutcome, Store, StoreError, VectorModel};

/// Memories taken from the queue at once; their writes share one commit. The embedder splits them
/// into its own batches, which pad every text to the longest: sorting by length first wastes less.
pub const BATCH: u32 = 128;
/// A safety net: the worker also looks for work this often without being woken.
const POLL: Duration = Duration::from_millis(500);
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(600);

pub fn vector_model(embedder: &dyn Embedder) -> VectorModel {
    let info = embedder.model();
    VectorModel {
        name: info.name.clone(),
        revision: info.revision.clone(),
        dim: info.dim,
    }
}

#[derive(Clone)]
pub struct EmbeddingWorker {
    store: Arc<dyn Store>,
    embedder: Arc<dyn Embedder>,
    model: VectorModel,
    wake: Arc<Notify>,
}

impl EmbeddingWorker {
    pub fn new(store: Arc<dyn Store>, embedder: Arc<dyn Embedder>) -> Self {
        let model = vector_model(embedder.as_ref());
        Self {
            store,
            embedder,
            model,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the worker that new memories may be waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Queues every memory whose vector is missing or from another model (a model change re-embeds
    /// everything in the background). Call once before `run`.
    pub async fn enqueue_stale(&self) -> Result<u64, StoreError> {
        let queued = self.store.enqueue_stale_embeddings(&self.model).await?;
        if queued > 0 {
            tracing::info!(
                queued,
                model = %self.model.name,
                "memories queued for embedding"
            );
        }
        Ok(queued)
    }

    pub async fn run(self) {
        if let Err(error) = self.enqueue_stale().await {
            tracing::warn!(%error, "cannot queue memories for embedding");
        }
        loop {
            let done = self.step().await;
            if done < BATCH as usize {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Embeds everything due now; returns how many memories were handled. For tools and tests.
    pub async fn drain(&self) -> usize {
        let mut total = 0;
        loop {
            let done = self.step().await;
            if done == 0 {
                return total;
            }
            total += done;
        }
    }

    /// One batch: returns how many jobs it took (0 when nothing is due or the store failed).
    async fn step(&self) -> usize {
        let jobs = match self.store.embedding_backlog(Timestamp::now(), BATCH).await {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "cannot read the embedding queue");
                return 0;
            }
        };
        if jobs.is_empty() {
            return 0;
        }
        let count = jobs.len();
        let started = Instant::now();
        let results = self.embed_jobs(jobs).await;
        let ready = results
            .iter()
            .filter(|(_, o)| matches!(o, EmbeddingOutcome::Vector(_)))
            .count();
        if let Err(error) = self.store.save_embeddings(&self.model, results).await {
            tracing::warn!(%error, "cannot store embeddings; they will be computed again");
            return 0;
        }
        metrics::counter!("embeddings_total", "outcome" => "ready").increment(ready as u64);
        tracing::debug!(
            count,
            ready,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "embedded a batch"
        );
        count
    }

    async fn embed_jobs(
        &self,
        mut jobs: Vec<EmbeddingJob>,
    ) -> Vec<(EmbeddingJob, EmbeddingOutcome)> {
        jobs.sort_by_key(|j| j.content.len());
        let texts: Vec<String> = jobs.iter().map(|j| j.content.clone()).collect();
        match self.embedder.embed_background(&texts).await {
            Ok(vectors) if vectors.len() == jobs.len() => jobs
                .into_iter()
                .zip(vectors)
                .map(|(job, v)| (job, EmbeddingOutcome::Vector(v)))
                .collect(),
            Ok(vectors) => {
                let error = EmbedError::CountMismatch {
                    expected: jobs.len(),
                    actual: vectors.len(),
                };
                self.fail_all(jobs, &error)
            }
            Err(error) if error.is_transient() || jobs.len() == 1 => self.fail_all(jobs, &error),
            // One bad text should not fail its batch: try each alone.
            Err(_) => {
                let mut out = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let outcome = match self
                        .embedder
                        .embed_background(std::slice::from_ref(&job.content))
                        .await
                    {
                        Ok(mut v) if v.len() == 1 => EmbeddingOutcome::Vector(v.remove(0)),
                        Ok(_) => EmbeddingOutcome::Failed("the embedder returned no vector".into()),
                        Err(error) => outcome_for(&job, &error),
                    };
                    out.push((job, outcome));
                }
                out
            }
        }
    }

    fn fail_all(
        &self,
        jobs: Vec<EmbeddingJob>,
        error: &EmbedError,
    ) -> Vec<(EmbeddingJob, EmbeddingOutcome)> {
        tracing::warn!(%error, count = jobs.len(), "embedding failed");
        jobs.into_iter()
            .map(|job| {
                let outcome = outcome_for(&job, error);
                (job, outcome)
            })
            .collect()
    }
}

fn outcome_for(job: &EmbeddingJob, error: &EmbedError) -> EmbeddingOutcome {
    if error.is_transient() {
        EmbeddingOutcome::Retry(backoff(u32::try_from(job.attempts).unwrap_or(u32::MAX)))
    } else {
        EmbeddingOutcome::Failed(error.to_string())
    }
}

fn backoff(attempt: u32) -> Timestamp {
    let ceiling = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_CAP);
    let wait = rand::rng().random_range(0..=ceiling.as_millis() as i64);
    Timestamp::from_micros(Timestamp::now().as_micros() + wait * 1_000)
}
