//! Paths of the example and test guest modules, built from source by this crate's build script.
//!
//! Test code depends on this crate (as a dev-dependency) and reads a module with
//! `std::fs::read(weft_examples::WORDCOUNT_RUST)`; [`foreach_wordcount!`] runs a test body against
//! every word-count implementation (Rust, C, WAT).

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
