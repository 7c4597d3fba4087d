//! The one search function every surface calls (HTTP, CLI, evaluation, later MCP and the
//! Omi-compatible API): full text, vectors, and their fusion.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use utoipa::ToSchema;

use super::dates::{self, DateWindow};
use super::embed::{self, Embedder, EmbeddingSettings};
use super::index::{IndexCache, UserIndex};
use super::top::{Best, best};
use super::worker::{EmbeddingWorker, vector_model};
use super::{query, text};
use crate::domain::{Memory, MemoryId, Timestamp, Uid};
use crate::store::{ConversationHit, SearchFilter, Store, StoreError, VectorModel};
use rayon::prelude::*;

/// Reciprocal rank fusion constant (Cormack et al.): `score = Σ 1 / (K + rank)`.
pub const RRF_K: f64 = 60.0;
/// How deep each signal is read before fusing.
const MIN_DEPTH: usize = 200;
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
    pub tuning: Tuning,
}

/// How the signals are shaped and fused.
///
/// - A memory from a conversation is read with its neighbours (the memories just before and after it
///   in the same conversation): each signal's score becomes `own + context · (prev + next) / 2`. A
///   reply ("yes, I went to the support group") is found through the question it answers.
/// - Hybrid fuses the two signals after normalising each to 0..1 over its candidates:
///   `text_weight · text + (1 − text_weight) · semantic`.
/// - A question that names a date ("on 7 July, 2023", "in December 2023") prefers memories that
///   happened then: their text score is multiplied by `1 + date_boost` and `date_boost` is added to
///   their cosine (see `search::dates`).
///
/// The defaults were chosen by cross-validation across LoCoMo conversations (tuned on some, measured
/// on the others; `angel-memory eval locomo` reruns it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tuning {
    pub text_context: f64,
    pub semantic_context: f64,
    pub text_weight: f64,
    /// Added to the semantic score of what a person named in the question said (their name is kept
    /// out of the question's embedding, so who spoke counts this way).
    pub speaker_bonus: f64,
    /// For memories inside the date a question names.
    #[serde(default)]
    pub date_boost: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        // Chosen on all three LoCoMo files; the cross-validated choices per held-out file were
        // text_context 0.75–1, semantic_context 0.25–0.75, text_weight 0.3–0.4, speaker_bonus 0.2–0.3,
        // date_boost 0.2–0.3.
        Self {
            text_context: 0.75,
            semantic_context: 0.25,
            text_weight: 0.4,
            speaker_bonus: 0.3,
            date_boost: 0.5,
        }
    }
}

/// What both signals found for a query, before fusion: computed once, ranked under any tuning.
pub struct RawSignals {
    /// The user's memories as search holds them; the signals below are by position in it.
    index: Arc<UserIndex>,
    /// BM25 of the best text matches the filter lets through.
    text: Vec<(usize, f64)>,
    /// Cosine of each position's vector with the query (NaN without one; empty without a query
    /// vector).
    cosines: Vec<f32>,
    /// Which positions the filter lets through (`None`: all).
    allowed: Option<Vec<bool>>,
    /// Speakers (indexes into the index's speaker list) the question names.
    named: Vec<u32>,
    /// The time the question names.
    window: Option<DateWindow>,
    /// The mode that can run.
    pub mode: Mode,
    pub notice: Option<String>,
}

impl RawSignals {
    /// The boost a memory that happened `at` gets: `date_boost` inside the named date, else none.
    fn date_boost_at(&self, at: Timestamp, tuning: &Tuning) -> f64 {
        match self.window {
            Some(window) if window.contains(at) => tuning.date_boost,
            _ => 0.0,
        }
    }
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
    cache: IndexCache,
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
                cache: IndexCache::default(),
                store,
            },
            Err(reason) => Self {
                store,
                embedder: None,
                model: None,
                unavailable: Some(reason),
                cache: IndexCache::default(),
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

    /// Both signals for the request's query (over the memories the filter lets through), ready to be
    /// ranked.
    pub async fn signals(
        &self,
        uid: &Uid,
        request: &SearchRequest,
    ) -> Result<RawSignals, StoreError> {
        let depth = (request.limit.clamp(1, MAX_LIMIT) * 2).max(MIN_DEPTH);
        let mut notice = None;
        let mut mode = request.mode;
        let mut query_vector = None;
        let mut named = Vec::new();
        // A named date ranks by when memories happened; its words would only add noise. A query that
        // is nothing but a date keeps its words.
        let dated = dates::named_date(&request.query).filter(|d| !query::words(&d.rest).is_empty());
        let (query_text, window) = match &dated {
            Some(d) => (d.rest.as_str(), Some(d.window)),
            None => (request.query.as_str(), None),
        };
        let index = self
            .cache
            .get(self.store.as_ref(), uid, self.model.as_ref())
            .await?;
        // The question's vector is computed (on the embedder's threads) while the filter and the
        // words are looked at here.
        let embedding = async {
            match &self.embedder {
                Some(embedder) if mode != Mode::Text => {
                    // Names of the people speaking in the user's conversations would pull the
                    // question towards everything that person said; the text signal still uses them.
                    let speakers = index.speakers();
                    let asked: Vec<String> = query::words(query_text);
                    let named: Vec<u32> = speakers
                        .iter()
                        .enumerate()
                        .filter(|(_, name)| {
                            name.split(' ').all(|w| asked.contains(&w.to_lowercase()))
                        })
                        .map(|(i, _)| i as u32)
                        .collect();
                    let semantic_query = query::without_names(query_text, speakers);
                    let vector = embedder.embed(std::slice::from_ref(&semantic_query)).await;
                    Some((named, vector))
                }
                _ => None,
            }
        };
        let words = async {
            let allowed: Option<Vec<bool>> = if request.filter.is_empty() {
                None
            } else {
                let mut allowed = vec![false; index.len()];
                for id in self.store.filtered_memory_ids(uid, &request.filter).await? {
                    if let Some(p) = index.position(&id) {
                        allowed[p] = true;
                    }
                }
                Some(allowed)
            };
            let text = (mode != Mode::Semantic)
                .then(|| text_candidates(&index, query_text, allowed.as_ref(), depth));
            Ok::<_, StoreError>((allowed, text))
        };
        let (embedded, words) = tokio::join!(embedding, words);
        let (allowed, text) = words?;
        match embedded {
            _ if self.embedder.is_none() && mode != Mode::Text => {
                notice = Some(format!(
                    "semantic search unavailable ({}); results are full-text only",
                    self.unavailable.as_deref().unwrap_or("no embedding model")
                ));
                mode = Mode::Text;
            }
            Some((asked_for, Ok(mut v))) if v.len() == 1 => {
                named = asked_for;
                query_vector = Some(v.remove(0));
            }
            Some((_, Ok(_))) => mode = Mode::Text,
            Some((_, Err(error))) => {
                tracing::warn!(%error, "cannot embed the query; full text only");
                notice = Some(format!(
                    "semantic search failed ({error}); results are full-text only"
                ));
                mode = Mode::Text;
            }
            None => {}
        }
        // A semantic search that fell back to words reads them now.
        let text = match text {
            Some(text) => text,
            None if mode != Mode::Semantic => {
                text_candidates(&index, query_text, allowed.as_ref(), depth)
            }
            None => Vec::new(),
        };
        let cosines = match &query_vector {
            Some(q) => index.cosines(q),
            None => Vec::new(),
        };
        Ok(RawSignals {
            index,
            text,
            cosines,
            allowed,
            named,
            window,
            mode,
            notice,
        })
    }

    pub async fn search_memories(
        &self,
        uid: &Uid,
        request: &SearchRequest,
    ) -> Result<SearchResults, StoreError> {
        let limit = request.limit.clamp(1, MAX_LIMIT);
        let raw = self.signals(uid, request).await?;
        let ranked = rank(&raw, raw.mode, &request.tuning, limit);
        let ids: Vec<MemoryId> = ranked.iter().map(|r| r.0).collect();
        let mut read: HashMap<MemoryId, Memory> = self
            .store
            .memories_by_ids(uid, &ids)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let terms = query::terms(&request.query);
        let items = ranked
            .into_iter()
            .filter_map(|(id, signals, score)| {
                let memory = read.remove(&id)?;
                let snippet = match signals.text {
                    Some(_) => query::snippet(memory.content.as_str(), &terms),
                    None => lead(memory.content.as_str()),
                };
                Some(SearchHit {
                    memory,
                    snippet,
                    signals,
                    score,
                })
            })
            .collect();
        let RawSignals { mode, notice, .. } = raw;
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

/// The `depth` best BM25 matches of the text's words among the allowed positions.
fn text_candidates(
    index: &UserIndex,
    text: &str,
    allowed: Option<&Vec<bool>>,
    depth: usize,
) -> Vec<(usize, f64)> {
    let stems = text::query_stems(&query::terms(text));
    let scores = index
        .text_scores(&stems)
        .into_iter()
        .filter(|&(p, _)| allowed.is_none_or(|a| a[p]));
    best(scores, depth)
}

/// `own + context · (prev + next) / 2` for every position that has a score or a neighbour with one.
fn with_context(
    index: &UserIndex,
    own: &HashMap<usize, f64>,
    context: f64,
    allowed: &dyn Fn(usize) -> bool,
) -> Vec<(usize, f64)> {
    let mut positions: HashSet<usize> = own.keys().copied().collect();
    if context > 0.0 {
        for &i in own.keys() {
            positions.extend(index.neighbours(i).into_iter().flatten());
        }
    }
    positions
        .into_iter()
        .filter(|&i| allowed(i))
        .map(|i| {
            let around: f64 = index
                .neighbours(i)
                .into_iter()
                .flatten()
                .filter_map(|n| own.get(&n))
                .sum();
            (
                i,
                own.get(&i).copied().unwrap_or(0.0) + context * around / 2.0,
            )
        })
        .collect()
}

impl RawSignals {
    fn allows(&self, p: usize) -> bool {
        self.allowed.as_ref().is_none_or(|a| a[p])
    }
}

/// The text signal: BM25 with conversation context, best first.
fn text_ranking(raw: &RawSignals, tuning: &Tuning, depth: usize) -> Vec<(usize, f64)> {
    let index = &raw.index;
    let own: HashMap<usize, f64> = raw
        .text
        .iter()
        .map(|&(p, score)| {
            (
                p,
                score * (1.0 + raw.date_boost_at(index.occurred_at(p), tuning)),
            )
        })
        .collect();
    if tuning.text_context <= 0.0 {
        return best(own, depth);
    }
    let allowed = |p: usize| raw.allows(p);
    best(
        with_context(index, &own, tuning.text_context, &allowed),
        depth,
    )
}

/// The semantic signal: cosine with conversation context, best first.
fn semantic_ranking(raw: &RawSignals, tuning: &Tuning, depth: usize) -> Vec<(usize, f64)> {
    let index = &raw.index;
    if raw.cosines.len() != index.len() {
        return Vec::new();
    }
    let cosine = |p: usize| Some(raw.cosines[p]).filter(|c| !c.is_nan() && raw.allows(p));
    let score = |p: usize| {
        let own = cosine(p)?;
        let around: f64 = if tuning.semantic_context > 0.0 {
            index
                .neighbours(p)
                .into_iter()
                .flatten()
                .filter_map(cosine)
                .map(f64::from)
                .sum()
        } else {
            0.0
        };
        let speaker = index.speaker_of(p);
        let bonus = if speaker != super::index::NONE && raw.named.contains(&speaker) {
            tuning.speaker_bonus
        } else {
            0.0
        } + raw.date_boost_at(index.occurred_at(p), tuning);
        Some(f64::from(own) + tuning.semantic_context * around / 2.0 + bonus)
    };
    // Every memory is scored, on both cores; each core keeps only its `depth` best.
    (0..index.len())
        .into_par_iter()
        .with_min_len(4_096)
        .fold(
            || Best::new(depth),
            |mut best, p| {
                if let Some(s) = score(p) {
                    best.offer(p, s);
                }
                best
            },
        )
        .reduce(|| Best::new(depth), Best::merge)
        .into_sorted()
}

/// Ranks the candidates of `raw` in `mode`: the `limit` best, each with its signals and final score.
pub fn rank(
    raw: &RawSignals,
    mode: Mode,
    tuning: &Tuning,
    limit: usize,
) -> Vec<(MemoryId, Signals, f64)> {
    let depth = (limit * 2).max(MIN_DEPTH);
    let text = if mode == Mode::Semantic {
        Vec::new()
    } else {
        text_ranking(raw, tuning, depth)
    };
    let semantic = if mode == Mode::Text {
        Vec::new()
    } else {
        semantic_ranking(raw, tuning, depth)
    };
    let mut candidates: HashMap<usize, Signals> = HashMap::new();
    for (rank, (id, score)) in text.iter().enumerate() {
        candidates.entry(*id).or_default().text = Some(Signal {
            rank: rank + 1,
            score: *score,
        });
    }
    for (rank, (id, score)) in semantic.iter().enumerate() {
        candidates.entry(*id).or_default().semantic = Some(Signal {
            rank: rank + 1,
            score: *score,
        });
    }
    // Normalisation for fusion: text by its best score, semantic min–max over its candidates.
    let text_max = text.first().map_or(1.0, |t| t.1).max(f64::MIN_POSITIVE);
    let (sem_max, sem_min) = (
        semantic.first().map_or(1.0, |s| s.1),
        semantic.last().map_or(0.0, |s| s.1),
    );
    let sem_span = (sem_max - sem_min).max(1e-9);
    let w = tuning.text_weight.clamp(0.0, 1.0);
    let mut ranked: Vec<(usize, Signals, f64)> = candidates
        .into_iter()
        .map(|(p, signals)| {
            let score = match mode {
                Mode::Text => signals.text.map_or(0.0, |s| s.score),
                Mode::Semantic => signals.semantic.map_or(0.0, |s| s.score),
                Mode::Hybrid => {
                    let t = signals.text.map_or(0.0, |s| s.score / text_max);
                    let s = signals
                        .semantic
                        .map_or(0.0, |s| (s.score - sem_min) / sem_span);
                    w * t + (1.0 - w) * s
                }
            };
            (p, signals, score)
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| best_rank(&a.1).cmp(&best_rank(&b.1)))
            .then_with(|| a.0.cmp(&b.0))
    });
    ranked.truncate(limit);
    ranked
        .into_iter()
        .map(|(p, signals, score)| (raw.index.id(p), signals, score))
        .collect()
}

/// Reciprocal rank fusion of the two signals (the classic baseline, kept for comparison).
pub fn rrf(signals: &Signals) -> f64 {
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
