//! A small hand-written SVG bar chart: groups of bars, one colour per series.

use std::fmt::Write;

const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// `groups`: (label, one value in 0..=1 per series). `series`: legend labels.
pub fn grouped_bars(title: &str, series: &[&str], groups: &[(String, Vec<f64>)]) -> String {
    let (bar, gap, left, top, height) = (18.0, 28.0, 50.0, 50.0, 260.0);
    let group_width = bar * series.len() as f64 + gap;
    let width = left + group_width * groups.len() as f64 + 20.0;
    let total_height = top + height + 70.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{total_height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for step in 0..=5 {
        let v = f64::from(step) / 5.0;
        let y = top + height * (1.0 - v);
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"##,
            width - 20.0,
            left - 6.0,
            y + 4.0
        );
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let x0 = left + gap / 2.0 + group_width * g as f64;
        for (s, value) in values.iter().enumerate() {
            let h = height * value.clamp(0.0, 1.0);
            let x = x0 + bar * s as f64;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {value:.3}</title></rect>"#,
                top + height - h,
                bar - 2.0,
                COLOURS[s % COLOURS.len()],
                escape(series.get(s).copied().unwrap_or(""))
            );
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="8">{:.2}</text>"#,
                x + (bar - 2.0) / 2.0,
                top + height - h - 3.0,
                value
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + bar * series.len() as f64 / 2.0,
            top + height + 16.0,
            escape(label)
        );
    }
    for (s, name) in series.iter().enumerate() {
        let x = left + 110.0 * s as f64;
        let y = top + height + 40.0;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 9.0,
            COLOURS[s % COLOURS.len()],
            x + 14.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
