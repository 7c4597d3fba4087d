//! Exact vector search: cosine (a dot product, vectors being unit length) over one user's vectors held
//! contiguously in memory, cached per user and reloaded when the store says they changed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::domain::{MemoryId, Uid};
use crate::store::{Store, StoreError, StoredVectors, VectorModel};

/// Users whose vectors stay in memory at once (least recently used leave first).
const CACHED_USERS: usize = 64;

/// Dot product with eight independent accumulators so the compiler vectorises it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// The `k` best (index, cosine) pairs, best first, among the vectors `allowed` lets through.
pub fn top_k(
    vectors: &StoredVectors,
    query: &[f32],
    allowed: Option<&HashSet<MemoryId>>,
    k: usize,
) -> Vec<(usize, f32)> {
    if vectors.dim == 0 || query.len() != vectors.dim || k == 0 {
        return Vec::new();
    }
    let mut scored: Vec<(usize, f32)> = vectors
        .data
        .chunks_exact(vectors.dim)
        .enumerate()
        .filter(|(i, _)| allowed.is_none_or(|a| a.contains(&vectors.ids[*i])))
        .map(|(i, v)| (i, dot(v, query)))
        .collect();
    let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, by_score);
        scored.truncate(k);
    }
    scored.sort_unstable_by(by_score);
    scored
}

/// No neighbour.
pub const NONE: u32 = u32::MAX;

/// A user's vectors with, for each, its neighbours in the same conversation (the memories just before
/// and after it), and where each memory sits.
#[derive(Debug, Default)]
pub struct UserIndex {
    pub vectors: StoredVectors,
    pub prev: Vec<u32>,
    pub next: Vec<u32>,
    pub position: HashMap<MemoryId, u32>,
    /// Each memory's speaker as an index into `vectors.speakers`, or `NONE`.
    pub speaker_of: Vec<u32>,
}

impl UserIndex {
    pub fn new(vectors: StoredVectors) -> Self {
        let n = vectors.ids.len();
        let (mut prev, mut next) = (vec![NONE; n], vec![NONE; n]);
        for i in 1..n {
            let (a, b) = (
                &vectors.conversation_ids[i - 1],
                &vectors.conversation_ids[i],
            );
            if a.is_some() && a == b {
                prev[i] = (i - 1) as u32;
                next[i - 1] = i as u32;
            }
        }
        let position = vectors
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let speaker_of = vectors
            .speaker_labels
            .iter()
            .map(|label| {
                label
                    .as_ref()
                    .and_then(|l| vectors.speakers.iter().position(|s| s == l))
                    .map_or(NONE, |p| p as u32)
            })
            .collect();
        Self {
            vectors,
            prev,
            next,
            position,
            speaker_of,
        }
    }

    pub fn len(&self) -> usize {
        self.vectors.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.ids.is_empty()
    }

    /// Cosine similarity of every vector with `query`.
    pub fn cosines(&self, query: &[f32]) -> Vec<f32> {
        if self.vectors.dim == 0 || query.len() != self.vectors.dim {
            return Vec::new();
        }
        self.vectors
            .data
            .chunks_exact(self.vectors.dim)
            .map(|v| dot(v, query))
            .collect()
    }

    pub fn neighbours(&self, i: usize) -> [Option<usize>; 2] {
        [self.prev[i], self.next[i]].map(|n| (n != NONE).then_some(n as usize))
    }
}

struct Entry {
    generation: i64,
    index: Arc<UserIndex>,
    used: Instant,
}

/// Per-user vectors of one model, loaded from the store on first use and again after any change.
#[derive(Default)]
pub struct VectorCache {
    entries: Mutex<HashMap<(Uid, String), Entry>>,
}

impl VectorCache {
    pub async fn get(
        &self,
        store: &dyn Store,
        uid: &Uid,
        model: &VectorModel,
    ) -> Result<Arc<UserIndex>, StoreError> {
        let generation = store.search_generation(uid).await?;
        let key = (
            uid.clone(),
            format!("{}\u{0}{}", model.name, model.revision),
        );
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = entries.get_mut(&key)
                && entry.generation == generation
            {
                entry.used = Instant::now();
                return Ok(Arc::clone(&entry.index));
            }
        }
        let index = Arc::new(UserIndex::new(store.load_vectors(uid, model).await?));
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHED_USERS && !entries.contains_key(&key) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key,
            Entry {
                generation,
                index: Arc::clone(&index),
                used: Instant::now(),
            },
        );
        Ok(index)
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
    use crate::domain::Timestamp;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn top_k_orders_and_filters() {
        let ids: Vec<MemoryId> = (0..4).map(|_| MemoryId::new()).collect();
        let vectors = StoredVectors {
            ids: ids.clone(),
            conversation_ids: vec![None; 4],
            speakers: Vec::new(),
            speaker_labels: vec![None; 4],
            occurred_at: vec![Timestamp::from_micros(0); 4],
            dim: 2,
            data: vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0],
        };
        let best = top_k(&vectors, &[1.0, 0.0], None, 2);
        assert_eq!(best.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 2]);
        let allowed: HashSet<MemoryId> = [ids[1], ids[3]].into_iter().collect();
        let best = top_k(&vectors, &[1.0, 0.0], Some(&allowed), 5);
        assert_eq!(best.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn neighbours_stay_inside_a_conversation() {
        let ids: Vec<MemoryId> = (0..5).map(|_| MemoryId::new()).collect();
        let c = |s: &str| Some(s.to_owned());
        let index = UserIndex::new(StoredVectors {
            ids,
            conversation_ids: vec![None, c("a"), c("a"), c("b"), None],
            speakers: Vec::new(),
            speaker_labels: vec![None; 5],
            occurred_at: vec![Timestamp::from_micros(0); 5],
            dim: 1,
            data: vec![1.0; 5],
        });
        assert_eq!(index.neighbours(0), [None, None]);
        assert_eq!(index.neighbours(1), [None, Some(2)]);
        assert_eq!(index.neighbours(2), [Some(1), None]);
        assert_eq!(index.neighbours(3), [None, None]);
        assert_eq!(index.neighbours(4), [None, None]);
    }
}
