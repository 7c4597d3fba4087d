//! Black-box tests through the real interfaces: HTTP against a server on a random port, the CLI binary,
//! and the store itself. One test binary, one module per feature.

mod helpers;

mod admin;
mod cli;
mod data;
mod idempotency;
mod isolation;
mod memories;
mod migrate_data;
mod multi_instance;
mod search;
mod service;
mod store_conformance;
mod test_database;
mod webhook_crash;
mod webhooks;
