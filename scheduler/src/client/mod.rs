//! Typed clients of a remote scheduler, for the CLI and for tests: they speak gRPC and hand back the
//! same domain types the local data directory gives, so callers print one thing either way.
//!
//! - [`registry`] — modules: register (chunked upload), list, show, remove, fetch (hash-verified).

pub mod registry;

// pub use registry::RegistryClient;
