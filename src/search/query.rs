//! Turns whatever a person typed into a safe FTS5 expression: words only, each quoted, joined by OR,
//! so a natural-language question matches on any of its terms (BM25 ranks those with more and rarer
//! terms first) and no input can cause a query syntax error.

/// Words that carry no meaning for retrieval. Kept small: a word missing here only costs ranking
/// quality, a word wrongly here can never be searched for.
const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for",
    "from", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i",
    "if", "in", "into", "is", "it", "its", "just", "me", "my", "of", "on", "or", "our", "over",
    "she", "should", "so", "some", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "too", "up", "very", "was", "we", "were", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your", "s", "t", "d", "ll", "re", "ve", "m",
];

/// Longest query, in terms; the rest is ignored.
pub const MAX_TERMS: usize = 32;

pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// Lower-cased words (runs of letters and digits) in order of appearance, without repeats.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if !out.contains(&word) {
            out.push(word);
        }
    }
    out
}

/// The query's meaningful terms; when every word is a stop word, all words (a search for "the who"
/// still finds something).
pub fn terms(text: &str) -> Vec<String> {
    let all = words(text);
    let meaningful: Vec<String> = all.iter().filter(|w| !is_stop_word(w)).cloned().collect();
    let mut chosen = if meaningful.is_empty() {
        all
    } else {
        meaningful
    };
    chosen.truncate(MAX_TERMS);
    chosen
}

/// An FTS5 MATCH expression for the text, or an empty string when it has no words at all.
pub fn fts_query(text: &str) -> String {
    terms(text)
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_become_or_of_quoted_terms() {
        assert_eq!(
            fts_query("What did Sam say about his car?"),
            "\"sam\" OR \"say\" OR \"car\""
        );
    }

    #[test]
    fn syntax_characters_are_dropped() {
        for nasty in [
            "\"",
            "*",
            "-",
            ":",
            "NOT",
            "AND OR",
            "(",
            "a:b",
            "^x",
            "NEAR(a b)",
            "col:term*",
        ] {
            let q = fts_query(nasty);
            assert!(
                q.is_empty()
                    || q.split(" OR ")
                        .all(|t| t.starts_with('"') && t.ends_with('"')),
                "{nasty:?} → {q:?}"
            );
            assert!(
                !q.contains('*') && !q.contains(':') && !q.contains('('),
                "{q}"
            );
        }
        assert_eq!(fts_query("NOT"), "\"not\"");
        assert_eq!(fts_query("  ...  "), "");
    }

    #[test]
    fn only_stop_words_keeps_them() {
        assert_eq!(fts_query("The Who"), "\"the\" OR \"who\"");
    }

    #[test]
    fn unicode_words_survive() {
        assert_eq!(
            fts_query("Café Straße 東京"),
            "\"café\" OR \"straße\" OR \"東京\""
        );
        assert_eq!(terms("sam's car car CAR"), vec!["sam", "car"]);
    }
}
