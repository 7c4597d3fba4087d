//! Retrieval quality, measured on public benchmarks through the normal write and search paths.

pub mod chart;
pub mod locomo;
