//! `angel-memory omi manifest --public-url …`: the app manifest to paste into Omi's app form, with
//! this deployment's webhook, setup-check, home, chat-tools and MCP addresses.

use clap::Args;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::CliError;
use crate::config::Config;
use crate::http::CHAT_TOOLS_MANIFEST_PATH;

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Where Omi reaches this service, e.g. https://memory.example.org (HTTPS: Omi refuses others).
    #[arg(long)]
    public_url: String,
    /// The app's name in Omi.
    #[arg(long, default_value = "Angel Memory")]
    name: String,
}

/// What the app asks Omi to let it do: read what the user has in Omi (`angel-memory omi pull`).
const ACTIONS: [&str; 3] = ["read_memories", "read_conversations", "read_tasks"];

/// The public base URL: http(s), no query or fragment, without a trailing slash.
fn base_url(raw: &str) -> Result<String, CliError> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| CliError::Usage(format!("--public-url {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(CliError::Usage(
            "--public-url must be an https:// address without a query".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The manifest for this deployment. Omi identifies a request only by its URL secret (or its
/// signature), so every address Omi calls carries the configured token.
pub fn app_manifest(config: &Config, args: &ManifestArgs) -> Result<Value, CliError> {
    let base = base_url(&args.public_url)?;
    if config.webhook_token.is_none() && config.omi_signing_secret.is_none() {
        return Err(CliError::Usage(
            "configure ANGEL_MEMORY_WEBHOOK_TOKEN (or Omi's signing secret) first: Omi's calls are recognised by it".into(),
        ));
    }
    let token = config
        .webhook_token
        .as_ref()
        .map_or(String::new(), |t| format!("?token={}", t.expose_secret()));
    let actions: Vec<Value> = ACTIONS.iter().map(|a| json!({"action": a})).collect();
    Ok(json!({
        "name": args.name,
        "description": "Keeps a searchable, private memory of your Omi conversations and lets Omi chat recall and store facts for you.",
        "category": "productivity-and-organization",
        "capabilities": ["external_integration"],
        "private": true,
        "external_integration": {
            "triggers_on": "memory_creation",
            "webhook_url": format!("{base}/webhooks/omi/conversation{token}"),
            "setup_completed_url": format!("{base}/webhooks/omi/setup-completed{token}"),
            "app_home_url": format!("{base}/app"),
            "actions": actions,
            "chat_tools_manifest_url": format!("{base}{CHAT_TOOLS_MANIFEST_PATH}{token}"),
            "chat_messages_enabled": false,
            "chat_messages_target": "app",
            "chat_messages_notify": false,
            // The MCP server at /mcp takes a user's API key, which Omi's app MCP connection does not
            // send; agents connect to it directly.
            "mcp_server_url": null,
            "mcp_oauth_tokens": null,
        },
        "is_paid": false,
        "price": 0.0,
        "source_code_url": null,
    }))
}

pub fn run(config: &Config, args: &ManifestArgs) -> Result<(), CliError> {
    let manifest = app_manifest(config, args)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&manifest).unwrap_or_default()
    );
    Ok(())
}
