//! `migrate-data`: moves a deployment from its SQLite file to PostgreSQL, verified table by table.

use clap::Args;
use std::path::PathBuf;

use super::CliError;
use super::output::{Output, Progress};
use crate::store::migrate_data::{self, CopyProgress, TableReport};

#[derive(Debug, Args)]
pub struct MigrateDataArgs {
    /// The SQLite file to read (e.g. data/angel-memory.db); stop the server that uses it first.
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to fill (`postgres://…`); it must hold no users yet.
    #[arg(long)]
    to: String,
}

/// A progress bar per table on a terminal, plain lines otherwise.
struct Reporter<'a> {
    out: &'a Output,
    current: Option<Progress>,
}

impl CopyProgress for Reporter<'_> {
    fn table_started(&mut self, table: &'static str, rows: u64) {
        if let Some(done) = self.current.take() {
            done.finish();
        }
        self.current = Some(Progress::new(table, rows));
    }

    fn rows_copied(&mut self, rows: u64) {
        if let Some(progress) = &mut self.current {
            progress.advance(rows);
        }
    }

    fn table_verified(&mut self, report: &TableReport) {
        if let Some(done) = self.current.take() {
            done.finish();
        }
        if !self.out.is_json() {
            self.out.line(&format!(
                "verified {:<20} {:>9} rows  sha256-sum {}",
                report.table, report.rows, report.hash
            ));
        }
    }
}

pub async fn run(args: MigrateDataArgs, out: &Output) -> Result<(), CliError> {
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        return Err(CliError::Usage("--to must be a postgres:// URL".into()));
    }
    let mut reporter = Reporter { out, current: None };
    let reports = migrate_data::sqlite_to_postgres(&args.from, &args.to, &mut reporter).await?;
    let rows: u64 = reports.iter().map(|r| r.rows).sum();
    if out.is_json() {
        let tables: Vec<_> = reports
            .iter()
            .map(|r| serde_json::json!({"table": r.table, "rows": r.rows, "sha256_sum": r.hash}))
            .collect();
        out.value(&serde_json::json!({"rows": rows, "tables": tables}));
    } else {
        out.line(&format!(
            "moved {rows} rows in {} tables; counts and hashes match. Point database_url at the new database.",
            reports.len()
        ));
    }
    Ok(())
}
