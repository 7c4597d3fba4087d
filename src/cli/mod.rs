//! The command line: `serve`, `migrate`, and operator commands that work on the database directly
//! (so they also work while no server runs, and before any admin token exists).

mod accounts;
mod inbox;
mod manifest;
mod memories;
mod migrate_data;
mod omi;
mod output;
mod search;
mod transfer;
mod ui;

use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::domain::ValidationError;
use crate::http::{Application, StartError};
use crate::store::{self, Store, StoreError};

const EXIT_CODES: &str = "Exit codes: 0 success, 1 failure, 2 usage error, 3 not found, 4 conflict \
(stale version, duplicate, existing user), 5 invalid configuration.";

#[derive(Debug, Parser)]
#[command(name = "angel-memory", version, about = "A self-hosted memory service for Omi users and their AI agents", after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file (TOML); also ANGEL_MEMORY_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory of the embedded database; also ANGEL_MEMORY_DATA_DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite:<path>); overrides --data-dir; also ANGEL_MEMORY_DATABASE_URL.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Address and port, e.g. 127.0.0.1:8787; also ANGEL_MEMORY_LISTEN.
        #[arg(long)]
        listen: Option<String>,
        /// text or json; also ANGEL_MEMORY_LOG_FORMAT.
        #[arg(long)]
        log_format: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(accounts::UserCommand),
    /// Manage a user's API keys.
    #[command(subcommand)]
    Key(accounts::KeyCommand),
    /// Work with a user's memories.
    #[command(subcommand)]
    Memory(memories::MemoryCommand),
    /// Counts and sizes of a user's memories.
    Stats {
        #[arg(long)]
        user: String,
    },
    /// The inbox of Omi webhook events: list, and retry dead ones.
    #[command(subcommand)]
    Inbox(inbox::InboxCommand),
    /// Write all of a user's data as JSONL.
    Export(transfer::ExportArgs),
    /// Read a JSONL export into a user's account (all or nothing).
    Import(transfer::ImportArgs),
    /// Search a user's memories by words and meaning.
    Search(search::SearchArgs),
    /// Measure retrieval quality on a public benchmark.
    #[command(subcommand)]
    Eval(search::EvalCommand),
    /// Omi: connection status, the outbox of writes, sync settings, and pulling a user's data.
    #[command(subcommand)]
    Omi(omi::OmiCommand),
    /// The app home (web pages under /app): sign-in links.
    #[command(subcommand)]
    Ui(ui::UiCommand),
    /// Move a deployment from its SQLite file to PostgreSQL, verifying counts and hashes.
    MigrateData(migrate_data::MigrateDataArgs),
}

#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Omi(#[from] crate::omi::client::OmiError),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 5,
            Self::Invalid(_) | Self::Usage(_) => 2,
            Self::Store(StoreError::NotFound | StoreError::UnknownUser) => 3,
            Self::Store(
                StoreError::VersionConflict { .. } | StoreError::Conflict(_) | StoreError::Deleted,
            ) => 4,
            _ => 1,
        }
    }
}

/// Parses the arguments, runs the command, and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let mut overrides = serde_json::Map::new();
    if let Some(dir) = &cli.data_dir {
        overrides.insert("data_dir".into(), dir.display().to_string().into());
    }
    if let Some(url) = &cli.database_url {
        overrides.insert("database_url".into(), url.clone().into());
    }
    if let Command::Serve { listen, log_format } = &cli.command {
        if let Some(listen) = listen {
            overrides.insert("listen".into(), listen.clone().into());
        }
        if let Some(format) = log_format {
            overrides.insert("log_format".into(), format.clone().into());
        }
    }
    let config = Config::load(
        cli.config.as_deref(),
        Serialized::defaults(serde_json::Value::Object(overrides)),
    )?;
    let out = output::Output::new(cli.json);
    match cli.command {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate => {
            let store = store::open(&config).await?;
            out.line(&format!("database ready: {}", store.describe()));
            Ok(())
        }
        Command::User(command) => {
            accounts::user(open(&config).await?, &config, command, &out).await
        }
        Command::Inbox(command) => inbox::run(open(&config).await?, command, &out).await,
        Command::Key(command) => accounts::key(open(&config).await?, command, &out).await,
        Command::Memory(command) => {
            memories::run(open(&config).await?, &config, command, &out).await
        }
        Command::Stats { user } => {
            let uid = crate::domain::Uid::parse(user)?;
            out.value(&open(&config).await?.stats(&uid).await?);
            Ok(())
        }
        Command::Export(args) => transfer::export(open(&config).await?, args).await,
        Command::Import(args) => transfer::import(open(&config).await?, args, &out).await,
        Command::Search(args) => search::search(open(&config).await?, &config, args, &out).await,
        Command::Eval(command) => search::eval(&config, command, &out).await,
        // The manifest is printed from the configuration alone: no database is opened or created.
        Command::Omi(omi::OmiCommand::Manifest(args)) => manifest::run(&config, &args),
        Command::Omi(command) => omi::run(open(&config).await?, &config, command, &out).await,
        Command::Ui(command) => ui::run(open(&config).await?, &config, command, &out).await,
        Command::MigrateData(args) => migrate_data::run(args, &out).await,
    }
}

async fn open(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    Ok(store::open(config).await?)
}

async fn serve(config: Config) -> Result<(), CliError> {
    crate::telemetry::init(config.log_format);
    fetch_local_model(&config).await;
    let store = store::open(&config).await?;
    let described = store.describe();
    let admin = config.admin_token.is_some();
    let webhooks = if config.webhooks.insecure_accept_unauthenticated {
        "WARNING: webhooks accept UNAUTHENTICATED requests (webhooks.insecure_accept_unauthenticated); development only"
    } else if config.webhook_auth_configured() {
        "webhooks on: /webhooks/omi/{conversation,transcript,audio,day-summary,setup-completed}"
    } else {
        "webhooks off: set ANGEL_MEMORY_WEBHOOK_TOKEN or ANGEL_MEMORY_OMI_SIGNING_SECRET to receive Omi's events"
    };
    let app = Application::build(config, store).await?;
    println!("angel-memory listening on http://{}", app.local_addr());
    println!("database: {described}");
    println!("{webhooks}");
    if !admin {
        println!(
            "admin API off (set ANGEL_MEMORY_ADMIN_TOKEN to enable it); manage users with `angel-memory user` and `angel-memory key`"
        );
    }
    app.run(shutdown_signal()).await?;
    println!("angel-memory stopped");
    Ok(())
}

/// The local embedding model is fetched on first start (a few seconds; checksums verified). Without it
/// the service still runs, with text search only, and says so.
async fn fetch_local_model(config: &Config) {
    let settings = &config.embedding;
    if settings.provider != crate::search::embed::Provider::Local {
        return;
    }
    let dir = settings.model_dir.clone();
    let fetched =
        tokio::task::spawn_blocking(move || crate::search::embed::ensure_model(&dir)).await;
    match fetched {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            println!("embedding model unavailable ({error}); search runs on text alone")
        }
        Err(error) => {
            println!("embedding model fetch stopped ({error}); search runs on text alone")
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
