//! The scheduler's gRPC services, each a thin edge over a domain type: protobuf messages are
//! converted here and go no further.
//!
//! - [`registry`] — `weft.v1.Registry` over a [`crate::Registry`]: chunked, hash-verified uploads
//!   and downloads.

pub mod registry;

// pub use registry::RegistryService;
