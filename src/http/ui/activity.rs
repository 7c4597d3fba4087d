//! The audit trail and the charts: what happened to the account, and how it grew.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use super::charts;
use super::error::{PageError, PageQuery};
use super::layout::{self, CursorParams, Section};
use super::session::Viewer;
use crate::domain::Timestamp;
use crate::http::AppState;
use crate::http::pagination::page_request;

const AUDIT_PAGE: u32 = 50;
/// Weeks the weekly chart covers, this one included.
pub const WEEKS: usize = 26;

/// `GET /app/activity`: the audit trail, newest first (it never holds content).
pub async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<CursorParams>,
) -> Result<Response, PageError> {
    let page = state
        .store
        .audit_events(
            viewer.uid(),
            page_request(Some(AUDIT_PAGE), params.cursor())?,
        )
        .await?;
    let next = page
        .next_cursor
        .map(|c| layout::url_with("/app/activity", &[("cursor", &c.encode())]));
    let content = html! {
        h1 { "Activity" }
        p { "Every change to your memories and sign-ins, newest first. The trail never holds what a memory says." }
        div.table-wrap {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Memory" } th scope="col" { "By" } th scope="col" { "Details" } } }
                tbody #events {
                    @for event in &page.items {
                        tr {
                            td { (layout::time(event.at)) }
                            td { code { (event.action) } }
                            td {
                                @if let Some(id) = event.memory_id {
                                    a href=(format!("/app/memories/{id}")) { "open" }
                                }
                            }
                            td { (event.actor) }
                            td.details {
                                (layout::excerpt(&event.details.to_string(), 160))
                                @if let Some(request) = &event.request_id { br; span.hint { "request " (request) } }
                            }
                        }
                    }
                }
            }
        }
        @if page.items.is_empty() { p.empty { "Nothing yet." } }
        (layout::more_link(next, "events", "Older activity"))
    };
    Ok(
        Html(layout::page(&viewer, Section::Activity, "Activity", content).into_string())
            .into_response(),
    )
}

/// `GET /app/charts`: memories added per week, and by category and source.
pub async fn charts(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let weeks = charts::week_starts(Timestamp::now(), WEEKS);
    let since = weeks.first().copied().unwrap_or_else(Timestamp::now);
    let counts = state.store.memories_per_week(viewer.uid(), since).await?;
    let stats = state.store.stats(viewer.uid()).await?;
    let per_week: Vec<(Timestamp, u64)> = weeks
        .iter()
        .map(|start| {
            let count = counts
                .iter()
                .find(|c| c.week_start == *start)
                .map_or(0, |c| c.count);
            (*start, count)
        })
        .collect();
    let content = html! {
        h1 { "Charts" }
        p.summary {
            strong { (stats.active) } " memories"
            " · " (stats.deleted) " deleted"
            " · " (stats.versions) " versions in all"
        }
        section aria-labelledby="weekly-heading" {
            h2 #weekly-heading { "Memories added per week" }
            (charts::weekly(&per_week))
        }
        section aria-labelledby="category-heading" {
            h2 #category-heading { "By category" }
            (charts::bars("category", &stats.by_category))
        }
        section aria-labelledby="source-heading" {
            h2 #source-heading { "By source" }
            (charts::bars("source", &stats.by_source))
        }
    };
    Ok(
        Html(layout::page(&viewer, Section::Charts, "Charts", content).into_string())
            .into_response(),
    )
}
