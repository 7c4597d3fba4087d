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

/// The terms of an expression built by [`fts_query`].
pub fn terms_of_fts(fts: &str) -> Vec<String> {
    fts.split(" OR ")
        .map(|t| t.trim_matches('"').to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a word of a text matches a query term, roughly as the Porter stemmer would (`runs` and
/// `running`): equal, or sharing a prefix of at least three characters that covers all but at most one
/// character of the shorter word.
fn matches_term(word: &str, term: &str) -> bool {
    if word == term {
        return true;
    }
    let common = word
        .chars()
        .zip(term.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let shorter = word.chars().count().min(term.chars().count());
    common >= 3 && common + 1 >= shorter
}

/// Words either side of the best match in a snippet.
const SNIPPET_WORDS: usize = 24;

/// The part of a text that best matches a query, in pieces, so that each surface marks the matched
/// words its own way (`[` `]` in plain text, `<mark>` in HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetParts<'a> {
    /// Whether text was cut before the first piece.
    pub cut_before: bool,
    /// The shown text in order: each piece with whether it is a matched word.
    pub pieces: Vec<(&'a str, bool)>,
    /// Whether text was cut after the last piece.
    pub cut_after: bool,
}

/// The part of `text` with the most query terms, matched words in `[` `]`, `…` where cut.
pub fn snippet(text: &str, terms: &[String]) -> String {
    let parts = snippet_parts(text, terms);
    let mut out = String::new();
    if parts.cut_before {
        out.push('…');
    }
    for (piece, matched) in parts.pieces {
        if matched {
            out.push('[');
            out.push_str(piece);
            out.push(']');
        } else {
            out.push_str(piece);
        }
    }
    if parts.cut_after {
        out.push('…');
    }
    out
}

/// The window of [`snippet`], split into matched words and the text between them.
pub fn snippet_parts<'a>(text: &'a str, terms: &[String]) -> SnippetParts<'a> {
    // Words with their byte ranges.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    if spans.is_empty() {
        let end = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
        return SnippetParts {
            cut_before: false,
            pieces: vec![(&text[..end], false)],
            cut_after: false,
        };
    }
    let matched: Vec<bool> = spans
        .iter()
        .map(|(s, e)| {
            let word = text[*s..*e].to_lowercase();
            terms.iter().any(|t| matches_term(&word, t))
        })
        .collect();
    let (first, last) = if spans.len() <= SNIPPET_WORDS {
        (0, spans.len())
    } else {
        let mut best = (0, 0);
        for begin in 0..=spans.len() - SNIPPET_WORDS {
            let count = matched[begin..begin + SNIPPET_WORDS]
                .iter()
                .filter(|m| **m)
                .count();
            if count > best.1 {
                best = (begin, count);
            }
        }
        (best.0, best.0 + SNIPPET_WORDS)
    };
    let from = if first == 0 { 0 } else { spans[first].0 };
    let to = if last == spans.len() {
        text.len()
    } else {
        spans[last - 1].1
    };
    let mut pieces = Vec::new();
    let mut at = from;
    for i in first..last {
        let (s, e) = spans[i];
        if matched[i] {
            if at < s {
                pieces.push((&text[at..s], false));
            }
            pieces.push((&text[s..e], true));
            at = e;
        }
    }
    if at < to {
        pieces.push((&text[at..to], false));
    }
    SnippetParts {
        cut_before: from > 0,
        pieces,
        cut_after: to < text.len(),
    }
}

/// One to three capitalised words of letters (`Sam`, `Mary Ann`, `O'Neil`): how a speaker is
/// labelled in a memory taken from a conversation.
pub fn looks_like_a_name(text: &str) -> bool {
    let words: Vec<&str> = text.split(' ').collect();
    (1..=3).contains(&words.len())
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars()
                    .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
        })
}

/// The text without the given names (whole words, any case, with a possessive `'s`), so that who
/// is asked about does not dominate a question's embedding; the text unchanged if nothing else would
/// be left.
pub fn without_names(text: &str, names: &[String]) -> String {
    let name_words: Vec<String> = names
        .iter()
        .flat_map(|n| n.split(' ').map(str::to_lowercase))
        .collect();
    if name_words.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| c.is_alphanumeric())
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if name_words.contains(&word.to_lowercase()) {
            for possessive in ["'s", "’s"] {
                if let Some(after) = rest.strip_prefix(possessive) {
                    rest = after;
                }
            }
        } else {
            out.push_str(word);
        }
    }
    let cleaned = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if words(&cleaned).is_empty() {
        text.to_owned()
    } else {
        cleaned
    }
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

    #[test]
    fn snippets_mark_matches_and_cut_long_texts() {
        let terms = terms("running car");
        assert_eq!(
            snippet("Sam runs to his car.", &terms),
            "Sam [runs] to his [car]."
        );
        let long = format!(
            "{} the car is red {}",
            "word ".repeat(40),
            "more ".repeat(40)
        );
        let s = snippet(&long, &terms);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("[car]"),
            "{s}"
        );
        assert_eq!(snippet("", &terms), "");
        assert_eq!(terms_of_fts(&fts_query("Sam's car")), vec!["sam", "car"]);
    }

    #[test]
    fn snippet_parts_keep_the_text_and_flag_matches() {
        let parts = snippet_parts("[Sam] runs <fast> to his car.", &terms("running car"));
        assert_eq!(
            parts.pieces,
            vec![
                ("[Sam] ", false),
                ("runs", true),
                (" <fast> to his ", false),
                ("car", true),
                (".", false)
            ]
        );
        assert!(!parts.cut_before && !parts.cut_after);
    }

    #[test]
    fn names_leave_the_question() {
        let names = vec!["Caroline".to_owned(), "Mary Ann".to_owned()];
        assert_eq!(
            without_names("What did Caroline's friend say?", &names),
            "What did friend say?"
        );
        assert_eq!(without_names("caroline", &names), "caroline");
        assert_eq!(
            without_names("Where is Mary Ann now", &names),
            "Where is now"
        );
        assert_eq!(without_names("Nothing here", &[]), "Nothing here");
    }
}
