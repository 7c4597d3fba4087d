//! Simple charts as inline SVG, drawn on the server: no script, no image requests, readable by screen
//! readers through a title and a table of the same numbers. Colours come from the stylesheet.

use maud::{Markup, html};
use std::collections::BTreeMap;

use crate::domain::Timestamp;

const DAY_MICROS: i64 = 86_400_000_000;
const WEEK_MICROS: i64 = 7 * DAY_MICROS;
/// The Unix epoch was a Thursday; weeks start on the Monday four days later (as the store counts).
const MONDAY_OFFSET_MICROS: i64 = 4 * DAY_MICROS;

/// The starts (Monday 00:00 UTC) of the `count` weeks up to and including the one holding `now`,
/// oldest first.
pub fn week_starts(now: Timestamp, count: usize) -> Vec<Timestamp> {
    let this_week = (now.as_micros() - MONDAY_OFFSET_MICROS).div_euclid(WEEK_MICROS);
    (0..count as i64)
        .rev()
        .map(|back| Timestamp::from_micros((this_week - back) * WEEK_MICROS + MONDAY_OFFSET_MICROS))
        .collect()
}

/// A column per week.
pub fn weekly(weeks: &[(Timestamp, u64)]) -> Markup {
    const WIDTH: f64 = 640.0;
    const HEIGHT: f64 = 200.0;
    const AXIS: f64 = 24.0;
    const TOP: f64 = 16.0;
    let max = weeks.iter().map(|w| w.1).max().unwrap_or(0).max(1);
    let slot = WIDTH / weeks.len().max(1) as f64;
    let plot = HEIGHT - AXIS - TOP;
    let total: u64 = weeks.iter().map(|w| w.1).sum();
    let label = format!(
        "Memories added per week over the last {} weeks: {total} in all, at most {max} in one week",
        weeks.len()
    );
    html! {
        figure.chart {
            svg #chart-weekly viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-labelledby="chart-weekly-title" {
                title #chart-weekly-title { (label) }
                line.axis x1="0" y1=(HEIGHT - AXIS) x2=(WIDTH) y2=(HEIGHT - AXIS) {}
                text.label x="0" y="12" { "max " (max) }
                @for (i, (start, count)) in weeks.iter().enumerate() {
                    @let height = plot * (*count as f64) / (max as f64);
                    @let x = i as f64 * slot;
                    rect.bar x=(format!("{:.1}", x + slot * 0.15)) y=(format!("{:.1}", HEIGHT - AXIS - height))
                        width=(format!("{:.1}", slot * 0.7)) height=(format!("{:.1}", height)) {
                        title { "Week of " (super::layout::date(*start)) ": " (count) }
                    }
                    @if i % 4 == 0 {
                        text.label x=(format!("{:.1}", x)) y=(HEIGHT - 6.0) {
                            (start.to_datetime().format("%b %-d"))
                        }
                    }
                }
            }
            details {
                summary { "The numbers" }
                table {
                    thead { tr { th scope="col" { "Week of" } th scope="col" { "Memories" } } }
                    tbody {
                        @for (start, count) in weeks {
                            tr { td { (super::layout::date(*start)) } td { (count) } }
                        }
                    }
                }
            }
        }
    }
}

/// A horizontal bar per key, largest first.
pub fn bars(what: &str, counts: &BTreeMap<String, u64>) -> Markup {
    const WIDTH: f64 = 640.0;
    const ROW: f64 = 28.0;
    const NAME: f64 = 150.0;
    let mut rows: Vec<(&String, u64)> = counts.iter().map(|(k, v)| (k, *v)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let max = rows.first().map_or(1, |r| r.1).max(1);
    let height = ROW * rows.len().max(1) as f64;
    let id = format!("chart-{what}");
    let label = format!(
        "Active memories by {what}: {}",
        rows.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    html! {
        @if rows.is_empty() {
            p.empty { "No memories yet." }
        } @else {
            figure.chart {
                svg id=(id) viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-labelledby=(format!("{id}-title")) {
                    title id=(format!("{id}-title")) { (label) }
                    @for (i, (name, count)) in rows.iter().enumerate() {
                        @let y = i as f64 * ROW;
                        @let width = (WIDTH - NAME - 60.0) * (*count as f64) / (max as f64);
                        text.label x="0" y=(format!("{:.1}", y + ROW * 0.65)) { (name) }
                        rect.bar x=(NAME) y=(format!("{:.1}", y + 4.0)) width=(format!("{:.1}", width.max(1.0))) height=(ROW - 8.0) {}
                        text.label x=(format!("{:.1}", NAME + width.max(1.0) + 6.0)) y=(format!("{:.1}", y + ROW * 0.65)) { (count) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_midnight() {
        // 2026-11-26 is a Thursday.
        let now = Timestamp::parse("t", "2026-11-26T15:00:00Z").unwrap();
        let weeks = week_starts(now, 3);
        let shown: Vec<String> = weeks.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "2026-11-09T00:00:00.000000Z",
                "2026-11-16T00:00:00.000000Z",
                "2026-11-23T00:00:00.000000Z"
            ]
        );
    }

    #[test]
    fn charts_escape_names_and_hold_every_number() {
        let counts = BTreeMap::from([("<b>".to_owned(), 3), ("system".to_owned(), 7)]);
        let svg = bars("category", &counts).into_string();
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("system 7, &lt;b&gt; 3"), "{svg}");
    }
}
