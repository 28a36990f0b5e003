//! tokenlens: a fast, exact batch tokenizer and analyzer for JSONL datasets.
//!
//! The engine is pure Rust: [`reader`] streams lines out of plain or compressed files, [`pipeline`]
//! spreads chunks of lines over threads and hands results back in input order, [`tokenizer`] counts
//! tokens exactly, and each job ([`count`], ...) is a kernel run by the pipeline. The Python bindings
//! live in `python.rs` alone.

pub mod audit;
pub mod chunk;
pub mod count;
pub mod dedup;
pub mod error;
pub mod interned;
pub mod output;
pub mod pipeline;
pub mod quick_texts;
pub mod reader;
pub mod record;
pub mod scan;
pub mod stats;
pub mod tokenizer;

#[cfg(test)]
mod testing;

#[cfg(feature = "python")]
mod python;

pub use error::Error;
