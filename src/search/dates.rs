//! Dates a question names ("what did Maria do on 7 July, 2023?", "… in December 2023?").
//!
//! Memories taken from conversations carry when they happened (`occurred_at`), so a question that
//! names a day, month or year prefers memories from that time. The date's words are then taken out
//! of the query: "May", "7" and "2023" match nothing useful by text or by meaning.
//!
//! Only absolute dates with a year are read: "in March" or "last week" would need to know which
//! March or week the person means, and guessing wrong would hide the right memories.

use chrono::{Datelike, NaiveDate, NaiveTime};

use crate::domain::Timestamp;

/// A span of time a question names: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl DateWindow {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// From the start of `first` to the start of `after_last`, in UTC.
    fn days(first: NaiveDate, after_last: NaiveDate) -> Self {
        let micros = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
        Self {
            start: Timestamp::from_micros(micros(first)),
            end: Timestamp::from_micros(micros(after_last)),
        }
    }
}

/// A question's date and the question without it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedDate {
    pub window: DateWindow,
    pub rest: String,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A named day is widened by a day on either side: the person's day and the stored instant may be
/// in different time zones.
const DAY_SLACK: chrono::Days = chrono::Days::new(1);

/// The first date with a year that `text` names, if any.
pub fn named_date(text: &str) -> Option<NamedDate> {
    let words = words_with_spans(text);
    for (i, word) in words.iter().enumerate() {
        let Some(month) = month_number(&word.lower) else {
            continue;
        };
        let day_before = i
            .checked_sub(1)
            .and_then(|j| day_number(&words[j].lower).map(|d| (d, j)));
        let day_after = words
            .get(i + 1)
            .and_then(|w| day_number(&w.lower))
            .map(|d| (d, i + 1));
        // "7 July, 2023" or "July 7, 2023": a year right after the day and month.
        let day = day_before.or(day_after);
        let last = day.map_or(i, |(_, j)| j.max(i));
        let Some(year) = words.get(last + 1).and_then(|w| year_number(&w.lower)) else {
            continue;
        };
        let first = day.map_or(i, |(_, j)| j.min(i));
        let window = match day {
            Some((day, _)) => {
                let date = NaiveDate::from_ymd_opt(year, month, day)?;
                DateWindow::days(date - DAY_SLACK, date + DAY_SLACK + chrono::Days::new(1))
            }
            None => {
                let start = NaiveDate::from_ymd_opt(year, month, 1)?;
                let next = start.checked_add_months(chrono::Months::new(1))?;
                DateWindow::days(start, next)
            }
        };
        return Some(NamedDate {
            window,
            rest: without(text, words[first].start, words[last + 1].end),
        });
    }
    // A year alone: "in 2022".
    words.iter().enumerate().find_map(|(i, word)| {
        let year = year_number(&word.lower)?;
        let preceded_by_in = i.checked_sub(1).is_some_and(|j| words[j].lower == "in");
        if !preceded_by_in {
            return None;
        }
        let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
        let next = NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)?;
        Some(NamedDate {
            window: DateWindow::days(start, next),
            rest: without(text, word.start, word.end),
        })
    })
}

struct Word {
    lower: String,
    start: usize,
    end: usize,
}

fn words_with_spans(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(Word {
                    lower: text[s..i].to_lowercase(),
                    start: s,
                    end: i,
                });
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn month_number(word: &str) -> Option<u32> {
    let full = MONTHS.iter().position(|m| *m == word);
    // Three-letter abbreviations, except "may" (already full) and "mar"/"jun"… are unambiguous.
    let short = || {
        (word.len() == 3)
            .then(|| MONTHS.iter().position(|m| m.starts_with(word)))
            .flatten()
    };
    full.or_else(short).map(|m| m as u32 + 1)
}

/// `7`, `07`, `7th`, `1st`, `22nd`, `3rd`.
fn day_number(word: &str) -> Option<u32> {
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &word[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") || digits.len() > 2 {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn year_number(word: &str) -> Option<i32> {
    (word.len() == 4)
        .then(|| word.parse().ok())
        .flatten()
        .filter(|y| (1900..=2199).contains(y))
}

/// `text` without the bytes `start..end`, spaces tidied.
fn without(text: &str, start: usize, end: usize) -> String {
    let joined = format!("{} {}", &text[..start], &text[end..]);
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> Timestamp {
        Timestamp::from_micros(
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp_micros(),
        )
    }

    #[test]
    fn reads_a_day_either_way_round() {
        for text in [
            "What did Maria plan on 7 July, 2023?",
            "What did Maria plan on July 7, 2023?",
            "What did Maria plan on July 7th 2023?",
        ] {
            let found = named_date(text).unwrap();
            assert_eq!(found.window.start, day(2023, 7, 6), "{text}");
            assert_eq!(found.window.end, day(2023, 7, 9), "{text}");
            assert_eq!(found.rest, "What did Maria plan on ?", "{text}");
        }
    }

    #[test]
    fn reads_a_month_and_a_year() {
        let month = named_date("What workout did Maria start in December 2023?").unwrap();
        assert_eq!(month.window.start, day(2023, 12, 1));
        assert_eq!(month.window.end, day(2024, 1, 1));
        assert_eq!(month.rest, "What workout did Maria start in ?");
        let year = named_date("Where did we travel in 2022").unwrap();
        assert_eq!(year.window.start, day(2022, 1, 1));
        assert_eq!(year.window.end, day(2023, 1, 1));
        assert!(year.window.contains(day(2022, 12, 31)));
        assert!(!year.window.contains(day(2023, 1, 1)));
    }

    #[test]
    fn ignores_what_is_not_an_absolute_date() {
        for text in [
            "What may I do in March?",
            "What did John do last week?",
            "I have 2023 reasons",
            "Call me on 31 February, 2023",
            "",
        ] {
            assert_eq!(named_date(text), None, "{text}");
        }
    }
}
