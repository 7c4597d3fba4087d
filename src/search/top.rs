//! The `k` best of many scored positions, without sorting them all: a search scores every one of a
//! user's memories (100,000 and more) but keeps a few hundred.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A position and its score; the better of two has the higher score, then the lower position (so the
/// order is total and results do not depend on how the work was split).
#[derive(Debug, Clone, Copy)]
struct Scored(usize, f64);

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.1
            .total_cmp(&other.1)
            .then_with(|| other.0.cmp(&self.0))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

/// Keeps the `k` best positions offered to it.
#[derive(Debug, Clone)]
pub struct Best {
    k: usize,
    /// The worst kept on top.
    kept: BinaryHeap<Reverse<Scored>>,
}

impl Best {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            kept: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub fn offer(&mut self, position: usize, score: f64) {
        let entry = Scored(position, score);
        if self.kept.len() < self.k {
            self.kept.push(Reverse(entry));
        } else if self.kept.peek().is_some_and(|worst| entry > worst.0) {
            self.kept.pop();
            self.kept.push(Reverse(entry));
        }
    }

    /// Both parts' best, as one (for work split across threads).
    pub fn merge(mut self, other: Self) -> Self {
        for Reverse(Scored(position, score)) in other.kept {
            self.offer(position, score);
        }
        self
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<(usize, f64)> {
        // Ascending `Reverse` is descending quality.
        self.kept
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse(Scored(position, score))| (position, score))
            .collect()
    }
}

/// The `k` best of `scores`, best first (ties: lower position first).
pub fn best(scores: impl IntoIterator<Item = (usize, f64)>, k: usize) -> Vec<(usize, f64)> {
    let mut best = Best::new(k);
    for (position, score) in scores {
        best.offer(position, score);
    }
    best.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_best_best_first_ties_by_position() {
        let scores = vec![(5, 0.5), (1, 0.9), (7, 0.5), (3, 0.1), (2, 0.9), (9, 0.7)];
        assert_eq!(
            best(scores.clone(), 4),
            vec![(1, 0.9), (2, 0.9), (9, 0.7), (5, 0.5)]
        );
        assert_eq!(best(scores, 100).len(), 6);
    }

    #[test]
    fn merged_parts_equal_one_pass() {
        let scores: Vec<(usize, f64)> =
            (0..1_000).map(|p| (p, ((p * 7919) % 113) as f64)).collect();
        let mut left = Best::new(50);
        let mut right = Best::new(50);
        for &(p, s) in &scores {
            if p % 3 == 0 {
                left.offer(p, s)
            } else {
                right.offer(p, s)
            }
        }
        assert_eq!(left.merge(right).into_sorted(), best(scores.clone(), 50));
        let mut sorted = scores;
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        sorted.truncate(50);
        assert_eq!(best(sorted.clone(), 50), sorted);
    }
}
