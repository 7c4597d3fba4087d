//! `export` and `import`, in the same JSONL format as `GET /v1/export` and `POST /v1/import`.

use clap::Args;
use futures_util::StreamExt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::CliError;
use super::output::{Output, Progress};
use crate::domain::Uid;
use crate::store::{Context, Store};
use crate::transfer;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    user: String,
    /// File to write (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(long)]
    user: String,
    /// A file written by `export` or `GET /v1/export`.
    file: PathBuf,
}

pub async fn export(store: Arc<dyn Store>, args: ExportArgs) -> Result<(), CliError> {
    let uid = Uid::parse(args.user)?;
    let stats = store.stats(&uid).await?;
    let mut progress = Progress::new("export", stats.active + stats.deleted);
    let mut sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut stream = std::pin::pin!(transfer::export(store, uid));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        progress.advance(
            chunk
                .lines()
                .filter(|l| l.starts_with("{\"type\":\"memory\""))
                .count() as u64,
        );
        sink.write_all(chunk.as_bytes())?;
    }
    sink.flush()?;
    progress.finish();
    Ok(())
}

pub async fn import(store: Arc<dyn Store>, args: ImportArgs, out: &Output) -> Result<(), CliError> {
    let uid = Uid::parse(args.user)?;
    let text = std::fs::read_to_string(&args.file)?;
    let file = transfer::parse(&text).map_err(|e| {
        CliError::Usage(format!(
            "{}: {e}; nothing was imported",
            args.file.display()
        ))
    })?;
    // One transaction: there is no partial progress to show, only the outcome.
    eprintln!("importing {} memories into {uid} …", file.memories.len());
    let report = store
        .import_memories(&uid, file.memories, &Context::cli())
        .await?;
    out.value(&report);
    Ok(())
}
