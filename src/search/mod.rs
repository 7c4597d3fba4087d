//! Search: full text and sentence embeddings, fused.

pub mod embed;
