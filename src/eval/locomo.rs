//! LoCoMo (Maharana et al., ACL 2024) retrieval evaluation, as defined in
//! `../shared/data/locomo/README.md`: every dialog turn is a memory of its conversation's user, every
//! scored question a query; recall@k of the annotated evidence turns.
//!
//! The turns go through the normal write path (one conversation per session, turns in order,
//! `occurred_at` = the session's date), wait for the embedding worker, and every question runs through
//! the normal search path. Answers and evidence are used only to score.

use chrono::{NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::domain::{Content, ConversationId, MemoryId, Metadata, Source, Timestamp, Uid};
use crate::search::service::{RRF_K, rank};
use crate::search::{Mode, RawSignals, SearchRequest, Searcher, Tuning};
use crate::store::{Actor, Context, NewMemory, SearchFilter, Store, StoreError};

pub const KS: [usize; 4] = [1, 5, 10, 20];
pub const MODES: [Mode; 3] = [Mode::Text, Mode::Semantic, Mode::Hybrid];

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {message}")]
    Data { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn data_error(path: &Path, message: impl Into<String>) -> EvalError {
    EvalError::Data {
        path: path.display().to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct Turn {
    pub dia_id: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub number: u32,
    pub date_text: String,
    pub date: Timestamp,
    pub turns: Vec<Turn>,
}

#[derive(Debug, Clone)]
pub struct Question {
    /// Position in the file's `qa` list.
    pub index: usize,
    pub text: String,
    pub category: u8,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    /// The file name without `.json`.
    pub id: String,
    pub sessions: Vec<Session>,
    /// Scored questions only (categories 1–4 with evidence left after cleaning).
    pub questions: Vec<Question>,
}

/// `"1:56 pm on 8 May, 2023"` → that minute, UTC.
pub fn parse_session_date(raw: &str) -> Option<Timestamp> {
    let cleaned = raw.trim().to_lowercase();
    NaiveDateTime::parse_from_str(&cleaned, "%I:%M %p on %d %B, %Y")
        .ok()
        .map(|naive| Timestamp::from_micros(Utc.from_utc_datetime(&naive).timestamp_micros()))
}

/// Every `D<a>:<b>` in an evidence entry, allowing spaces and a stray colon after `D`.
pub fn parse_evidence(raw: &str) -> Vec<String> {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let digits = |i: &mut usize| -> Option<u32> {
        let start = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>().parse().ok()
    };
    while i < chars.len() {
        if chars[i] != 'D' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && (chars[j] == ' ' || chars[j] == ':') {
            j += 1;
        }
        let Some(a) = digits(&mut j) else {
            i += 1;
            continue;
        };
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j < chars.len() && chars[j] == ':' {
            j += 1;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            if let Some(b) = digits(&mut j) {
                out.push(format!("D{a}:{b}"));
            }
        }
        i = j.max(i + 1);
    }
    out
}

pub fn load(path: &Path) -> Result<Dialog, EvalError> {
    let raw = std::fs::read_to_string(path)?;
    let doc: Value = serde_json::from_str(&raw).map_err(|e| data_error(path, e.to_string()))?;
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| data_error(path, "no file name"))?
        .to_owned();
    let mut sessions = Vec::new();
    if let Some(object) = doc.as_object() {
        for (key, value) in object {
            let Some(number) = key
                .strip_prefix("session_")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(turns) = value.as_array().filter(|t| !t.is_empty()) else {
                continue;
            };
            let date_text = object
                .get(&format!("session_{number}_date_time"))
                .and_then(Value::as_str)
                .ok_or_else(|| data_error(path, format!("session {number} has no date")))?
                .to_owned();
            let date = parse_session_date(&date_text)
                .ok_or_else(|| data_error(path, format!("cannot read the date {date_text:?}")))?;
            let turns = turns
                .iter()
                .map(|t| {
                    let speaker = t["speaker"].as_str().unwrap_or_default();
                    let mut text = format!("{speaker}: {}", t["text"].as_str().unwrap_or_default());
                    if let Some(caption) = t["blip_caption"].as_str().filter(|c| !c.is_empty()) {
                        text.push_str(&format!(" [shares a photo: {caption}]"));
                    }
                    Turn {
                        dia_id: t["dia_id"].as_str().unwrap_or_default().to_owned(),
                        text,
                    }
                })
                .collect();
            sessions.push(Session {
                number,
                date_text,
                date,
                turns,
            });
        }
    }
    sessions.sort_by_key(|s| s.number);
    let known: std::collections::HashSet<&str> = sessions
        .iter()
        .flat_map(|s| s.turns.iter().map(|t| t.dia_id.as_str()))
        .collect();
    let mut questions = Vec::new();
    for (index, qa) in doc["qa"].as_array().into_iter().flatten().enumerate() {
        let category = qa["category"].as_u64().unwrap_or(0) as u8;
        if !(1..=4).contains(&category) {
            continue;
        }
        let mut evidence: Vec<String> = Vec::new();
        for entry in qa["evidence"].as_array().into_iter().flatten() {
            for id in parse_evidence(entry.as_str().unwrap_or_default()) {
                if known.contains(id.as_str()) && !evidence.contains(&id) {
                    evidence.push(id);
                }
            }
        }
        if evidence.is_empty() {
            continue;
        }
        questions.push(Question {
            index,
            text: qa["question"].as_str().unwrap_or_default().to_owned(),
            category,
            evidence,
        });
    }
    Ok(Dialog {
        id,
        sessions,
        questions,
    })
}

/// A dialog loaded into the store: its user and which turn each memory is.
pub struct Loaded {
    pub dialog: Dialog,
    pub uid: Uid,
    pub dia_ids: HashMap<MemoryId, Vec<String>>,
}

/// Writes every turn as a memory of the dialog's own user, session by session, in order.
pub async fn write(store: &dyn Store, dialog: Dialog) -> Result<Loaded, EvalError> {
    let uid = Uid::parse(format!("locomo-{}", dialog.id)).map_err(|e| EvalError::Data {
        path: dialog.id.clone(),
        message: e.to_string(),
    })?;
    match store.create_user(&uid).await {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let ctx = Context::new(Actor::Cli, Some("eval-locomo".into()));
    let mut dia_ids: HashMap<MemoryId, Vec<String>> = HashMap::new();
    for session in &dialog.sessions {
        let conversation_id = ConversationId::parse(&format!("{}-s{}", dialog.id, session.number))
            .map_err(|e| EvalError::Data {
                path: dialog.id.clone(),
                message: e.to_string(),
            })?;
        for turn in &session.turns {
            let metadata = Metadata::parse(serde_json::json!({
                "dia_id": turn.dia_id,
                "session_date_time": session.date_text,
            }))
            .map_err(|e| EvalError::Data {
                path: dialog.id.clone(),
                message: e.to_string(),
            })?;
            let new = NewMemory {
                conversation_id: Some(conversation_id.clone()),
                metadata,
                occurred_at: Some(session.date),
                ..NewMemory::new(
                    Content::parse(&turn.text).map_err(|e| EvalError::Data {
                        path: dialog.id.clone(),
                        message: format!("{}: {e}", turn.dia_id),
                    })?,
                    Source::Import,
                )
            };
            // One at a time: the order of writing is the order of the turns.
            let created = store.create_memory(&uid, new, &ctx).await?;
            dia_ids
                .entry(created.memory().id)
                .or_default()
                .push(turn.dia_id.clone());
        }
    }
    Ok(Loaded {
        dialog,
        uid,
        dia_ids,
    })
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub questions: usize,
    /// recall@1, @5, @10, @20.
    pub recall: [f64; 4],
    pub hit_at_10: f64,
}

impl Scores {
    fn add(&mut self, recall: [f64; 4], hit: f64) {
        self.questions += 1;
        for (total, r) in self.recall.iter_mut().zip(recall) {
            *total += r;
        }
        self.hit_at_10 += hit;
    }

    fn finish(mut self) -> Self {
        if self.questions > 0 {
            let n = self.questions as f64;
            self.recall.iter_mut().for_each(|r| *r /= n);
            self.hit_at_10 /= n;
        }
        self
    }
}

/// recall@k for each k in `KS`, and hit@10, of a ranked list of turn ids.
pub fn score(ranked: &[String], evidence: &[String]) -> ([f64; 4], f64) {
    let mut recall = [0.0; 4];
    for (slot, k) in recall.iter_mut().zip(KS) {
        let top = &ranked[..ranked.len().min(k)];
        let found = evidence.iter().filter(|e| top.contains(e)).count();
        *slot = found as f64 / evidence.len() as f64;
    }
    let hit = if recall[2] > 0.0 { 1.0 } else { 0.0 };
    (recall, hit)
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// `text`, `semantic`, `hybrid`, or `hybrid-rrf` (the untuned baseline).
    pub mode: String,
    /// "all" and "1".."4".
    pub by_category: BTreeMap<String, Scores>,
    pub mean_latency_ms: f64,
    /// The tuning each held-out file was measured with (chosen on the other files).
    pub tuning_by_held_out_file: BTreeMap<String, Tuning>,
    /// The tuning chosen on every file (what the defaults should be; not a measurement).
    pub tuning_on_all: Option<Tuning>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: Vec<String>,
    pub memories: usize,
    pub questions: usize,
    pub semantic_available: bool,
    pub embedding_seconds: f64,
    pub protocol: String,
    pub modes: Vec<ModeReport>,
}

fn ranked_turns(loaded: &Loaded, ids: impl Iterator<Item = MemoryId>) -> Vec<String> {
    ids.flat_map(|id| loaded.dia_ids.get(&id).cloned().unwrap_or_default())
        .collect()
}

/// The candidate tunings: context weights for either signal and the text weight of the fusion.
fn grid(mode: Mode) -> Vec<Tuning> {
    let steps = [0.0, 0.25, 0.5, 0.75, 1.0];
    let weights: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect();
    let mut out = Vec::new();
    for &text_context in &steps {
        for &semantic_context in &steps {
            for &text_weight in &weights {
                for speaker_bonus in [0.0, 0.05, 0.1, 0.15, 0.2, 0.3] {
                    let t = Tuning {
                        text_context,
                        semantic_context,
                        text_weight,
                        speaker_bonus,
                        date_boost: 0.0,
                    };
                    // Parameters a mode does not use stay at one value.
                    let used = match mode {
                        Mode::Text => {
                            semantic_context == 0.0 && text_weight == 0.0 && speaker_bonus == 0.0
                        }
                        Mode::Semantic => text_context == 0.0 && text_weight == 0.0,
                        Mode::Hybrid => true,
                    };
                    if used {
                        out.push(t);
                    }
                }
            }
        }
    }
    out
}

fn request(question: &Question, mode: Mode, tuning: Tuning) -> SearchRequest {
    SearchRequest {
        query: question.text.clone(),
        mode,
        limit: 20,
        filter: SearchFilter::default(),
        tuning,
    }
}

/// Every mode under leave-one-file-out cross-validation: for each file, the tuning is chosen on the
/// other files' questions, then that file's questions run through the normal search path with it.
pub async fn evaluate(
    searcher: &Searcher,
    loaded: &[Loaded],
) -> Result<Vec<ModeReport>, StoreError> {
    // Both signals for every question, once (tuning only re-ranks them).
    let mut prepared = Vec::new();
    for (d, dialog) in loaded.iter().enumerate() {
        for (q, question) in dialog.dialog.questions.iter().enumerate() {
            let raw = searcher
                .signals(
                    &dialog.uid,
                    &request(question, Mode::Hybrid, Tuning::default()),
                )
                .await?;
            prepared.push((d, q, raw));
        }
    }
    let mut reports = Vec::new();
    // The untuned baseline: reciprocal rank fusion of plain BM25 and plain cosine.
    {
        let plain = Tuning {
            text_context: 0.0,
            semantic_context: 0.0,
            text_weight: 0.5,
            speaker_bonus: 0.0,
            date_boost: 0.0,
        };
        let mut by_category: BTreeMap<String, Scores> = BTreeMap::new();
        for (d, q, raw) in &prepared {
            let mut fused: HashMap<MemoryId, f64> = HashMap::new();
            for mode in [Mode::Text, Mode::Semantic] {
                for (r, (id, _, _)) in rank(raw, mode, &plain, 100).iter().enumerate() {
                    *fused.entry(*id).or_default() += 1.0 / (RRF_K + (r + 1) as f64);
                }
            }
            let mut order: Vec<(MemoryId, f64)> = fused.into_iter().collect();
            order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let turns = ranked_turns(&loaded[*d], order.iter().take(20).map(|o| o.0));
            let question = &loaded[*d].dialog.questions[*q];
            let (recall, hit) = score(&turns, &question.evidence);
            by_category
                .entry("all".into())
                .or_default()
                .add(recall, hit);
            by_category
                .entry(question.category.to_string())
                .or_default()
                .add(recall, hit);
        }
        reports.push(ModeReport {
            mode: "hybrid-rrf".into(),
            by_category: by_category
                .into_iter()
                .map(|(k, v)| (k, v.finish()))
                .collect(),
            mean_latency_ms: 0.0,
            tuning_by_held_out_file: BTreeMap::new(),
            tuning_on_all: None,
        });
    }
    for mode in MODES {
        let mut by_category: BTreeMap<String, Scores> = BTreeMap::new();
        let mut tuning_by_held_out_file = BTreeMap::new();
        let mut elapsed = 0.0;
        let mut count = 0usize;
        for (held_out, dialog) in loaded.iter().enumerate() {
            let others: Vec<&(usize, usize, RawSignals)> =
                prepared.iter().filter(|p| p.0 != held_out).collect();
            let tuning = if others.is_empty() {
                Tuning::default()
            } else {
                tune_refs(loaded, &others, mode)
            };
            tuning_by_held_out_file.insert(dialog.dialog.id.clone(), tuning);
            for question in &dialog.dialog.questions {
                let started = Instant::now();
                let results = searcher
                    .search_memories(&dialog.uid, &request(question, mode, tuning))
                    .await?;
                elapsed += started.elapsed().as_secs_f64();
                count += 1;
                let turns = ranked_turns(dialog, results.items.iter().map(|h| h.memory.id));
                let (recall, hit) = score(&turns, &question.evidence);
                by_category
                    .entry("all".into())
                    .or_default()
                    .add(recall, hit);
                by_category
                    .entry(question.category.to_string())
                    .or_default()
                    .add(recall, hit);
            }
        }
        let all: Vec<&(usize, usize, RawSignals)> = prepared.iter().collect();
        reports.push(ModeReport {
            mode: mode.as_str().into(),
            by_category: by_category
                .into_iter()
                .map(|(k, v)| (k, v.finish()))
                .collect(),
            mean_latency_ms: elapsed * 1000.0 / count.max(1) as f64,
            tuning_by_held_out_file,
            tuning_on_all: Some(tune_refs(loaded, &all, mode)),
        });
    }
    Ok(reports)
}

/// The tuning with the best mean recall@5 + recall@10 over these questions.
fn tune_refs(loaded: &[Loaded], prepared: &[&(usize, usize, RawSignals)], mode: Mode) -> Tuning {
    let mut best = (Tuning::default(), f64::MIN);
    for tuning in grid(mode) {
        let total = total_recall(loaded, prepared, mode, &tuning);
        if total > best.1 + 1e-9 {
            best = (tuning, total);
        }
    }
    // The date boost only matters for the few questions that name a date: tuned alone, around the
    // best of the rest, so the grid stays small.
    for date_boost in [0.05, 0.1, 0.2, 0.3, 0.5, 1.0] {
        let tuning = Tuning {
            date_boost,
            ..best.0
        };
        let total = total_recall(loaded, prepared, mode, &tuning);
        if total > best.1 + 1e-9 {
            best = (tuning, total);
        }
    }
    best.0
}

/// Sum over the questions of recall@5 + recall@10 under `tuning`.
fn total_recall(
    loaded: &[Loaded],
    prepared: &[&(usize, usize, RawSignals)],
    mode: Mode,
    tuning: &Tuning,
) -> f64 {
    let mut total = 0.0;
    for (d, q, raw) in prepared.iter().map(|p| (&p.0, &p.1, &p.2)) {
        let ranked = rank(raw, mode, tuning, 20);
        let turns = ranked_turns(&loaded[*d], ranked.iter().map(|r| r.0));
        let (recall, _) = score(&turns, &loaded[*d].dialog.questions[*q].evidence);
        total += recall[1] + recall[2];
    }
    total
}

/// Loads the files into `store`, waits for their embeddings and evaluates every mode.
pub async fn run(
    store: Arc<dyn Store>,
    searcher: &Searcher,
    files: &[PathBuf],
) -> Result<Report, EvalError> {
    let mut loaded = Vec::new();
    let mut memories = 0;
    for path in files {
        let dialog = load(path)?;
        let written = write(store.as_ref(), dialog).await?;
        memories += written.dia_ids.len();
        loaded.push(written);
    }
    let started = Instant::now();
    if let Some(worker) = searcher.worker() {
        worker.drain().await;
    }
    let embedding_seconds = started.elapsed().as_secs_f64();
    let modes = evaluate(searcher, &loaded).await?;
    Ok(Report {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        memories,
        questions: loaded.iter().map(|l| l.dialog.questions.len()).sum(),
        semantic_available: searcher.semantic_available(),
        embedding_seconds,
        protocol: "leave-one-file-out: each file's questions are searched with the tuning (context \
                   weights, fusion weight) that maximises mean recall@5 + recall@10 on the other files; \
                   hybrid-rrf is BM25 and cosine without conversation context (speaker names still left out of \
                   the question's embedding) fused by reciprocal rank (k = 60), untuned"
            .into(),
        modes,
    })
}

/// The report as a table for people.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "LoCoMo retrieval: {} memories, {} scored questions{}\n",
        report.memories,
        report.questions,
        if report.semantic_available {
            format!("; embedded in {:.1} s", report.embedding_seconds)
        } else {
            "; no embedding model (semantic and hybrid ran as text)".into()
        }
    );
    out.push_str("mode      category    n    R@1    R@5   R@10   R@20  hit@10\n");
    for mode in &report.modes {
        for (category, s) in &mode.by_category {
            out.push_str(&format!(
                "{:<9} {:<8} {:>4}  {:.3}  {:.3}  {:.3}  {:.3}  {:.3}\n",
                mode.mode,
                category,
                s.questions,
                s.recall[0],
                s.recall[1],
                s.recall[2],
                s.recall[3],
                s.hit_at_10
            ));
        }
        if mode.mean_latency_ms > 0.0 {
            out.push_str(&format!(
                "{:<9} mean search latency {:.1} ms\n",
                mode.mode, mode.mean_latency_ms
            ));
        }
        for (file, t) in &mode.tuning_by_held_out_file {
            out.push_str(&format!(
                "{:<9} file {file} measured with (tuned on the others): text_context {} semantic_context {} text_weight {} speaker_bonus {} date_boost {}\n",
                mode.mode, t.text_context, t.semantic_context, t.text_weight, t.speaker_bonus, t.date_boost
            ));
        }
        if let Some(t) = mode.tuning_on_all {
            out.push_str(&format!(
                "{:<9} tuned on all files: text_context {} semantic_context {} text_weight {} speaker_bonus {} date_boost {}\n",
                mode.mode, t.text_context, t.semantic_context, t.text_weight, t.speaker_bonus, t.date_boost
            ));
        }
    }
    out
}

/// Recall@k overall and recall@10 per category, per mode.
pub fn chart(report: &Report) -> String {
    let series: Vec<&str> = report.modes.iter().map(|m| m.mode.as_str()).collect();
    let mut groups = Vec::new();
    for (i, k) in KS.iter().enumerate() {
        groups.push((
            format!("R@{k} all"),
            report
                .modes
                .iter()
                .map(|m| m.by_category.get("all").map_or(0.0, |s| s.recall[i]))
                .collect(),
        ));
    }
    for category in ["1", "2", "3", "4"] {
        groups.push((
            format!("R@10 cat {category}"),
            report
                .modes
                .iter()
                .map(|m| m.by_category.get(category).map_or(0.0, |s| s.recall[2]))
                .collect(),
        ));
    }
    crate::eval::chart::grouped_bars(
        &format!(
            "LoCoMo retrieval, leave-one-conversation-out ({} questions, {} memories)",
            report.questions, report.memories
        ),
        &series,
        &groups,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse() {
        let t = parse_session_date("1:56 pm on 8 May, 2023").unwrap();
        assert_eq!(t.to_string(), "2023-05-08T13:56:00.000000Z");
        let t = parse_session_date("10:04 am on 19 December, 2023").unwrap();
        assert_eq!(t.to_string(), "2023-12-19T10:04:00.000000Z");
        assert!(parse_session_date("yesterday").is_none());
    }

    #[test]
    fn evidence_parses_like_the_readme() {
        assert_eq!(parse_evidence("D8:6; D9:17"), vec!["D8:6", "D9:17"]);
        assert_eq!(parse_evidence("D:11:26"), vec!["D11:26"]);
        assert_eq!(parse_evidence("D30:05"), vec!["D30:5"]);
        assert_eq!(parse_evidence("D1:3"), vec!["D1:3"]);
        assert!(parse_evidence("").is_empty());
    }

    #[test]
    fn recall_counts_evidence_in_the_top_k() {
        let ranked: Vec<String> = ["D1:1", "D1:2", "D1:3"].map(String::from).to_vec();
        let (recall, hit) = score(&ranked, &["D1:3".into(), "D9:9".into()]);
        assert_eq!(recall, [0.0, 0.5, 0.5, 0.5]);
        assert_eq!(hit, 1.0);
    }
}
