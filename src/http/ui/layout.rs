//! The page shell (head, navigation, sign-out) and small pieces shared by the pages.

use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::csrf;
use super::session::Viewer;
use crate::domain::{Memory, Tags, Timestamp, ValidationError};

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Timeline,
    Search,
    Conversations,
    Tasks,
    Activity,
    Charts,
}

const SECTIONS: [(Section, &str, &str); 6] = [
    (Section::Timeline, "/app", "Timeline"),
    (Section::Search, "/app/search", "Search"),
    (
        Section::Conversations,
        "/app/conversations",
        "Conversations",
    ),
    (Section::Tasks, "/app/tasks", "Tasks"),
    (Section::Activity, "/app/activity", "Activity"),
    (Section::Charts, "/app/charts", "Charts"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            meta name="robots" content="noindex";
            title { (title) " · Angel Memory" }
            link rel="stylesheet" href=(super::assets::CSS_PATH);
            script src=(super::assets::JS_PATH) defer {}
        }
    }
}

/// A page of a signed-in person: navigation, the content, and the sign-out button.
pub fn page(viewer: &Viewer, section: Section, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/app" { "Angel Memory" }
                    nav aria-label="Main" {
                        ul {
                            @for (entry, href, label) in SECTIONS {
                                li {
                                    a href=(href) aria-current=[(entry == section).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    form.sign-out method="post" action="/app/sign-out" {
                        (csrf_field(viewer))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main tabindex="-1" { (content) }
            }
        }
    }
}

/// A page without navigation: sign-in and error pages.
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.site {
                    a.brand href="/app" { "Angel Memory" }
                }
                main #main tabindex="-1" { (content) }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(viewer.csrf_token()); }
}

/// Tags typed into a form field, separated by commas; blanks between commas are ignored.
pub fn parse_tags(raw: &str) -> Result<Tags, ValidationError> {
    let tags: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    Tags::parse(&tags)
}

/// A labelled drop-down of `options`, `selected` chosen; `any` adds an empty first choice.
pub fn select(id: &str, label: &str, options: &[&str], selected: &str, any: bool) -> Markup {
    html! {
        label for=(id) { (label) }
        select id=(id) name=(id) {
            @if any { option value="" { "any" } }
            @for option in options {
                option value=(option) selected[*option == selected] { (option) }
            }
        }
    }
}

/// A message at the top of a page: `kind` is `notice` (it worked) or `error`.
pub fn message(kind: &str, text: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! { p class=(format!("message {kind}")) role=(role) { (text) } }
}

/// `2026-11-24 10:32 UTC`, in a `<time>` element.
pub fn time(at: Timestamp) -> Markup {
    let dt = at.to_datetime();
    html! { time datetime=(at) { (dt.format("%Y-%m-%d %H:%M UTC")) } }
}

pub fn date(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%d").to_string()
}

/// The start of a text, cut at a word boundary near `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut
        .rsplit_once(char::is_whitespace)
        .map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end())
}

/// `path?k=v&…`, each value URL-encoded; pairs with empty values are left out.
pub fn url_with(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(key, value);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// A path segment, percent-encoded (conversation ids are Omi's, and may hold `/` or `?`).
pub fn segment(raw: &str) -> String {
    form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

pub fn conversation_url(id: &str) -> String {
    format!("/app/conversations/{}", segment(id))
}

pub fn memory_url(memory: &Memory) -> String {
    format!("/app/memories/{}", memory.id)
}

/// Category, source, tags and time of a memory, as one line.
pub fn memory_meta(memory: &Memory) -> Markup {
    html! {
        p.meta {
            span.badge { (memory.category) }
            " " span.source { (memory.source) }
            " · " (time(memory.created_at))
            @for tag in memory.tags.iter() {
                " " a.tag href=(url_with("/app", &[("tag", tag.as_str())])) { "#" (tag.as_str()) }
            }
            @if memory.is_deleted() { " " span.badge.deleted { "deleted" } }
        }
    }
}

/// A memory in a list: its text (the link to its page) and what it is.
pub fn memory_item(memory: &Memory) -> Markup {
    html! {
        li.card {
            a.memory-link href=(memory_url(memory)) { (excerpt(memory.content.as_str(), 400)) }
            (memory_meta(memory))
        }
    }
}

/// A list page's position: the `next_cursor` of the page before.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorParams {
    cursor: Option<String>,
}

impl CursorParams {
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

/// The link to the next page of a list; the script turns it into infinite scroll.
pub fn more_link(href: Option<String>, list_id: &str, label: &str) -> Markup {
    html! {
        @if let Some(href) = href {
            p.more { a href=(href) data-more data-list=(list_id) { (label) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_at_words() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("one two three four", 10), "one two…");
    }
}
