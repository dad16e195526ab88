//! Paths of the example and test guest modules, built from source by this crate's build script
//! (through `weft-toolchain`, as `weft udf build` builds a project).
//!
//! Test code depends on this crate (as a dev-dependency) and reads a module with
//! `std::fs::read(weft_examples::WORDCOUNT_RUST)`. Every scenario of the example matrix
//! (`examples/README.md`) has a constant per language (`STOCKS_ZIG`, `INVINDEX_ASSEMBLYSCRIPT`...)
//! and a row in [`MATRIX`]; [`foreach_wordcount!`] runs a test body against every word-count
//! implementation (Rust, C — with wasi-libc and freestanding —, Zig, AssemblyScript, WAT).

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
