//! Conversations (title, overview, transcript by speaker, what was derived from them) and the tasks
//! Omi found in them, to complete or reopen.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::csrf::Submitted;
use super::error::{PageError, PagePath, PageQuery};
use super::layout::{self, CursorParams, Section};
use super::session::Viewer;
use crate::domain::{Conversation, ConversationId, Task, TranscriptSegment};
use crate::http::AppState;
use crate::http::pagination::page_request;
use crate::store::{ListQuery, PageRequest, TaskFilter, TaskPatch};

const CONVERSATIONS_PAGE: u32 = 20;
const TASKS_PAGE: u32 = 50;

/// `GET /app/conversations`: newest first.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<CursorParams>,
) -> Result<Response, PageError> {
    let page = state
        .store
        .conversations(
            viewer.uid(),
            page_request(Some(CONVERSATIONS_PAGE), params.cursor())?,
        )
        .await?;
    let next = page
        .next_cursor
        .map(|c| layout::url_with("/app/conversations", &[("cursor", &c.encode())]));
    let content = html! {
        h1 { "Conversations" }
        @if page.items.is_empty() && params.cursor().is_none() {
            p.empty { "No conversations yet. They arrive from Omi once its conversation webhook points here." }
        }
        ol #conversations .cards {
            @for conversation in &page.items { (conversation_item(conversation)) }
        }
        (layout::more_link(next, "conversations", "Older conversations"))
    };
    Ok(
        Html(layout::page(&viewer, Section::Conversations, "Conversations", content).into_string())
            .into_response(),
    )
}

fn title(conversation: &Conversation) -> String {
    let title = conversation.title.trim();
    let title = if title.is_empty() {
        "Untitled conversation"
    } else {
        title
    };
    match conversation.emoji.trim() {
        "" => title.to_owned(),
        emoji => format!("{emoji} {title}"),
    }
}

fn conversation_item(conversation: &Conversation) -> Markup {
    html! {
        li.card {
            a.memory-link href=(layout::conversation_url(&conversation.id)) { (title(conversation)) }
            @if !conversation.overview.is_empty() {
                p { (layout::excerpt(&conversation.overview, 240)) }
            }
            (conversation_meta(conversation))
        }
    }
}

fn conversation_meta(conversation: &Conversation) -> Markup {
    html! {
        p.meta {
            @if !conversation.category.is_empty() { span.badge { (conversation.category) } " " }
            span.source { (conversation.source) }
            " · " (layout::time(conversation.started_at.unwrap_or(conversation.created_at)))
            @if conversation.discarded { " " span.badge.deleted { "discarded" } }
        }
    }
}

/// `GET /app/conversations/{id}`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    PagePath(id): PagePath<String>,
) -> Result<Response, PageError> {
    let detail = state.store.conversation(viewer.uid(), &id).await?;
    let mut derived = ListQuery::new(PageRequest::first(PageRequest::MAX_LIMIT));
    derived.conversation_id = Some(ConversationId::parse(&id)?);
    let memories = state.store.list_memories(viewer.uid(), &derived).await?;
    let conversation = &detail.conversation;
    let content = html! {
        p.back { a href="/app/conversations" { "← Conversations" } }
        h1 { (title(conversation)) }
        (conversation_meta(conversation))
        @if !conversation.overview.is_empty() {
            section aria-labelledby="overview-heading" {
                h2 #overview-heading { "Overview" }
                p.content { (conversation.overview) }
            }
        }
        section aria-labelledby="memories-heading" {
            h2 #memories-heading { "Memories from this conversation" }
            @if memories.items.is_empty() { p.empty { "None." } }
            ol #derived .cards { @for memory in &memories.items { (layout::memory_item(memory)) } }
        }
        @if !detail.tasks.is_empty() {
            section aria-labelledby="tasks-heading" {
                h2 #tasks-heading { "Tasks" }
                ul.tasks { @for task in &detail.tasks { (task_item(&viewer, task, "conversation")) } }
            }
        }
        @if !detail.events.is_empty() {
            section aria-labelledby="events-heading" {
                h2 #events-heading { "Events" }
                ul {
                    @for event in &detail.events {
                        li {
                            strong { (event.title) }
                            @if let Some(start) = event.start { " · " (layout::time(start)) }
                            @if !event.description.is_empty() { br; (event.description) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="transcript-heading" {
            h2 #transcript-heading { "Transcript" }
            @if detail.transcript_segments.is_empty() { p.empty { "No transcript was delivered." } }
            ol.transcript {
                @for turn in turns(&detail.transcript_segments) {
                    li.turn.user[turn.is_user] {
                        p.speaker { (turn.speaker) " " span.hint { (clock(turn.start)) } }
                        p { (turn.text) }
                    }
                }
            }
        }
    };
    Ok(Html(
        layout::page(
            &viewer,
            Section::Conversations,
            &title(conversation),
            content,
        )
        .into_string(),
    )
    .into_response())
}

/// Consecutive segments of one speaker, read as one turn.
struct Turn {
    speaker: String,
    is_user: bool,
    start: f64,
    text: String,
}

fn speaker(segment: &TranscriptSegment) -> String {
    if let Some(name) = segment
        .speaker_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        return name.to_owned();
    }
    if segment.is_user {
        return "You".to_owned();
    }
    match (segment.speaker_id, segment.speaker.as_deref()) {
        (Some(id), _) => format!("Speaker {}", id + 1),
        (None, Some(label)) if !label.is_empty() => label.to_owned(),
        _ => "Someone".to_owned(),
    }
}

fn turns(segments: &[TranscriptSegment]) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    for segment in segments {
        let who = speaker(segment);
        match turns.last_mut() {
            Some(turn) if turn.speaker == who => {
                turn.text.push(' ');
                turn.text.push_str(segment.text.trim());
            }
            _ => turns.push(Turn {
                speaker: who,
                is_user: segment.is_user,
                start: segment.start,
                text: segment.text.trim().to_owned(),
            }),
        }
    }
    turns
}

/// Seconds from the start, as `m:ss`.
fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0) as u64;
    format!("{}:{:02}", total / 60, total % 60)
}

fn task_item(viewer: &Viewer, task: &Task, back: &str) -> Markup {
    html! {
        li.task.done[task.completed] {
            form.inline method="post" action=(format!("/app/tasks/{}", layout::segment(&task.id))) {
                (layout::csrf_field(viewer))
                input type="hidden" name="completed" value=(if task.completed { "false" } else { "true" });
                input type="hidden" name="back" value=(back);
                button.check type="submit" aria-label=(if task.completed { format!("Reopen: {}", task.description) } else { format!("Mark done: {}", task.description) }) {
                    (if task.completed { "✓" } else { "○" })
                }
            }
            span.description { (task.description) }
            @if let Some(due) = task.due_at { " " span.hint { "due " (layout::date(due)) } }
            @if let Some(conversation) = &task.conversation_id {
                @if back != "conversation" {
                    " " a.hint href=(layout::conversation_url(conversation)) { "conversation" }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskParams {
    show: Option<String>,
    cursor: Option<String>,
}

/// `GET /app/tasks`: open tasks by default; `show=done` or `show=all`.
pub async fn tasks(
    State(state): State<AppState>,
    viewer: Viewer,
    PageQuery(params): PageQuery<TaskParams>,
) -> Result<Response, PageError> {
    let show = params.show.as_deref().unwrap_or("open");
    let completed = match show {
        "open" => Some(false),
        "done" => Some(true),
        "all" => None,
        other => {
            return Err(PageError::bad_request(format!(
                "show must be open, done or all, not {other:?}"
            )));
        }
    };
    let filter = TaskFilter {
        completed,
        conversation_id: None,
    };
    let page = state
        .store
        .tasks(
            viewer.uid(),
            filter,
            page_request(Some(TASKS_PAGE), params.cursor.as_deref())?,
        )
        .await?;
    let next = page
        .next_cursor
        .map(|c| layout::url_with("/app/tasks", &[("show", show), ("cursor", &c.encode())]));
    let content = html! {
        h1 { "Tasks" }
        nav.tabs aria-label="Which tasks" {
            @for (value, label) in [("open", "To do"), ("done", "Done"), ("all", "All")] {
                a href=(layout::url_with("/app/tasks", &[("show", value)])) aria-current=[(value == show).then_some("page")] { (label) }
            }
        }
        @if page.items.is_empty() && params.cursor.is_none() {
            p.empty { "No tasks here." }
        }
        ul #tasks .tasks { @for task in &page.items { (task_item(&viewer, task, show)) } }
        (layout::more_link(next, "tasks", "More tasks"))
    };
    Ok(Html(layout::page(&viewer, Section::Tasks, "Tasks", content).into_string()).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TaskForm {
    completed: String,
    #[serde(default)]
    back: String,
}

/// `POST /app/tasks/{id}`: mark a task done or open again.
pub async fn update_task(
    State(state): State<AppState>,
    PagePath(id): PagePath<String>,
    Submitted { viewer, form }: Submitted<TaskForm>,
) -> Result<Response, PageError> {
    let completed = match form.completed.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(PageError::bad_request("completed must be true or false")),
    };
    let patch = TaskPatch {
        completed: Some(completed),
        ..TaskPatch::default()
    };
    let task = state
        .store
        .update_task(viewer.uid(), &id, patch, &viewer.ctx)
        .await?;
    // Back to where the button was; only paths built here, never one taken from the form.
    let to = match (form.back.as_str(), &task.conversation_id) {
        ("conversation", Some(conversation)) => layout::conversation_url(conversation),
        ("done" | "all", _) => layout::url_with("/app/tasks", &[("show", form.back.as_str())]),
        _ => "/app/tasks".to_owned(),
    };
    Ok(Redirect::to(&to).into_response())
}
