//! Angel Memory: a self-hosted memory service for Omi users and their AI agents.
//!
//! Data flows one way: `http` and `cli` parse input into `domain` types and call the `store`.

pub mod cli;
pub mod config;
pub mod domain;
pub mod eval;
pub mod http;
pub mod mcp;
pub mod omi;
pub mod queue;
pub mod recordings;
pub mod resilience;
pub mod search;
pub mod store;
pub mod telemetry;
pub mod threads;
pub mod tls;
pub mod transfer;
