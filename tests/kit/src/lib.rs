//! What Weft's test binaries (and its benchmark runner) share, so that none copies another's
//! helpers — wasmtime keeps the same in `crates/test-util`.
//!
//! # Brief overview
//! - [`reference`] — answers computed independently of Weft, to check its answers against: word
//!   counts, the stocks example's largest volumes.
//! - [`output`] — a committed output directory read back, and maps compared with a readable diff.
//! - [`registry`] — a registry holding the example modules (built from source by
//!   `weft-examples`).
//! - [`wat`] — hand-written guests for edge cases no SDK would produce: a module from its parts,
//!   with a bump allocator.
//! - [`grpc`] — a gRPC service served on a loopback port for a test.
//! - [`process`] — a `weft` child process with its own log file, waited on for its "listening on"
//!   line, stopped with SIGTERM and reaped on drop.
//!
//! Helpers panic with a message on failure, as test code does; the process harness returns
//! errors, for the benchmark runner.

pub mod grpc;
pub mod output;
pub mod process;
pub mod reference;
pub mod registry;
pub mod wat;
