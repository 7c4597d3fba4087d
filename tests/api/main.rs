//! Black-box tests through the real interfaces: HTTP against a server on a random port, the CLI binary,
//! and the store itself. One test binary, one module per feature.

mod helpers;

mod admin;
mod chat_tools;
mod cli;
mod data;
mod fake_omi;
mod idempotency;
mod isolation;
mod mcp;
mod memories;
mod migrate_data;
mod multi_instance;
mod omi_client;
mod omi_dev;
mod omi_outbox;
mod search;
mod service;
mod store_conformance;
mod test_database;
mod ui;
mod ui_browser;
mod webhook_crash;
mod webhooks;
