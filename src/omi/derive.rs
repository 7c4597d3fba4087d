//! What Angel Memory derives from Omi's events: deterministic, no LLM, nothing invented. Omi already
//! summarised the conversation; we keep its title and overview as one memory, its action items as tasks.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::payload;
use crate::domain::{
    Category, Content, Conversation, ConversationEvent, ConversationId, Metadata, NewTask, Source,
    Tag, Tags, TaskDescription, Timestamp, TranscriptSegment,
};
use crate::store::{ConversationWork, DaySummaryWork, NewMemory};

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Omi's own stable id for a segment that arrived without one.
fn segment_id(conversation_id: &str, index: usize) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("omi/conversations/{conversation_id}/transcript-segments/{index}").as_bytes(),
    )
    .to_string()
}

fn tags(values: &[&str]) -> Tags {
    let parsed: Vec<String> = values
        .iter()
        .filter_map(|v| Tag::parse(v).ok())
        .map(String::from)
        .collect();
    Tags::parse(&parsed).unwrap_or_default()
}

pub fn conversation(
    c: payload::Conversation,
    own_app_id: Option<&str>,
    received_at: Timestamp,
) -> ConversationWork {
    let imported_by_this_app = c.source == "external_integration"
        && own_app_id.is_some_and(|own| c.app_id.as_deref() == Some(own));
    let created_at = c.created_at.or(c.started_at).unwrap_or(received_at);
    let segments = c
        .transcript_segments
        .iter()
        .enumerate()
        .map(|(index, s)| TranscriptSegment {
            id: s
                .id
                .clone()
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| segment_id(&c.id, index)),
            text: s.text.clone(),
            speaker: s.speaker.clone(),
            speaker_id: s.speaker_id,
            speaker_name: s.speaker_name.clone(),
            is_user: s.is_user,
            person_id: s.person_id.clone(),
            start: s.start,
            end: s.end,
        })
        .collect();
    let events = c
        .structured
        .events
        .iter()
        .map(|e| ConversationEvent {
            title: e.title.clone(),
            description: e.description.clone(),
            start: e.start,
            duration_minutes: e.duration.unwrap_or(30.0),
        })
        .collect();
    let derive = !c.discarded && !imported_by_this_app;
    let summary = derive.then(|| summary_memory(&c, created_at)).flatten();
    let tasks = if derive {
        c.structured
            .action_items
            .iter()
            .filter_map(|item| {
                Some(NewTask {
                    origin: format!(
                        "conversation:{}:{}",
                        c.id,
                        short_hash(item.description.trim())
                    ),
                    description: TaskDescription::parse(&item.description).ok()?,
                    completed: item.completed,
                    due_at: item.due_at,
                    conversation_id: Some(c.id.clone()),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let conversation = Conversation {
        id: c.id.clone(),
        title: c.structured.title.clone(),
        overview: c.structured.overview.clone(),
        emoji: c.structured.emoji.clone(),
        category: c.structured.category.clone(),
        source: c.source.clone(),
        language: c.language.clone(),
        created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
        discarded: c.discarded,
        imported_by_this_app,
        geolocation: c.geolocation.clone().filter(|g| !g.is_null()),
        folder_name: c.folder_name.clone(),
        apps_results: c
            .apps_results
            .iter()
            .map(|r| serde_json::json!({"app_id": r.app_id, "content": r.content}))
            .collect(),
        memory_id: None,
        deliveries: 1,
        updated_at: received_at,
    };
    ConversationWork {
        conversation,
        segments,
        events,
        summary,
        tasks,
    }
}

fn summary_memory(c: &payload::Conversation, created_at: Timestamp) -> Option<NewMemory> {
    let title = c.structured.title.trim();
    let overview = c.structured.overview.trim();
    let text = match (title.is_empty(), overview.is_empty()) {
        (true, true) => return None,
        (false, true) => title.to_owned(),
        (true, false) => overview.to_owned(),
        (false, false) => format!("{title}\n\n{overview}"),
    };
    let source = if c.source.is_empty() {
        "omi"
    } else {
        c.source.as_str()
    };
    let category = if c.structured.category.is_empty() {
        "other"
    } else {
        c.structured.category.as_str()
    };
    let metadata = serde_json::json!({"omi": {"conversation_id": c.id, "emoji": c.structured.emoji,
                                              "category": category, "source": source}});
    Some(NewMemory {
        content: Content::parse(&text).ok()?,
        category: Category::System,
        tags: tags(&[category, source]),
        visibility: Default::default(),
        source: Source::OmiConversation,
        conversation_id: ConversationId::parse(&c.id).ok(),
        metadata: Metadata::parse(metadata).unwrap_or_default(),
        occurred_at: c.started_at.or(Some(created_at)),
    })
}

pub fn day_summary(
    body: payload::DaySummaryBody,
    received_at: Timestamp,
) -> Option<DaySummaryWork> {
    let day = body.summary_json?;
    let key = day
        .id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| day.date.clone());
    if key.is_empty() {
        return None;
    }
    let occurred_at = body.created_at.unwrap_or(received_at);
    let memory =
        |text: String, extra: &[&str], category: Category, conversation: Option<&String>| {
            let mut tag_values = vec!["day_summary"];
            tag_values.extend_from_slice(extra);
            Some(NewMemory {
                content: Content::parse(&text).ok()?,
                category,
                tags: tags(&tag_values),
                visibility: Default::default(),
                source: Source::OmiDaySummary,
                conversation_id: conversation.and_then(|c| ConversationId::parse(c).ok()),
                metadata: Metadata::parse(
                    serde_json::json!({"omi": {"day_summary": key, "date": day.date}}),
                )
                .unwrap_or_default(),
                occurred_at: Some(occurred_at),
            })
        };
    let mut memories = Vec::new();
    let headline = [day.headline.trim(), day.overview.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>();
    if !headline.is_empty() {
        memories.extend(memory(headline.join("\n\n"), &[], Category::System, None));
    }
    for nugget in &day.knowledge_nuggets {
        memories.extend(memory(
            nugget.insight.clone(),
            &["knowledge"],
            Category::Interesting,
            nugget.conversation_id.as_ref(),
        ));
    }
    for decision in &day.decisions_made {
        memories.extend(memory(
            decision.decision.clone(),
            &["decision"],
            Category::System,
            decision.conversation_id.as_ref(),
        ));
    }
    // An item that points at a conversation shares that conversation's task identity, so the same
    // action item from both the conversation and the day summary is one task.
    let tasks = day
        .action_items
        .iter()
        .filter_map(|item| {
            let hash = short_hash(item.description.trim());
            let origin = match &item.source_conversation_id {
                Some(conversation) => format!("conversation:{conversation}:{hash}"),
                None => format!("day:{key}:{hash}"),
            };
            Some(NewTask {
                origin,
                description: TaskDescription::parse(&item.description).ok()?,
                completed: item.completed,
                due_at: None,
                conversation_id: item.source_conversation_id.clone(),
            })
        })
        .collect();
    let summary = serde_json::to_value(&day).unwrap_or_default();
    Some(DaySummaryWork {
        key,
        date: day.date,
        summary,
        memories,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!(
            "{}/../shared/fixtures/omi/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_conversation_becomes_a_summary_memory_and_tasks() {
        let derived = conversation(
            fixture("conversation_created_full.json"),
            None,
            Timestamp::now(),
        );
        let summary = derived.summary.expect("a summary memory");
        assert!(
            summary
                .content
                .as_str()
                .starts_with("Bike-Repair Kiosk Budget and Permit Check\n\n")
        );
        let tag_names: Vec<String> = summary.tags.into();
        assert!(tag_names.contains(&"business".to_owned()));
        assert_eq!(summary.source, Source::OmiConversation);
        assert_eq!(derived.tasks.len(), 2);
        assert_eq!(derived.events.len(), 1);
        assert_eq!(derived.segments.len(), 12);
    }

    #[test]
    fn segments_without_ids_get_omis_stable_ids() {
        let derived = conversation(
            fixture("conversation_created_minimal.json"),
            None,
            Timestamp::now(),
        );
        assert_eq!(
            derived.segments[0].id,
            "ec5e477c-860d-5c29-ab8d-ebe3aa080c92"
        );
        assert_eq!(
            derived.segments[1].id,
            "1f0eb065-b439-5f9b-b602-eb300f6b31c5"
        );
    }

    #[test]
    fn discarded_and_own_imports_derive_nothing() {
        let discarded = conversation(
            fixture("conversation_discarded.json"),
            None,
            Timestamp::now(),
        );
        assert!(discarded.summary.is_none() && discarded.tasks.is_empty());
        let own = conversation(
            fixture("conversation_imported.json"),
            Some("01JJ721682E66VBGQJPE985XGT"),
            Timestamp::now(),
        );
        assert!(own.conversation.imported_by_this_app);
        assert!(own.summary.is_none());
        let foreign = conversation(
            fixture("conversation_imported.json"),
            Some("another-app"),
            Timestamp::now(),
        );
        assert!(
            foreign.summary.is_some(),
            "another app's import is an ordinary conversation"
        );
    }

    #[test]
    fn a_day_summary_becomes_memories_and_tasks() {
        let day = day_summary(fixture("day_summary.json"), Timestamp::now()).unwrap();
        assert!(day.memories.len() >= 2);
        assert!(
            day.memories
                .iter()
                .all(|m| m.source == Source::OmiDaySummary)
        );
        assert!(!day.tasks.is_empty());
    }
}
