//! Sentence embedders (being written).
