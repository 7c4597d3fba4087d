//! `user` and `key` commands.

use clap::Subcommand;
use std::sync::Arc;

use super::CliError;
use super::output::Output;
use crate::config::Config;
use crate::domain::{KeyFormat, KeyId, KeyName, Uid};
use crate::http::new_key_as;
use crate::recordings::Recorder;
use crate::store::{Context, PageRequest, Store};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (an Omi uid).
    Add { uid: String },
    /// List users.
    List,
    /// Erase a user and all their data.
    Delete {
        uid: String,
        /// Confirm the erasure.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user; the key is printed once.
    Create {
        uid: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// native (`am_…`) or omi-dev (`omi_dev_…`, for clients of Omi's Developer API).
        #[arg(long, default_value = "native", value_parser = KeyFormat::parse)]
        format: KeyFormat,
    },
    /// List a user's keys (never the secrets).
    List { uid: String },
    /// Revoke a key.
    Revoke { uid: String, key_id: String },
}

pub async fn user(
    store: Arc<dyn Store>,
    config: &Config,
    command: UserCommand,
    out: &Output,
) -> Result<(), CliError> {
    match command {
        UserCommand::Add { uid } => out.value(&store.create_user(&Uid::parse(uid)?).await?),
        UserCommand::List => {
            let mut users = Vec::new();
            let mut after = None;
            loop {
                let limit = PageRequest::MAX_LIMIT;
                let page = store.list_users(PageRequest { limit, after }).await?;
                users.extend(page.items);
                match page.next_cursor {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
            if out.is_json() {
                out.value(&users);
            } else {
                for user in &users {
                    println!("{}\t{}", user.uid, user.created_at);
                }
            }
        }
        UserCommand::Delete { uid, yes } => {
            if !yes {
                return Err(CliError::Usage(
                    "this erases the user and all their data; add --yes to confirm".into(),
                ));
            }
            let uid = Uid::parse(uid)?;
            let recorder = Recorder::new(&config.data_dir, Arc::clone(&store), &config.webhooks);
            let files = store.recording_files(&uid).await?;
            store.delete_user(&uid).await?;
            recorder.remove_files(files).await;
            out.line(&format!("erased user {uid}"));
        }
    }
    Ok(())
}

pub async fn key(store: Arc<dyn Store>, command: KeyCommand, out: &Output) -> Result<(), CliError> {
    match command {
        KeyCommand::Create { uid, name, format } => {
            let uid = Uid::parse(uid)?;
            let (secret, new) = new_key_as(KeyName::parse(&name)?, format);
            let info = store.create_key(&uid, new, &Context::cli()).await?;
            if out.is_json() {
                out.value(&serde_json::json!({"key": secret.expose(), "id": info.id, "uid": info.uid, "name": info.name, "prefix": info.prefix}));
            } else {
                println!("{}", secret.expose());
                eprintln!("key {} for {uid}: shown once, store it now", info.id);
            }
        }
        KeyCommand::List { uid } => out.value(&store.list_keys(&Uid::parse(uid)?).await?),
        KeyCommand::Revoke { uid, key_id } => {
            let info = store
                .revoke_key(&Uid::parse(uid)?, KeyId::parse(&key_id)?, &Context::cli())
                .await?;
            out.value(&info);
        }
    }
    Ok(())
}
