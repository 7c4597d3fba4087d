//! `search` (the same search as the HTTP API, on the database directly) and `eval` (retrieval quality
//! on public benchmarks, in a scratch database).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

use super::CliError;
use super::output::Output;
use crate::config::Config;
use crate::domain::{Category, Tags, Uid};
use crate::eval::locomo;
use crate::search::embed::EmbeddingSettings;
use crate::search::{Mode, SearchRequest, Searcher};
use crate::store::{SearchFilter, Store};

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[arg(long)]
    user: String,
    /// What to look for, in any words.
    query: String,
    /// text, semantic or hybrid.
    #[arg(long, default_value = "hybrid")]
    mode: String,
    #[arg(long, default_value_t = 10)]
    limit: usize,
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    category: Option<String>,
}

pub async fn search(
    store: Arc<dyn Store>,
    config: &Config,
    args: SearchArgs,
    out: &Output,
) -> Result<(), CliError> {
    let uid = Uid::parse(args.user)?;
    let mode: Mode = args.mode.parse().map_err(CliError::Usage)?;
    if args.limit == 0 || args.limit > crate::search::service::MAX_LIMIT {
        return Err(CliError::Usage("--limit must be between 1 and 100".into()));
    }
    let filter = SearchFilter {
        tags: Tags::parse(&args.tags)?.iter().cloned().collect(),
        category: args.category.as_deref().map(Category::parse).transpose()?,
        ..SearchFilter::default()
    };
    store.get_user(&uid).await?;
    let searcher = Searcher::from_settings(store, &config.embedding).await;
    // Without a server running, nothing else embeds what the CLI wrote.
    if let Some(worker) = searcher.worker() {
        let embedded = worker.drain().await;
        if embedded > 0 {
            out.line(&format!("embedded {embedded} pending memories"));
        }
    }
    let request = SearchRequest {
        query: args.query,
        mode,
        limit: args.limit,
        filter,
        tuning: Default::default(),
    };
    let results = searcher.search_memories(&uid, &request).await?;
    if out.is_json() {
        out.value(&results);
        return Ok(());
    }
    if let Some(notice) = &results.notice {
        out.line(&format!("note: {notice}"));
    }
    if results.items.is_empty() {
        out.line("no matches");
    }
    for (i, hit) in results.items.iter().enumerate() {
        let signal = |s: Option<crate::search::Signal>| {
            s.map_or("-".to_owned(), |s| format!("#{} ({:.3})", s.rank, s.score))
        };
        out.line(&format!(
            "{:>2}. {}  score {:.4}  text {}  semantic {}\n    {}",
            i + 1,
            hit.memory.id,
            hit.score,
            signal(hit.signals.text),
            signal(hit.signals.semantic),
            hit.snippet
        ));
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Recall@1/5/10/20 on LoCoMo conversation files (e.g. ../shared/data/locomo/*.json), per category
    /// and mode; writes JSON and an SVG chart.
    Locomo {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where the JSON and the chart go.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
}

pub async fn eval(config: &Config, command: EvalCommand, out: &Output) -> Result<(), CliError> {
    let EvalCommand::Locomo {
        files,
        out: out_dir,
    } = command;
    let scratch = std::env::temp_dir().join(format!(
        "angel-memory-eval-{}-{}",
        std::process::id(),
        crate::domain::Timestamp::now().as_micros()
    ));
    std::fs::create_dir_all(&scratch)?;
    let result = async {
        let store: Arc<dyn Store> = Arc::new(crate::store::sqlite::SqliteStore::open(
            &scratch.join("eval.db"),
            &crate::store::sqlite::PoolOptions::default(),
        )?);
        // Someone is waiting for the result: the embedding queue runs at normal priority.
        let settings = EmbeddingSettings {
            low_priority_queue: false,
            ..config.embedding.clone()
        };
        let searcher = Searcher::from_settings(Arc::clone(&store), &settings).await;
        locomo::run(store, &searcher, &files)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    std::fs::create_dir_all(&out_dir)?;
    let json_path = out_dir.join("locomo.json");
    let svg_path = out_dir.join("locomo.svg");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )?;
    std::fs::write(&svg_path, locomo::chart(&report))?;
    if out.is_json() {
        out.value(&report);
    } else {
        out.line(&locomo::table(&report));
        out.line(&format!(
            "wrote {} and {}",
            json_path.display(),
            svg_path.display()
        ));
    }
    Ok(())
}
