//! The scheduler's gRPC services, each a thin edge over a domain type: protobuf messages are
//! converted here and go no further.
//!
//! - [`registry`] — `weft.v1.Registry` over a [`crate::Registry`]: chunked, hash-verified uploads
//!   and downloads.
//! - [`convert_registry`] — the registry's domain types to and from its messages, both ways (the
//!   typed client decodes with it too).
//! - [`jobs`] — `weft.v1.Jobs` and `weft.v1.Cluster` over a [`crate::cluster::Scheduler`]: submit,
//!   status, watch, list, cancel and logs of jobs; the registered workers.

pub mod convert_registry;
pub mod jobs;
pub mod registry;

pub use registry::RegistryService;
