//! The one search function every surface calls (HTTP, CLI, evaluation, later MCP and the
//! Omi-compatible API): full text, vectors, and their fusion.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use utoipa::ToSchema;

use super::embed::{self, Embedder, EmbeddingSettings};
use super::query;
use super::vectors::{VectorCache, top_k};
use super::worker::{EmbeddingWorker, vector_model};
use crate::domain::{Memory, MemoryId, Uid};
use crate::store::{ConversationHit, SearchFilter, Store, StoreError, VectorModel};

/// Reciprocal rank fusion constant (Cormack et al.): `score = Σ 1 / (K + rank)`.
pub const RRF_K: f64 = 60.0;
/// How deep each signal is read before fusing.
const MIN_DEPTH: usize = 100;
pub const MAX_LIMIT: usize = 100;
const SNIPPET_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// BM25 full text only.
    Text,
    /// Embedding cosine only.
    Semantic,
    /// Both, fused (default).
    #[default]
    Hybrid,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Semantic => "semantic",
            Self::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "semantic" => Ok(Self::Semantic),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "{other:?} is not a mode; use text, semantic or hybrid"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub mode: Mode,
    pub limit: usize,
    pub filter: SearchFilter,
}

/// One signal's opinion of a hit: its 1-based rank in that signal's list and its raw score (BM25,
/// higher is better; or cosine similarity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Signal {
    pub rank: usize,
    pub score: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Signals {
    pub text: Option<Signal>,
    pub semantic: Option<Signal>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    pub memory: Memory,
    /// The matching part of the content, matched words in `[` `]` (text matches), or its beginning.
    pub snippet: String,
    /// Why it matched.
    pub signals: Signals,
    /// The score the list is ordered by (the fused score in hybrid mode).
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    pub items: Vec<SearchHit>,
    /// The mode that ran: `text` when semantic search was asked for but is unavailable.
    pub mode: Mode,
    /// Whether an embedding model is loaded.
    pub semantic_available: bool,
    /// Why results are not what was asked for, e.g. no embedding model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// Searches one user's memories and conversations.
pub struct Searcher {
    store: Arc<dyn Store>,
    embedder: Option<Arc<dyn Embedder>>,
    model: Option<VectorModel>,
    unavailable: Option<String>,
    cache: VectorCache,
    worker: Option<EmbeddingWorker>,
}

impl Searcher {
    /// `embedder` is the loaded model, or why there is none (then search runs on text alone).
    pub fn new(store: Arc<dyn Store>, embedder: Result<Arc<dyn Embedder>, String>) -> Self {
        match embedder {
            Ok(embedder) => Self {
                model: Some(vector_model(embedder.as_ref())),
                worker: Some(EmbeddingWorker::new(
                    Arc::clone(&store),
                    Arc::clone(&embedder),
                )),
                embedder: Some(embedder),
                unavailable: None,
                cache: VectorCache::default(),
                store,
            },
            Err(reason) => Self {
                store,
                embedder: None,
                model: None,
                unavailable: Some(reason),
                cache: VectorCache::default(),
                worker: None,
            },
        }
    }

    /// Loads the configured embedder; when that fails, logs why and searches text only.
    pub async fn from_settings(store: Arc<dyn Store>, settings: &EmbeddingSettings) -> Self {
        let embedder = match embed::from_settings(settings).await {
            Ok(embedder) => {
                let info = embedder.model();
                tracing::info!(model = %info.name, dim = info.dim, "embedding model loaded; semantic search on");
                Ok(embedder)
            }
            Err(error) => {
                tracing::warn!(%error, "no embedding model: search runs on full text alone until one is available");
                Err(error.to_string())
            }
        };
        Self::new(store, embedder)
    }

    pub fn semantic_available(&self) -> bool {
        self.embedder.is_some()
    }

    pub fn model(&self) -> Option<&VectorModel> {
        self.model.as_ref()
    }

    /// The background embedding worker, when a model is loaded.
    pub fn worker(&self) -> Option<&EmbeddingWorker> {
        self.worker.as_ref()
    }

    /// Tells the embedding worker that memories were written.
    pub fn wake(&self) {
        if let Some(worker) = &self.worker {
            worker.wake();
        }
    }

    pub async fn search_memories(
        &self,
        uid: &Uid,
        request: &SearchRequest,
    ) -> Result<SearchResults, StoreError> {
        let limit = request.limit.clamp(1, MAX_LIMIT);
        let depth = (limit * 2).max(MIN_DEPTH);
        let mut notice = None;
        let mut mode = request.mode;
        // The query vector, when semantic ranking is wanted and possible.
        let mut query_vector = None;
        if mode != Mode::Text {
            match &self.embedder {
                None => {
                    notice = Some(format!(
                        "semantic search unavailable ({}); results are full-text only",
                        self.unavailable.as_deref().unwrap_or("no embedding model")
                    ));
                    mode = Mode::Text;
                }
                Some(embedder) => {
                    match embedder.embed(std::slice::from_ref(&request.query)).await {
                        Ok(mut v) if v.len() == 1 => query_vector = Some(v.remove(0)),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "cannot embed the query; full text only");
                            notice = Some(format!(
                                "semantic search failed ({error}); results are full-text only"
                            ));
                            mode = Mode::Text;
                        }
                    }
                }
            }
            if query_vector.is_none() && mode != Mode::Text {
                mode = Mode::Text;
            }
        }

        let text_hits = if mode == Mode::Semantic {
            Vec::new()
        } else {
            let fts = query::fts_query(&request.query);
            self.store
                .search_memories_text(uid, &fts, &request.filter, depth as u32)
                .await?
        };
        let semantic_hits: Vec<(MemoryId, f32)> = match (&query_vector, &self.model) {
            (Some(q), Some(model)) => {
                let vectors = self.cache.get(self.store.as_ref(), uid, model).await?;
                let allowed: Option<HashSet<MemoryId>> = if request.filter.is_empty() {
                    None
                } else {
                    Some(
                        self.store
                            .filtered_memory_ids(uid, &request.filter)
                            .await?
                            .into_iter()
                            .collect(),
                    )
                };
                top_k(&vectors, q, allowed.as_ref(), depth)
                    .into_iter()
                    .map(|(i, score)| (vectors.ids[i], score))
                    .collect()
            }
            _ => Vec::new(),
        };

        // Fuse: every candidate with its per-signal rank and score.
        let mut candidates: HashMap<MemoryId, Signals> = HashMap::new();
        for (rank, hit) in text_hits.iter().enumerate() {
            candidates.entry(hit.memory.id).or_default().text = Some(Signal {
                rank: rank + 1,
                score: hit.score,
            });
        }
        for (rank, (id, score)) in semantic_hits.iter().enumerate() {
            candidates.entry(*id).or_default().semantic = Some(Signal {
                rank: rank + 1,
                score: f64::from(*score),
            });
        }
        let mut ranked: Vec<(MemoryId, Signals, f64)> = candidates
            .into_iter()
            .map(|(id, signals)| {
                let score = match mode {
                    Mode::Text => signals.text.map_or(0.0, |s| s.score),
                    Mode::Semantic => signals.semantic.map_or(0.0, |s| s.score),
                    Mode::Hybrid => rrf(&signals),
                };
                (id, signals, score)
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.2.total_cmp(&a.2)
                .then_with(|| best_rank(&a.1).cmp(&best_rank(&b.1)))
                .then_with(|| a.0.cmp(&b.0))
        });
        ranked.truncate(limit);

        // Memories and snippets: text hits carry theirs; the others are read now.
        let mut from_text: HashMap<MemoryId, (Memory, String)> = text_hits
            .into_iter()
            .map(|h| (h.memory.id, (h.memory, h.snippet)))
            .collect();
        let missing: Vec<MemoryId> = ranked
            .iter()
            .map(|r| r.0)
            .filter(|id| !from_text.contains_key(id))
            .collect();
        let mut read: HashMap<MemoryId, Memory> = self
            .store
            .memories_by_ids(uid, &missing)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let items = ranked
            .into_iter()
            .filter_map(|(id, signals, score)| {
                let (memory, snippet) = match from_text.remove(&id) {
                    Some(found) => found,
                    None => {
                        let memory = read.remove(&id)?;
                        let snippet = lead(memory.content.as_str());
                        (memory, snippet)
                    }
                };
                Some(SearchHit {
                    memory,
                    snippet,
                    signals,
                    score,
                })
            })
            .collect();
        Ok(SearchResults {
            items,
            mode,
            semantic_available: self.semantic_available(),
            notice,
        })
    }

    pub async fn search_conversations(
        &self,
        uid: &Uid,
        text: &str,
        limit: usize,
    ) -> Result<Vec<ConversationHit>, StoreError> {
        let fts = query::fts_query(text);
        self.store
            .search_conversations(uid, &fts, limit.clamp(1, MAX_LIMIT) as u32)
            .await
    }
}

fn rrf(signals: &Signals) -> f64 {
    [signals.text, signals.semantic]
        .iter()
        .flatten()
        .map(|s| 1.0 / (RRF_K + s.rank as f64))
        .sum()
}

fn best_rank(signals: &Signals) -> usize {
    [signals.text, signals.semantic]
        .iter()
        .flatten()
        .map(|s| s.rank)
        .min()
        .unwrap_or(usize::MAX)
}

/// The beginning of a text, cut at a character boundary.
fn lead(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
