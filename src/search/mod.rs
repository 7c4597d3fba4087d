//! Search: full text and sentence embeddings, fused.

pub mod dates;
pub mod embed;
pub mod index;
pub mod query;
pub mod service;
pub mod text;
pub mod top;
pub mod worker;

pub use service::{
    Mode, RawSignals, SearchHit, SearchRequest, SearchResults, Searcher, Signal, Signals, Tuning,
};
