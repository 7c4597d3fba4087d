//! A Model Context Protocol server over Streamable HTTP (`/mcp`), so AI agents can use a user's
//! memories: search, read, write, history and restore, and read conversations and action items.
//! The protocol is the official Rust SDK's (`rmcp`); every tool calls the same store and search
//! functions as the native API. The user is the one whose API key authenticated the HTTP request
//! (the router's key middleware puts the `Principal` into the request, which `rmcp` hands to the tool).

mod tools;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

use crate::search::Searcher;
use crate::store::Store;
pub use tools::MemoryServer;

pub const PATH: &str = "/mcp";

/// The `/mcp` endpoint as a tower service.
///
/// Stateless JSON responses: every request carries its own key and gets its answer in its HTTP
/// response, so no session state is kept between requests. The `Host` allow-list against DNS
/// rebinding is off: it protects unauthenticated local servers, and every request here must carry
/// the user's key (which a rebinding page cannot have).
pub fn service(
    store: Arc<dyn Store>,
    search: Arc<Searcher>,
) -> StreamableHttpService<MemoryServer, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(MemoryServer::new(Arc::clone(&store), Arc::clone(&search))),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
