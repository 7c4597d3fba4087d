//! `ui` commands: the app home (`/app`).

use clap::Subcommand;
use std::sync::Arc;

use super::CliError;
use super::output::Output;
use crate::config::{Config, ConfigError};
use crate::domain::Uid;
use crate::http::ui::link::{self, LinkSigner};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum UiCommand {
    /// Print a sign-in link to the app home for a user (needs ui.link_secret).
    Link {
        #[arg(long)]
        uid: String,
        /// Base address of the link, e.g. https://memory.example.com; default ui.public_url, else the
        /// listen address.
        #[arg(long)]
        public_url: Option<String>,
        /// Hours the link works (1–720); default ui.link_ttl_hours.
        #[arg(long)]
        ttl_hours: Option<u32>,
    },
}

pub async fn run(
    store: Arc<dyn Store>,
    config: &Config,
    command: UiCommand,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        UiCommand::Link {
            uid,
            public_url,
            ttl_hours,
        } => {
            let uid = Uid::parse(uid)?;
            let signer = LinkSigner::from_config(config).map_err(|_| {
                ConfigError::Invalid(
                    "ui.link_secret is not set (ANGEL_MEMORY_UI__LINK_SECRET, at least 32 characters)"
                        .into(),
                )
            })?;
            let ttl = link::parse_ttl(ttl_hours.unwrap_or(config.ui.link_ttl_hours))
                .map_err(CliError::Usage)?;
            let base = link::parse_base(public_url.as_deref()).map_err(CliError::Usage)?;
            store.get_user(&uid).await?;
            let issued = signer.link(&link::base_url(config, base), &uid, ttl);
            if out.is_json() {
                out.value(&issued);
            } else {
                println!("{}", issued.url);
                eprintln!("valid until {}", issued.expires_at);
            }
        }
    }
    Ok(())
}
