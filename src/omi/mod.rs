//! Omi: the payloads its webhooks carry, how their authenticity is checked, and what Angel Memory
//! derives from them. A leaf module: it knows nothing of HTTP or the store.

pub mod client;
pub mod derive;
pub mod payload;
pub mod signature;
pub mod voice;
