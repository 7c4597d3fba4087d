//! What search holds in memory of each user: every active memory's words (`search::text`), its vector
//! when it has one, and its place in its conversation.
//!
//! A user is loaded from the store once, then kept up to date from the store's change log: memories
//! changed since the load are held apart (`recent`), the loaded copies they replace are hidden, and
//! once too many have changed the user is loaded again. A search therefore costs a generation check
//! plus, after writes, reading just the memories that changed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use super::text::{self, TextIndex};
use crate::domain::{MemoryId, Timestamp, Uid};
use crate::store::{SearchableMemory, Store, StoreError, VectorModel};

/// Users whose index stays in memory at once (least recently used leave first).
const CACHED_USERS: usize = 64;
/// Changed memories held apart before the user is loaded again.
const MAX_RECENT: usize = 2_000;
/// A name that begins this many of a user's memories (`Sam: …`) is a speaker.
const SPEAKER_MIN_MEMORIES: usize = 3;

/// No neighbour, no speaker.
pub const NONE: u32 = u32::MAX;

/// A unit vector in 8 bits per number: `scale · codes[i]` approximates the `i`-th number.
///
/// Why: the cosine of a question with every memory reads all of the user's vectors, and at 100,000
/// memories of 384 numbers that read (150 MB as f32) is what the search waits for; a quarter of it
/// takes a quarter of the time. The cosines it gives differ from exact ones by about 0.001, far below
/// the differences that order memories (LoCoMo recall is unchanged; see the README).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    pub scale: f32,
    pub codes: Vec<i8>,
}

impl Quantized {
    pub fn new(vector: &[f32]) -> Self {
        let largest = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
        if largest == 0.0 || !largest.is_finite() {
            return Self {
                scale: 0.0,
                codes: vec![0; vector.len()],
            };
        }
        let scale = largest / 127.0;
        Self {
            scale,
            codes: vector
                .iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
                .collect(),
        }
    }
}

/// Vectors one task of the cosine scan scores: enough that scheduling costs nothing, few enough
/// that both cores share the work.
const VECTORS_PER_TASK: usize = 2_048;

/// Runs `f` compiled for AVX2 when the CPU has it (checked at run time, so one binary runs
/// everywhere): the cosine scan then does twice the products per instruction of baseline x86-64.
fn with_wide_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        return pulp::Simd::vectorize(simd, f);
    }
    f()
}

/// Dot product of 8-bit codes, products summed in sixteen independent lanes so that the compiler
/// vectorises it (each product fits in 16 bits: |127 · 127| < 2¹⁵). Always inlined, so that it is
/// compiled for the instruction set its caller was (see [`with_wide_simd`]).
#[inline(always)]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
    }
    let tail: i32 = ra
        .iter()
        .zip(rb)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    acc.iter().sum::<i32>() + tail
}

/// The speaker label of a memory (`Sam` in `Sam: …`), when it looks like a name.
fn speaker_label(content: &str) -> Option<String> {
    let (prefix, _) = content.split_once(':')?;
    (1..=40)
        .contains(&prefix.chars().count())
        .then_some(prefix)
        .filter(|p| super::query::looks_like_a_name(p))
        .map(str::to_owned)
}

/// Memories read together; position `i` is the `i`-th.
#[derive(Debug, Default)]
struct Segment {
    ids: Vec<MemoryId>,
    conversations: Vec<Option<String>>,
    occurred_at: Vec<Timestamp>,
    created_at: Vec<Timestamp>,
    labels: Vec<Option<String>>,
    has_vector: Vec<bool>,
    dim: usize,
    /// `dim` codes per memory (see [`Quantized`]); zeros for one without a vector.
    codes: Vec<i8>,
    scales: Vec<f32>,
    text: TextIndex,
}

impl Segment {
    fn new(rows: impl IntoIterator<Item = SearchableMemory>, dim: usize) -> Self {
        let mut segment = Self {
            dim,
            ..Self::default()
        };
        for row in rows {
            segment.text.add(&row.content, &row.tags);
            segment.labels.push(speaker_label(&row.content));
            segment.ids.push(row.id);
            segment.conversations.push(row.conversation_id);
            segment.occurred_at.push(row.occurred_at);
            segment.created_at.push(row.created_at);
            match row.vector.filter(|v| v.len() == dim && dim > 0) {
                Some(v) => {
                    let q = Quantized::new(&v);
                    segment.codes.extend_from_slice(&q.codes);
                    segment.scales.push(q.scale);
                    segment.has_vector.push(true);
                }
                None => {
                    segment.codes.extend(std::iter::repeat_n(0, dim));
                    segment.scales.push(0.0);
                    segment.has_vector.push(false);
                }
            }
        }
        segment
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Order within a conversation: when it happened, when it was written, then id.
    fn order_key(&self, i: usize) -> (Timestamp, Timestamp, MemoryId) {
        (self.occurred_at[i], self.created_at[i], self.ids[i])
    }
}

/// A user as loaded from the store at once, ordered by conversation and time (the store's order).
#[derive(Debug)]
struct Loaded {
    memories: Segment,
    position: HashMap<MemoryId, u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Where each conversation's memories sit (they are contiguous).
    conversations: HashMap<String, std::ops::Range<u32>>,
    /// The distinct speaker labels, how many memories begin with each, and each memory's label (an
    /// index into them, or `NONE`): a refresh then counts speakers without walking every memory.
    label_names: Vec<String>,
    label_counts: Vec<usize>,
    label_of: Vec<u32>,
}

impl Loaded {
    fn new(rows: Vec<SearchableMemory>, dim: usize) -> Self {
        let memories = Segment::new(rows, dim);
        let n = memories.len();
        let (mut prev, mut next) = (vec![NONE; n], vec![NONE; n]);
        let mut conversations: HashMap<String, std::ops::Range<u32>> = HashMap::new();
        for i in 0..n {
            let Some(c) = &memories.conversations[i] else {
                continue;
            };
            if i > 0 && memories.conversations[i - 1].as_ref() == Some(c) {
                prev[i] = (i - 1) as u32;
                next[i - 1] = i as u32;
            }
            conversations
                .entry(c.clone())
                .and_modify(|r| r.end = i as u32 + 1)
                .or_insert(i as u32..i as u32 + 1);
        }
        let position = memories
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let (mut label_names, mut label_counts) = (Vec::new(), Vec::new());
        let mut label_ids: HashMap<&str, u32> = HashMap::new();
        let label_of = memories
            .labels
            .iter()
            .map(|label| {
                let Some(label) = label else { return NONE };
                let id = *label_ids.entry(label).or_insert_with(|| {
                    label_names.push(label.clone());
                    label_counts.push(0);
                    (label_names.len() - 1) as u32
                });
                label_counts[id as usize] += 1;
                id
            })
            .collect();
        Self {
            memories,
            position,
            prev,
            next,
            conversations,
            label_names,
            label_counts,
            label_of,
        }
    }
}

/// One user's searchable memories at one generation. Positions `0..loaded` are the loaded memories
/// (some hidden: changed since), the rest the recently changed ones.
#[derive(Debug)]
pub struct UserIndex {
    loaded: Arc<Loaded>,
    recent: Segment,
    recent_position: HashMap<MemoryId, u32>,
    /// Loaded positions replaced or removed since the load (empty when none are).
    hidden: Vec<bool>,
    /// Neighbours of positions in conversations touched since the load.
    links: HashMap<u32, [u32; 2]>,
    speakers: Vec<String>,
    /// The speaker (index into `speakers`, or `NONE`) of each loaded label, and of each recent memory.
    loaded_speaker: Vec<u32>,
    recent_speaker: Vec<u32>,
}

impl UserIndex {
    fn new(loaded: Arc<Loaded>, changed: &HashMap<MemoryId, Option<SearchableMemory>>) -> Self {
        let base = &loaded.memories;
        let n = base.len();
        let mut hidden = Vec::new();
        let mut hidden_positions = Vec::new();
        let mut touched: HashSet<String> = HashSet::new();
        for id in changed.keys() {
            if let Some(&p) = loaded.position.get(id) {
                if hidden.is_empty() {
                    hidden = vec![false; n];
                }
                hidden[p as usize] = true;
                hidden_positions.push(p as usize);
                touched.extend(base.conversations[p as usize].clone());
            }
        }
        let mut rows: Vec<SearchableMemory> = changed.values().flatten().cloned().collect();
        rows.sort_by(|a, b| a.conversation_order().cmp(&b.conversation_order()));
        let recent = Segment::new(rows, base.dim);
        touched.extend(recent.conversations.iter().flatten().cloned());
        let recent_position = recent
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, (n + i) as u32))
            .collect();
        let mut index = Self {
            loaded: Arc::clone(&loaded),
            recent,
            recent_position,
            hidden,
            links: HashMap::new(),
            speakers: Vec::new(),
            loaded_speaker: Vec::new(),
            recent_speaker: Vec::new(),
        };
        index.link(&touched);
        index.find_speakers(&hidden_positions);
        index
    }

    /// Neighbours within each touched conversation, in order, over loaded and recent memories.
    fn link(&mut self, touched: &HashSet<String>) {
        let n = self.loaded.memories.len();
        let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
        for c in touched {
            let list = members.entry(c.as_str()).or_default();
            if let Some(range) = self.loaded.conversations.get(c) {
                list.extend(
                    (range.start as usize..range.end as usize).filter(|&p| !self.is_hidden(p)),
                );
            }
        }
        for (i, c) in self.recent.conversations.iter().enumerate() {
            if let Some(list) = c.as_deref().and_then(|c| members.get_mut(c)) {
                list.push(n + i);
            }
        }
        let mut links = HashMap::new();
        for list in members.values_mut() {
            list.sort_by_key(|&p| self.segment_of(p).0.order_key(self.segment_of(p).1));
            for (k, &p) in list.iter().enumerate() {
                let prev = k.checked_sub(1).map_or(NONE, |k| list[k] as u32);
                let next = list.get(k + 1).map_or(NONE, |&q| q as u32);
                links.insert(p as u32, [prev, next]);
            }
        }
        self.links = links;
    }

    /// Names that begin at least three live memories, and each position's speaker among them:
    /// the loaded counts, less the hidden memories, plus the recent ones.
    fn find_speakers(&mut self, hidden_positions: &[usize]) {
        let loaded = &self.loaded;
        let mut counts: HashMap<&str, usize> = loaded
            .label_names
            .iter()
            .zip(&loaded.label_counts)
            .map(|(name, &n)| (name.as_str(), n))
            .collect();
        for &p in hidden_positions {
            if let Some(name) = loaded.label_names.get(loaded.label_of[p] as usize) {
                counts.entry(name).and_modify(|n| *n -= 1);
            }
        }
        for label in self.recent.labels.iter().flatten() {
            *counts.entry(label).or_default() += 1;
        }
        let mut speakers: Vec<String> = counts
            .into_iter()
            .filter(|(_, n)| *n >= SPEAKER_MIN_MEMORIES)
            .map(|(name, _)| name.to_owned())
            .collect();
        speakers.sort();
        let speaker = |label: Option<&String>| {
            label
                .and_then(|l| speakers.binary_search(l).ok())
                .map_or(NONE, |s| s as u32)
        };
        self.loaded_speaker = loaded
            .label_names
            .iter()
            .map(|l| speaker(Some(l)))
            .collect();
        self.recent_speaker = self
            .recent
            .labels
            .iter()
            .map(|l| speaker(l.as_ref()))
            .collect();
        self.speakers = speakers;
    }

    fn segment_of(&self, p: usize) -> (&Segment, usize) {
        let n = self.loaded.memories.len();
        if p < n {
            (&self.loaded.memories, p)
        } else {
            (&self.recent, p - n)
        }
    }

    fn is_hidden(&self, p: usize) -> bool {
        self.hidden.get(p).copied().unwrap_or(false)
    }

    /// Positions, live or not: `0..len()`.
    pub fn len(&self) -> usize {
        self.loaded.memories.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the position holds a current memory (not one replaced since the load).
    pub fn is_live(&self, p: usize) -> bool {
        !self.is_hidden(p)
    }

    pub fn has_vector(&self, p: usize) -> bool {
        let (segment, i) = self.segment_of(p);
        segment.has_vector[i] && self.is_live(p)
    }

    pub fn id(&self, p: usize) -> MemoryId {
        let (segment, i) = self.segment_of(p);
        segment.ids[i]
    }

    pub fn occurred_at(&self, p: usize) -> Timestamp {
        let (segment, i) = self.segment_of(p);
        segment.occurred_at[i]
    }

    /// Where a live memory sits.
    pub fn position(&self, id: &MemoryId) -> Option<usize> {
        if let Some(&p) = self.recent_position.get(id) {
            return Some(p as usize);
        }
        let p = *self.loaded.position.get(id)? as usize;
        self.is_live(p).then_some(p)
    }

    /// Names that begin at least three of the user's memories (`Sam: …`), sorted.
    pub fn speakers(&self) -> &[String] {
        &self.speakers
    }

    /// The position's speaker as an index into [`Self::speakers`], or [`NONE`].
    pub fn speaker_of(&self, p: usize) -> u32 {
        let n = self.loaded.memories.len();
        if p >= n {
            return self.recent_speaker[p - n];
        }
        let label = self.loaded.label_of[p];
        if label == NONE || !self.is_live(p) {
            return NONE;
        }
        self.loaded_speaker[label as usize]
    }

    /// The memories just before and after, in the same conversation.
    pub fn neighbours(&self, p: usize) -> [Option<usize>; 2] {
        let [prev, next] = match self.links.get(&(p as u32)) {
            Some(link) => *link,
            None if p < self.loaded.memories.len() => [self.loaded.prev[p], self.loaded.next[p]],
            None => [NONE, NONE],
        };
        [prev, next].map(|n| (n != NONE).then_some(n as usize))
    }

    /// Cosine similarity of every position's vector with `query` (unit vectors: a dot product, of
    /// their 8-bit forms); NaN where there is no live vector.
    pub fn cosines(&self, query: &[f32]) -> Vec<f32> {
        let dim = self.loaded.memories.dim;
        if dim == 0 || query.len() != dim {
            return Vec::new();
        }
        let query = Quantized::new(query);
        let mut out = vec![f32::NAN; self.len()];
        let (loaded, recent) = out.split_at_mut(self.loaded.memories.len());
        for (segment, out) in [(&self.loaded.memories, loaded), (&self.recent, recent)] {
            // On both cores: at 100,000 memories this reads 38 MB of codes.
            out.par_chunks_mut(VECTORS_PER_TASK)
                .enumerate()
                .for_each(|(task, out)| {
                    let first = task * VECTORS_PER_TASK;
                    with_wide_simd(|| {
                        for (i, cosine) in out.iter_mut().enumerate() {
                            let v = first + i;
                            if segment.has_vector[v] {
                                let codes = &segment.codes[v * dim..(v + 1) * dim];
                                *cosine = query.scale
                                    * segment.scales[v]
                                    * dot_i8(codes, &query.codes) as f32;
                            }
                        }
                    })
                });
        }
        for (p, cosine) in out.iter_mut().enumerate() {
            if self.is_hidden(p) {
                *cosine = f32::NAN;
            }
        }
        out
    }

    /// BM25 of the live memories matching any of the stems (`search::text`).
    pub fn text_scores(&self, stems: &[String]) -> Vec<(usize, f64)> {
        let n = self.loaded.memories.len() as u32;
        text::bm25(
            &[(&self.loaded.memories.text, 0), (&self.recent.text, n)],
            stems,
        )
        .into_iter()
        .map(|(p, score)| (p as usize, score))
        .filter(|&(p, _)| self.is_live(p))
        .collect()
    }
}

struct Entry {
    generation: i64,
    loaded: Option<Arc<Loaded>>,
    /// Memories changed since the load: their current row, or `None` when no longer active.
    changed: HashMap<MemoryId, Option<SearchableMemory>>,
    index: Option<Arc<UserIndex>>,
}

/// Each user's index for one model (or none), loaded on first use and followed through the store's
/// change log after.
#[derive(Default)]
pub struct IndexCache {
    #[allow(clippy::type_complexity)]
    entries: Mutex<HashMap<(Uid, String), (Arc<tokio::sync::Mutex<Entry>>, Instant)>>,
}

impl IndexCache {
    pub async fn get(
        &self,
        store: &dyn Store,
        uid: &Uid,
        model: Option<&VectorModel>,
    ) -> Result<Arc<UserIndex>, StoreError> {
        let generation = store.search_generation(uid).await?;
        let key = (
            uid.clone(),
            model.map_or(String::new(), |m| format!("{}\u{0}{}", m.name, m.revision)),
        );
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if !entries.contains_key(&key) && entries.len() >= CACHED_USERS {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
            let (entry, used) = entries.entry(key).or_insert_with(|| {
                let entry = Entry {
                    generation: 0,
                    loaded: None,
                    changed: HashMap::new(),
                    index: None,
                };
                (Arc::new(tokio::sync::Mutex::new(entry)), Instant::now())
            });
            *used = Instant::now();
            Arc::clone(entry)
        };
        // One refresh per user at a time; searches arriving meanwhile wait for it and share it.
        let mut entry = entry.lock().await;
        if let Some(index) = entry
            .index
            .as_ref()
            .filter(|_| entry.generation == generation)
        {
            return Ok(Arc::clone(index));
        }
        let dim = model.map_or(0, |m| m.dim);
        let changes = match &entry.loaded {
            Some(_) => store.search_changes(uid, entry.generation).await?,
            None => None,
        };
        match (changes, entry.loaded.clone()) {
            (Some(ids), Some(loaded)) if entry.changed.len() + ids.len() <= MAX_RECENT => {
                let rows = store.searchable_memories(uid, model, Some(&ids)).await?;
                for id in ids {
                    entry.changed.insert(id, None);
                }
                for row in rows {
                    entry.changed.insert(row.id, Some(row));
                }
                let index = Arc::new(UserIndex::new(loaded, &entry.changed));
                entry.index = Some(Arc::clone(&index));
            }
            _ => {
                let started = Instant::now();
                let rows = store.searchable_memories(uid, model, None).await?;
                let loaded = Arc::new(Loaded::new(rows, dim));
                tracing::debug!(
                    memories = loaded.memories.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "search index loaded"
                );
                entry.changed.clear();
                entry.index = Some(Arc::new(UserIndex::new(
                    Arc::clone(&loaded),
                    &entry.changed,
                )));
                entry.loaded = Some(loaded);
            }
        }
        entry.generation = generation;
        Ok(Arc::clone(entry.index.as_ref().expect("set above")))
    }

    /// Forgets everything (e.g. after the model changed).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        text: &str,
        conversation: Option<&str>,
        at: i64,
        vector: Option<Vec<f32>>,
    ) -> SearchableMemory {
        SearchableMemory {
            id: MemoryId::new(),
            content: text.to_owned(),
            tags: "[]".to_owned(),
            conversation_id: conversation.map(str::to_owned),
            occurred_at: Timestamp::from_micros(at),
            created_at: Timestamp::from_micros(at),
            vector,
        }
    }

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    #[test]
    fn quantized_cosines_stay_within_a_thousandth() {
        for dim in [3, 37, 384] {
            let a = unit((0..dim).map(|i| (i as f32).sin()).collect());
            let b = unit((0..dim).map(|i| (i as f32 * 0.7).cos()).collect());
            let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let (qa, qb) = (Quantized::new(&a), Quantized::new(&b));
            let approx = qa.scale * qb.scale * dot_i8(&qa.codes, &qb.codes) as f32;
            // The error follows the size of the numbers: coarse for a few large ones, about a
            // thousandth for the model's 384 small ones.
            let bound = if dim < 32 { 1e-2 } else { 1e-3 };
            assert!((approx - exact).abs() < bound, "{dim}: {approx} vs {exact}");
        }
        assert_eq!(Quantized::new(&[0.0, 0.0]).scale, 0.0);
        assert_eq!(dot_i8(&[-128, 127], &[-128, 127]), 128 * 128 + 127 * 127);
    }

    #[test]
    fn neighbours_stay_inside_a_conversation() {
        let rows = vec![
            row("x", None, 0, None),
            row("x", Some("a"), 1, None),
            row("x", Some("a"), 2, None),
            row("x", Some("b"), 3, None),
            row("x", None, 4, None),
        ];
        let index = UserIndex::new(Arc::new(Loaded::new(rows, 0)), &HashMap::new());
        assert_eq!(index.neighbours(0), [None, None]);
        assert_eq!(index.neighbours(1), [None, Some(2)]);
        assert_eq!(index.neighbours(2), [Some(1), None]);
        assert_eq!(index.neighbours(3), [None, None]);
        assert_eq!(index.neighbours(4), [None, None]);
    }

    #[test]
    fn changes_replace_hide_and_relink() {
        let rows = vec![
            row("first tea", Some("a"), 1, Some(vec![1.0, 0.0])),
            row("second tea", Some("a"), 3, Some(vec![0.0, 1.0])),
            row("third tea", Some("a"), 5, None),
        ];
        let (first, second, third) = (rows[0].id, rows[1].id, rows[2].id);
        let loaded = Arc::new(Loaded::new(rows.clone(), 2));
        let mut changed = HashMap::new();
        // The second is deleted, the third edited, a new one written between the first two.
        changed.insert(second, None);
        let mut edited = rows[2].clone();
        edited.content = "third coffee".into();
        changed.insert(third, Some(edited));
        let between = row("between", Some("a"), 2, Some(vec![0.6, 0.8]));
        changed.insert(between.id, Some(between.clone()));
        let index = UserIndex::new(loaded, &changed);

        assert_eq!(index.position(&second), None);
        let (p_first, p_between, p_third) = (
            index.position(&first).unwrap(),
            index.position(&between.id).unwrap(),
            index.position(&third).unwrap(),
        );
        assert_eq!(index.neighbours(p_first), [None, Some(p_between)]);
        assert_eq!(index.neighbours(p_between), [Some(p_first), Some(p_third)]);
        assert_eq!(index.neighbours(p_third), [Some(p_between), None]);

        let tea: Vec<MemoryId> = index
            .text_scores(&text::query_stems(&["tea".into()]))
            .into_iter()
            .map(|(p, _)| index.id(p))
            .collect();
        assert_eq!(tea, vec![first]);
        let coffee = index.text_scores(&text::query_stems(&["coffee".into()]));
        assert_eq!(coffee.len(), 1);
        assert_eq!(index.id(coffee[0].0), third);

        let cosines = index.cosines(&[1.0, 0.0]);
        let live: Vec<usize> = (0..index.len()).filter(|&p| !cosines[p].is_nan()).collect();
        assert_eq!(live, vec![p_first, p_between]);
    }

    #[test]
    fn speakers_are_names_that_begin_three_memories() {
        let rows = vec![
            row("Sam: hello", None, 0, None),
            row("Sam: again", None, 1, None),
            row("Sam: and again", None, 2, None),
            row("Ana: once", None, 3, None),
        ];
        let loaded = Arc::new(Loaded::new(rows.clone(), 0));
        let index = UserIndex::new(Arc::clone(&loaded), &HashMap::new());
        assert_eq!(index.speakers(), ["Sam".to_owned()]);
        assert_eq!(index.speaker_of(0), 0);
        assert_eq!(index.speaker_of(3), NONE);

        // One of Sam's is deleted and Ana speaks twice more: Ana is a speaker now, Sam no longer.
        let mut changed = HashMap::new();
        changed.insert(rows[0].id, None);
        for (i, text) in ["Ana: twice", "Ana: thrice"].into_iter().enumerate() {
            let r = row(text, None, 10 + i as i64, None);
            changed.insert(r.id, Some(r));
        }
        let index = UserIndex::new(loaded, &changed);
        assert_eq!(index.speakers(), ["Ana".to_owned()]);
        let ana = index.position(&rows[3].id).unwrap();
        assert_eq!(index.speaker_of(ana), 0);
        assert_eq!(index.speaker_of(index.position(&rows[1].id).unwrap()), NONE);
        assert_eq!(index.speaker_of(index.len() - 1), 0);
    }
}
