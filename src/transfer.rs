//! The JSONL export format, and reading it back for import. One JSON object per line:
//!
//! ```text
//! {"type":"header","format":"angel-memory-export","format_version":1,"uid":"…","exported_at":"…"}
//! {"type":"memory","memory":{…},"versions":[{…},…]}      one per memory, deleted ones included
//! {"type":"audit","event":{…}}                            the audit trail, newest first
//! {"type":"end","memories":N,"audit_events":M}            proves the file is complete
//! ```

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

use crate::domain::{Cursor, Timestamp, Uid};
use crate::store::{AuditEvent, ExportedMemory, PageRequest, Store, StoreError};

pub const FORMAT: &str = "angel-memory-export";
pub const FORMAT_VERSION: u32 = 1;
const PAGE: u32 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header {
        format: String,
        format_version: u32,
        uid: Uid,
        exported_at: Timestamp,
    },
    Memory(ExportedMemory),
    Audit {
        event: AuditEvent,
    },
    End {
        memories: u64,
        audit_events: u64,
    },
}

#[derive(Debug, Error, PartialEq)]
#[error("line {line}: {reason}")]
pub struct ImportError {
    pub line: usize,
    pub reason: String,
}

/// A parsed export: the memories to import, and how many audit events were in the file.
#[derive(Debug, Default)]
pub struct ImportFile {
    pub memories: Vec<ExportedMemory>,
    pub audit_events: u64,
}

/// Parses and checks a whole export before anything is written: every line must be valid, each
/// memory's history consistent, and an `end` line, if present, must match what came before it.
pub fn parse(text: &str) -> Result<ImportFile, ImportError> {
    let mut file = ImportFile::default();
    let mut ended = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |reason: String| ImportError { line, reason };
        if raw.trim().is_empty() {
            continue;
        }
        if ended {
            return Err(err("nothing may follow the end line".into()));
        }
        match serde_json::from_str::<Line>(raw).map_err(|e| err(e.to_string()))? {
            Line::Header {
                format,
                format_version,
                ..
            } => {
                if format != FORMAT || format_version != FORMAT_VERSION {
                    return Err(err(format!(
                        "unsupported format {format} version {format_version}"
                    )));
                }
            }
            Line::Memory(record) => file.memories.push(check(record).map_err(err)?),
            Line::Audit { .. } => file.audit_events += 1,
            Line::End {
                memories,
                audit_events,
            } => {
                if memories != file.memories.len() as u64 || audit_events != file.audit_events {
                    return Err(err(format!(
                        "the file is incomplete: its end line counts {memories} memories and {audit_events} audit events, \
                         but {} and {} came before it",
                        file.memories.len(),
                        file.audit_events
                    )));
                }
                ended = true;
            }
        }
    }
    Ok(file)
}

/// Recomputes content hashes (never trusted from a file) and checks that the history is whole.
fn check(mut record: ExportedMemory) -> Result<ExportedMemory, String> {
    if record.versions.is_empty() {
        return Err(format!("memory {} has no versions", record.memory.id));
    }
    for (expected, version) in (1..).zip(record.versions.iter_mut()) {
        if version.version != expected || version.memory_id != record.memory.id {
            return Err(format!(
                "memory {}: versions must be numbered 1, 2, … and belong to it",
                record.memory.id
            ));
        }
        version.content_hash = version.content.hash();
    }
    record.memory.content_hash = record.memory.content.hash();
    let last = record
        .versions
        .last()
        .map(|v| (v.version, v.content_hash.clone()));
    if last != Some((record.memory.version, record.memory.content_hash.clone())) {
        return Err(format!(
            "memory {}: its last version does not match its current state",
            record.memory.id
        ));
    }
    Ok(record)
}

enum Step {
    Header,
    Memories(Option<Cursor>),
    Audit(Option<Cursor>),
    End,
    Done,
}

/// The export as a stream of text chunks (whole lines), read page by page. A failure mid-way ends the
/// stream with the error, and the missing `end` line shows the export is incomplete.
pub fn export(
    store: Arc<dyn Store>,
    uid: Uid,
) -> impl Stream<Item = Result<String, StoreError>> + Send {
    let counts = (0u64, 0u64);
    futures_util::stream::unfold((Step::Header, counts), move |(step, (memories, audits))| {
        let (store, uid) = (Arc::clone(&store), uid.clone());
        async move {
            let page = |after| PageRequest { limit: PAGE, after };
            let (chunk, next) = match step {
                Step::Done => return None,
                Step::Header => {
                    let header = Line::Header {
                        format: FORMAT.into(),
                        format_version: FORMAT_VERSION,
                        uid,
                        exported_at: Timestamp::now(),
                    };
                    (
                        Ok(to_line(&header)),
                        (Step::Memories(None), (memories, audits)),
                    )
                }
                Step::Memories(after) => match store.export_memories(&uid, page(after)).await {
                    Ok(p) => {
                        let text: String = p
                            .items
                            .iter()
                            .map(|m| to_line(&Line::Memory(m.clone())))
                            .collect();
                        let count = memories + p.items.len() as u64;
                        let next = p
                            .next_cursor
                            .map_or(Step::Audit(None), |c| Step::Memories(Some(c)));
                        (Ok(text), (next, (count, audits)))
                    }
                    Err(e) => (Err(e), (Step::Done, (memories, audits))),
                },
                Step::Audit(after) => match store.audit_events(&uid, page(after)).await {
                    Ok(p) => {
                        let text: String = p
                            .items
                            .iter()
                            .map(|e| to_line(&Line::Audit { event: e.clone() }))
                            .collect();
                        let count = audits + p.items.len() as u64;
                        let next = p.next_cursor.map_or(Step::End, |c| Step::Audit(Some(c)));
                        (Ok(text), (next, (memories, count)))
                    }
                    Err(e) => (Err(e), (Step::Done, (memories, audits))),
                },
                Step::End => {
                    let end = Line::End {
                        memories,
                        audit_events: audits,
                    };
                    (Ok(to_line(&end)), (Step::Done, (memories, audits)))
                }
            };
            Some((chunk, next))
        }
    })
}

fn to_line(line: &Line) -> String {
    let mut text = serde_json::to_string(line).unwrap_or_default();
    text.push('\n');
    text
}
