//! Search: words, meaning or both, with filters, through the same `Searcher` as the API; matched words
//! highlighted (the text is escaped piece by piece, and only our own `<mark>` is markup).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::{PageError, PageQuery};
use super::layout::{self, Section};
use super::session::Viewer;
use crate::domain::{Category, Source, Timestamp, ValidationError};
use crate::http::AppState;
use crate::search::query;
use crate::search::{Mode, SearchHit, SearchRequest, SearchResults};
use crate::store::{SearchFilter, TimeRange};

const LIMIT: usize = 50;
/// As the API's `q`.
const MAX_QUERY_CHARS: usize = crate::http::search::MAX_QUERY_CHARS;

/// The search form, as the browser sends it (empty fields are empty strings).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    source: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    to: String,
}

fn day(field: &'static str, raw: &str) -> Result<Option<NaiveDate>, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ValidationError::new(field, format!("{raw:?} is not a date like 2026-11-24")))
}

fn midnight(date: NaiveDate) -> Timestamp {
    Timestamp::from_micros(
        Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
            .timestamp_micros(),
    )
}

impl SearchForm {
    fn parse(&self) -> Result<SearchRequest, ValidationError> {
        let q = self.q.trim();
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(ValidationError::new(
                "q",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let mode = match self.mode.as_str() {
            "" => Mode::default(),
            other => other
                .parse()
                .map_err(|e: String| ValidationError::new("mode", e))?,
        };
        let (from, to) = (day("from", &self.from)?, day("to", &self.to)?);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(ValidationError::new("to", "is before from"));
        }
        let filter = SearchFilter {
            tags: layout::parse_tags(&self.tags)?.iter().cloned().collect(),
            category: Some(self.category.as_str())
                .filter(|c| !c.is_empty())
                .map(Category::parse)
                .transpose()?,
            source: Some(self.source.as_str())
                .filter(|s| !s.is_empty())
                .map(str::parse::<Source>)
                .transpose()?,
            created: TimeRange {
                from: from.map(midnight),
                to: to.and_then(|d| d.succ_opt()).map(midnight),
            },
            ..SearchFilter::default()
        };
        Ok(SearchRequest {
            query: q.to_owned(),
            mode,
            limit: LIMIT,
            filter,
            tuning: Default::default(),
        })
    }
}

/// `GET /app/search`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(form): PageQuery<SearchForm>,
) -> Result<Response, PageError> {
    let (status, message, results) = match form.parse() {
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Some(format!("Cannot search: {error}.")),
            None,
        ),
        Ok(request) if request.query.is_empty() => (StatusCode::OK, None, None),
        Ok(request) => {
            let results = state.search.search_memories(viewer.uid(), &request).await?;
            (StatusCode::OK, None, Some(results))
        }
    };
    let content = html! {
        h1 { "Search" }
        (search_form(&form))
        @if let Some(text) = &message { (layout::message("error", text)) }
        @if let Some(results) = &results { (results_list(&form.q, results)) }
    };
    Ok((
        status,
        Html(layout::page(&viewer, Section::Search, "Search", content).into_string()),
    )
        .into_response())
}

fn search_form(form: &SearchForm) -> Markup {
    let mode = if form.mode.is_empty() {
        Mode::default().as_str()
    } else {
        form.mode.as_str()
    };
    html! {
        form.stack #search method="get" action="/app/search" role="search" {
            label for="q" { "Look for" }
            div.row {
                input #q type="search" name="q" value=(form.q) placeholder="e.g. what did Sam say about the car" autofocus;
                button type="submit" { "Search" }
            }
            fieldset.modes {
                legend { "Match by" }
                @for (value, label) in [("hybrid", "words and meaning"), ("text", "words"), ("semantic", "meaning")] {
                    label.choice {
                        input type="radio" name="mode" value=(value) checked[mode == value];
                        " " (label)
                    }
                }
            }
            details.filters open[!(form.tags.is_empty() && form.category.is_empty() && form.source.is_empty() && form.from.is_empty() && form.to.is_empty())] {
                summary { "Filters" }
                div.grid {
                    div {
                        label for="tags" { "Tags " span.hint { "(comma-separated)" } }
                        input #tags type="text" name="tags" value=(form.tags) autocapitalize="off";
                    }
                    div { (layout::select("category", "Category", &Category::ALL.map(Category::as_str), &form.category, true)) }
                    div { (layout::select("source", "Source", &Source::ALL.map(Source::as_str), &form.source, true)) }
                    div {
                        label for="from" { "From" }
                        input #from type="date" name="from" value=(form.from);
                    }
                    div {
                        label for="to" { "To" }
                        input #to type="date" name="to" value=(form.to);
                    }
                }
            }
        }
    }
}

fn results_list(q: &str, results: &SearchResults) -> Markup {
    let terms = query::terms(q);
    html! {
        @if let Some(notice) = &results.notice { (layout::message("notice", notice)) }
        p.count role="status" {
            @match results.items.len() {
                0 => "No memory matches.",
                1 => "1 memory matches.",
                n => { (n) " memories match, best first." },
            }
        }
        ol #results .cards {
            @for hit in &results.items { (result_item(hit, &terms)) }
        }
    }
}

fn result_item(hit: &SearchHit, terms: &[String]) -> Markup {
    let parts = query::snippet_parts(hit.memory.content.as_str(), terms);
    html! {
        li.card {
            a.memory-link href=(layout::memory_url(&hit.memory)) {
                @if parts.cut_before { "…" }
                @for (piece, matched) in &parts.pieces {
                    @if *matched { mark { (piece) } } @else { (piece) }
                }
                @if parts.cut_after { "…" }
            }
            (layout::memory_meta(&hit.memory))
            p.signals {
                @if let Some(text) = hit.signals.text { "words: #" (text.rank) }
                @if hit.signals.text.is_some() && hit.signals.semantic.is_some() { " · " }
                @if let Some(meaning) = hit.signals.semantic { "meaning: #" (meaning.rank) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_dates_as_whole_days() {
        let form = SearchForm {
            q: " car ".into(),
            from: "2026-11-01".into(),
            to: "2026-11-01".into(),
            category: "system".into(),
            ..SearchForm::default()
        };
        let request = form.parse().unwrap();
        assert_eq!(request.query, "car");
        assert_eq!(request.mode, Mode::Hybrid);
        let (from, to) = (
            request.filter.created.from.unwrap(),
            request.filter.created.to.unwrap(),
        );
        assert_eq!(to.as_micros() - from.as_micros(), 86_400_000_000);
        assert_eq!(request.filter.category, Some(Category::System));
    }

    #[test]
    fn bad_fields_say_which() {
        let bad = |form: SearchForm| form.parse().unwrap_err().field;
        assert_eq!(
            bad(SearchForm {
                mode: "fuzzy".into(),
                ..SearchForm::default()
            }),
            "mode"
        );
        assert_eq!(
            bad(SearchForm {
                from: "yesterday".into(),
                ..SearchForm::default()
            }),
            "from"
        );
        assert_eq!(
            bad(SearchForm {
                from: "2026-02-02".into(),
                to: "2026-02-01".into(),
                ..SearchForm::default()
            }),
            "to"
        );
        assert_eq!(
            bad(SearchForm {
                category: "nope".into(),
                ..SearchForm::default()
            }),
            "category"
        );
    }
}
