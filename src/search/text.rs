//! Full-text ranking of one user's memories, in memory: words folded and stemmed, a posting list per
//! stem, and BM25 computed exactly as SQLite's FTS5 computes it (k1 = 1.2, b = 0.75, the content
//! weighing twice as much as the tags, document length counted over both).
//!
//! Why not FTS5 (or PostgreSQL's tsvector): a question is an OR of its terms, and ranking it scores
//! every matching row. With 100,000 memories a question's terms match ~10,000 of them; FTS5 then takes
//! 15–30 ms, and PostgreSQL more, where walking the same postings here takes a fraction of a
//! millisecond. The index lives beside the user's vectors (`search::index`), is built from the same
//! rows and refreshed with them, and ranks the same way on both backends.

use std::collections::HashMap;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

const K1: f64 = 1.2;
const B: f64 = 0.75;
const CONTENT_WEIGHT: f64 = 1.0;
const TAGS_WEIGHT: f64 = 0.5;

static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// A word as the index keeps it: lower case, without diacritics, stemmed (`Running` → `run`,
/// `Café` → `cafe`).
pub fn stem(word: &str) -> String {
    let folded: String = if word.is_ascii() {
        word.to_ascii_lowercase()
    } else {
        word.nfd()
            .filter(|c| !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .collect()
    };
    ENGLISH.stem(&folded).into_owned()
}

/// Every word of `text` (runs of letters and digits), stemmed, in order.
fn stems(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(stem)
}

/// How often a stem occurs in one document, per column.
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    content: u16,
    tags: u16,
}

/// Postings of a set of documents numbered from 0 in the order they were added.
#[derive(Debug, Default)]
pub struct TextIndex {
    postings: HashMap<Box<str>, Vec<Posting>>,
    /// Tokens per document, content and tags together.
    lengths: Vec<u32>,
    total_tokens: u64,
}

impl TextIndex {
    /// Adds the next document; returns its number.
    pub fn add(&mut self, content: &str, tags: &str) -> u32 {
        let doc = self.lengths.len() as u32;
        let mut counts: HashMap<String, (u16, u16)> = HashMap::new();
        let mut length = 0u32;
        for (text, is_tags) in [(content, false), (tags, true)] {
            for stem in stems(text) {
                length += 1;
                let count = counts.entry(stem).or_default();
                if is_tags {
                    count.1 = count.1.saturating_add(1);
                } else {
                    count.0 = count.0.saturating_add(1);
                }
            }
        }
        for (stem, (content, tags)) in counts {
            let posting = Posting { doc, content, tags };
            match self.postings.get_mut(stem.as_str()) {
                Some(list) => list.push(posting),
                None => {
                    self.postings.insert(stem.into_boxed_str(), vec![posting]);
                }
            }
        }
        self.lengths.push(length);
        self.total_tokens += u64::from(length);
        doc
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn documents_with(&self, stem: &str) -> usize {
        self.postings.get(stem).map_or(0, Vec::len)
    }
}

/// The query's stems, each once.
pub fn query_stems(terms: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for term in terms {
        for s in stems(term) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// BM25 of every document matching any of `stems`, over several indexes searched as one (a user's
/// memories loaded at once and those changed since): index `k`'s document `d` is reported as
/// `offsets[k] + d`. Corpus statistics (document count, average length, documents per term) are those
/// of all indexes together, documents replaced since counted until the next full load, as Lucene
/// counts deleted documents until segments merge. Higher scores are better.
pub fn bm25(indexes: &[(&TextIndex, u32)], stems: &[String]) -> Vec<(u32, f64)> {
    let documents: usize = indexes.iter().map(|(i, _)| i.len()).sum();
    if documents == 0 || stems.is_empty() {
        return Vec::new();
    }
    let total_tokens: u64 = indexes.iter().map(|(i, _)| i.total_tokens).sum();
    let average_length = (total_tokens as f64 / documents as f64).max(1.0);
    let n = documents as f64;
    let mut scores: HashMap<u32, f64> = HashMap::new();
    for stem in stems {
        let hits: usize = indexes.iter().map(|(i, _)| i.documents_with(stem)).sum();
        if hits == 0 {
            continue;
        }
        let hits = hits as f64;
        // FTS5's floor: a term in more than half the documents still counts a little.
        let idf = ((n - hits + 0.5) / (hits + 0.5)).ln().max(1e-6);
        for (index, offset) in indexes {
            let Some(list) = index.postings.get(stem.as_str()) else {
                continue;
            };
            for p in list {
                let frequency =
                    CONTENT_WEIGHT * f64::from(p.content) + TAGS_WEIGHT * f64::from(p.tags);
                let length = f64::from(index.lengths[p.doc as usize]);
                let term = idf * frequency * (K1 + 1.0)
                    / (frequency + K1 * (1.0 - B + B * length / average_length));
                *scores.entry(offset + p.doc).or_default() += term;
            }
        }
    }
    scores.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(docs: &[(&str, &str)]) -> TextIndex {
        let mut index = TextIndex::default();
        for (content, tags) in docs {
            index.add(content, tags);
        }
        index
    }

    fn ranked(indexes: &[(&TextIndex, u32)], query: &[&str]) -> Vec<u32> {
        let terms: Vec<String> = query.iter().map(|s| s.to_string()).collect();
        let mut hits = bm25(indexes, &query_stems(&terms));
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits.into_iter().map(|h| h.0).collect()
    }

    #[test]
    fn stems_fold_case_diacritics_and_endings() {
        assert_eq!(stem("Running"), "run");
        assert_eq!(stem("runs"), "run");
        assert_eq!(stem("Café"), "cafe");
        assert_eq!(stem("naïve"), stem("naive"));
    }

    #[test]
    fn more_and_rarer_terms_rank_first() {
        let index = index(&[
            ("Sam likes tea", ""),
            ("Sam's car is a red car", ""),
            ("Bob's car is blue", ""),
            ("nothing here", ""),
        ]);
        assert_eq!(ranked(&[(&index, 0)], &["sam", "car"]), vec![1, 0, 2]);
        assert!(ranked(&[(&index, 0)], &["zebra"]).is_empty());
    }

    #[test]
    fn content_weighs_more_than_tags() {
        let index = index(&[("a note", "garden"), ("the garden gate", "")]);
        assert_eq!(ranked(&[(&index, 0)], &["garden"]), vec![1, 0]);
    }

    #[test]
    fn several_indexes_rank_as_one() {
        let first = index(&[("red car", ""), ("blue boat", "")]);
        let second = index(&[("red red car", "")]);
        let together = index(&[("red car", ""), ("blue boat", ""), ("red red car", "")]);
        let split = bm25(&[(&first, 0), (&second, 2)], &query_stems(&["red".into()]));
        let whole = bm25(&[(&together, 0)], &query_stems(&["red".into()]));
        let sorted = |mut v: Vec<(u32, f64)>| {
            v.sort_by_key(|h| h.0);
            v
        };
        assert_eq!(sorted(split), sorted(whole));
    }
}
