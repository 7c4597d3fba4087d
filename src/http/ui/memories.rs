//! The timeline of memories and a memory's own page: its history (what changed between versions),
//! edit with optimistic concurrency, delete and restore.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use similar::{ChangeTag, TextDiff};

use super::csrf::Submitted;
use super::error::{PageError, PagePath, PageQuery};
use super::layout::{self, Section};
use super::session::Viewer;
use crate::domain::{
    Category, Content, Memory, MemoryId, MemoryVersion, Tag, ValidationError, Visibility,
};
use crate::http::AppState;
use crate::http::pagination::page_request;
use crate::store::{ListQuery, MemoryPatch, StoreError};

const TIMELINE_PAGE: u32 = 25;

/// The timeline's position (`cursor` of the list API) and an optional tag filter.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineParams {
    cursor: Option<String>,
    tag: Option<String>,
}

/// The timeline: newest first, 25 at a time; the next page loads as the reader scrolls.
pub async fn timeline(
    state: &AppState,
    viewer: &Viewer,
    params: TimelineParams,
) -> Result<Response, PageError> {
    let tag = params
        .tag
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(Tag::parse)
        .transpose()?;
    let mut query = ListQuery::new(page_request(Some(TIMELINE_PAGE), params.cursor.as_deref())?);
    if let Some(tag) = &tag {
        query.tags = vec![tag.clone()];
    }
    let page = state.store.list_memories(viewer.uid(), &query).await?;
    let tag_name = tag.as_ref().map_or("", |t| t.as_str());
    let next = page
        .next_cursor
        .map(|c| layout::url_with("/app", &[("cursor", &c.encode()), ("tag", tag_name)]));
    let content = html! {
        @if let Some(tag) = &tag {
            h1 { "Memories tagged " span.tag { "#" (tag.as_str()) } }
            p { a href="/app" { "Show all memories" } }
        } @else {
            h1 { "Your memories" }
        }
        @if page.items.is_empty() && params.cursor.is_none() {
            p.empty { "Nothing here yet. Memories appear as Omi sends your conversations, or as you add them through the API." }
        }
        ol #memories .cards { @for memory in &page.items { (layout::memory_item(memory)) } }
        (layout::more_link(next, "memories", "Older memories"))
    };
    Ok(
        Html(layout::page(viewer, Section::Timeline, "Timeline", content).into_string())
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowParams {
    notice: Option<String>,
}

/// `GET /app/memories/{id}`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    PagePath(id): PagePath<String>,
    PageQuery(params): PageQuery<ShowParams>,
) -> Result<Response, PageError> {
    let id = MemoryId::parse(&id)?;
    let memory = state.store.get_memory(viewer.uid(), id).await?;
    // Fixed texts only: nothing from the address is echoed into the page.
    let notice = match params.notice.as_deref() {
        Some("saved") => Some("Saved. The new version is at the top of the history."),
        Some("unchanged") => Some("Nothing changed, so no new version was written."),
        Some("deleted") => Some("Deleted. You can restore it below."),
        Some("restored") => Some("Restored."),
        _ => None,
    };
    let message = notice.map(|text| ("notice", text.to_owned()));
    render(&state, &viewer, &memory, StatusCode::OK, message, None).await
}

/// What a person typed into the edit form; shown again when it cannot be saved.
#[derive(Debug, Clone, Deserialize)]
pub struct EditForm {
    version: String,
    content: String,
    category: String,
    #[serde(default)]
    tags: String,
    visibility: String,
}

impl EditForm {
    fn of(memory: &Memory) -> Self {
        Self {
            version: memory.version.to_string(),
            content: memory.content.as_str().to_owned(),
            category: memory.category.as_str().to_owned(),
            tags: memory
                .tags
                .iter()
                .map(Tag::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            visibility: memory.visibility.as_str().to_owned(),
        }
    }

    /// The fields that differ from `current`, parsed.
    fn changes(&self, current: &Memory) -> Result<MemoryPatch, ValidationError> {
        let content = Content::parse(&self.content)?;
        let category = Category::parse(&self.category)?;
        let tags = layout::parse_tags(&self.tags)?;
        let visibility: Visibility = self.visibility.parse()?;
        Ok(MemoryPatch {
            content: (content != current.content).then_some(content),
            category: (category != current.category).then_some(category),
            tags: (tags != current.tags).then_some(tags),
            visibility: (visibility != current.visibility).then_some(visibility),
            ..MemoryPatch::default()
        })
    }
}

/// `POST /app/memories/{id}/edit`: saves a new version if the form was made from the current one.
pub async fn edit(
    State(state): State<AppState>,
    PagePath(id): PagePath<String>,
    Submitted { viewer, form }: Submitted<EditForm>,
) -> Result<Response, PageError> {
    let id = MemoryId::parse(&id)?;
    let current = state.store.get_memory(viewer.uid(), id).await?;
    let Ok(expected) = form.version.trim().parse::<i64>() else {
        return Err(PageError::bad_request(
            "the form names no version to update",
        ));
    };
    let patch = match form.changes(&current) {
        Ok(patch) => patch,
        Err(error) => {
            let message = format!("Not saved: {error}.");
            return render(
                &state,
                &viewer,
                &current,
                StatusCode::BAD_REQUEST,
                Some(("error", message)),
                Some(form),
            )
            .await;
        }
    };
    if patch.is_empty() {
        return Ok(Redirect::to(&format!("/app/memories/{id}?notice=unchanged")).into_response());
    }
    match state
        .store
        .update_memory(viewer.uid(), id, expected, patch, &viewer.ctx)
        .await
    {
        Ok(_) => {
            state.search.wake();
            Ok(Redirect::to(&format!("/app/memories/{id}?notice=saved")).into_response())
        }
        Err(StoreError::VersionConflict { current: now }) => {
            let memory = state.store.get_memory(viewer.uid(), id).await?;
            let message = format!(
                "Not saved: this memory changed after you opened it (you edited version {expected}; it is now at version {now}). \
                 Your text is still in the form below. Look at the history to see what changed, then save again to replace it."
            );
            // Saving again is a deliberate choice made after seeing the newer version.
            let draft = EditForm {
                version: now.to_string(),
                ..form
            };
            render(
                &state,
                &viewer,
                &memory,
                StatusCode::CONFLICT,
                Some(("error", message)),
                Some(draft),
            )
            .await
        }
        Err(StoreError::Deleted) => {
            let message = "Not saved: this memory was deleted. Restore it first.".to_owned();
            render(
                &state,
                &viewer,
                &current,
                StatusCode::CONFLICT,
                Some(("error", message)),
                Some(form),
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct EmptyForm {}

/// `POST /app/memories/{id}/delete`: a soft delete; the memory can be restored.
pub async fn delete(
    State(state): State<AppState>,
    PagePath(id): PagePath<String>,
    Submitted { viewer, .. }: Submitted<EmptyForm>,
) -> Result<Response, PageError> {
    let id = MemoryId::parse(&id)?;
    state
        .store
        .delete_memory(viewer.uid(), id, None, &viewer.ctx)
        .await?;
    Ok(Redirect::to(&format!("/app/memories/{id}?notice=deleted")).into_response())
}

/// `POST /app/memories/{id}/restore`.
pub async fn restore(
    State(state): State<AppState>,
    PagePath(id): PagePath<String>,
    Submitted { viewer, .. }: Submitted<EmptyForm>,
) -> Result<Response, PageError> {
    let id = MemoryId::parse(&id)?;
    match state
        .store
        .restore_memory(viewer.uid(), id, &viewer.ctx)
        .await
    {
        Ok(_) => {
            state.search.wake();
            Ok(Redirect::to(&format!("/app/memories/{id}?notice=restored")).into_response())
        }
        Err(StoreError::Conflict(reason)) => {
            let memory = state.store.get_memory(viewer.uid(), id).await?;
            let message = format!("Not restored: {reason}.");
            render(
                &state,
                &viewer,
                &memory,
                StatusCode::CONFLICT,
                Some(("error", message)),
                None,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

/// The memory page: the memory, a message, the edit form (with `draft` if one is being corrected),
/// and its history.
async fn render(
    state: &AppState,
    viewer: &Viewer,
    memory: &Memory,
    status: StatusCode,
    message: Option<(&str, String)>,
    draft: Option<EditForm>,
) -> Result<Response, PageError> {
    let versions = state.store.memory_versions(viewer.uid(), memory.id).await?;
    let form = draft.unwrap_or_else(|| EditForm::of(memory));
    let action = |what: &str| format!("/app/memories/{}/{what}", memory.id);
    let content = html! {
        p.back { a href="/app" { "← Timeline" } }
        h1 { "Memory" }
        @if let Some((kind, text)) = &message { (layout::message(kind, text)) }
        article.memory {
            p.content #current-content { (memory.content.as_str()) }
            (layout::memory_meta(memory))
            p.meta {
                "Version " span #current-version { (memory.version) }
                @if let Some(conversation) = &memory.conversation_id {
                    " · from " a href=(layout::conversation_url(conversation.as_str())) { "a conversation" }
                }
            }
        }
        @if memory.is_deleted() {
            section aria-labelledby="restore-heading" {
                h2 #restore-heading { "Deleted" }
                p { "This memory was deleted on " (layout::time(memory.deleted_at.unwrap_or(memory.updated_at))) ". It is kept for a while and can be restored." }
                form method="post" action=(action("restore")) {
                    (layout::csrf_field(viewer))
                    button #restore type="submit" { "Restore" }
                }
            }
        } @else {
            section aria-labelledby="edit-heading" {
                h2 #edit-heading { "Edit" }
                form.stack #edit method="post" action=(action("edit")) {
                    (layout::csrf_field(viewer))
                    input type="hidden" name="version" value=(form.version);
                    label for="content" { "Text" }
                    textarea #content name="content" rows="6" required { (form.content) }
                    div.row {
                        div { (layout::select("category", "Category", &Category::ALL.map(Category::as_str), &form.category, false)) }
                        div { (layout::select("visibility", "Visibility", &["private", "public"], &form.visibility, false)) }
                    }
                    label for="tags" { "Tags " span.hint { "(separated by commas)" } }
                    input #tags type="text" name="tags" value=(form.tags) autocapitalize="off";
                    button #save type="submit" { "Save changes" }
                }
                form.inline method="post" action=(action("delete"))
                    data-confirm="Delete this memory? You can restore it later from this page." {
                    (layout::csrf_field(viewer))
                    button.danger #delete type="submit" { "Delete" }
                }
            }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { "History" }
            ol #history .versions reversed {
                @for (i, version) in versions.iter().enumerate().rev() {
                    li.card {
                        h3 { "Version " (version.version) " · " (layout::time(version.created_at)) }
                        @match i.checked_sub(1).and_then(|p| versions.get(p)) {
                            Some(previous) => (changes(previous, version)),
                            None => {
                                p.meta { "Created with:" }
                                blockquote.content { (version.content.as_str()) }
                            },
                        }
                    }
                }
            }
        }
    };
    Ok((
        status,
        Html(layout::page(viewer, Section::Timeline, "Memory", content).into_string()),
    )
        .into_response())
}

/// What changed from one version to the next: the text word by word, then the other fields.
fn changes(previous: &MemoryVersion, version: &MemoryVersion) -> Markup {
    let (old, new) = (previous.content.as_str(), version.content.as_str());
    let tags = |v: &MemoryVersion| {
        v.tags
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let (old_tags, new_tags) = (tags(previous), tags(version));
    let added: Vec<&String> = new_tags.iter().filter(|t| !old_tags.contains(t)).collect();
    let removed: Vec<&String> = old_tags.iter().filter(|t| !new_tags.contains(t)).collect();
    html! {
        ul.changes {
            @if old != new {
                li {
                    "Text: "
                    span.diff {
                        @for change in TextDiff::from_words(old, new).iter_all_changes() {
                            @match change.tag() {
                                ChangeTag::Equal => (change.value()),
                                ChangeTag::Delete => del { (change.value()) },
                                ChangeTag::Insert => ins { (change.value()) },
                            }
                        }
                    }
                }
            }
            @if previous.category != version.category {
                li { "Category: " del { (previous.category) } " → " ins { (version.category) } }
            }
            @if !added.is_empty() || !removed.is_empty() {
                li {
                    "Tags: "
                    @for tag in &added { ins { "+#" (tag) } " " }
                    @for tag in &removed { del { "−#" (tag) } " " }
                }
            }
            @if previous.visibility != version.visibility {
                li { "Visibility: " del { (previous.visibility.as_str()) } " → " ins { (version.visibility.as_str()) } }
            }
            @if previous.occurred_at != version.occurred_at {
                li { "Happened at: " del { (layout::time(previous.occurred_at)) } " → " ins { (layout::time(version.occurred_at)) } }
            }
            @if previous.metadata != version.metadata {
                li { "Metadata changed" }
            }
            @if previous.conversation_id != version.conversation_id {
                li { "Conversation link changed" }
            }
        }
    }
}
