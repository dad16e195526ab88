//! The scheduler's gRPC edges, each a thin layer over a domain type: protobuf messages are
//! converted here (with the contract's conversions of `weft-task` where the messages are the
//! worker protocol's) and go no further.
//!
//! - [`registry`] — `weft.v1.Registry` over a [`crate::Registry`]: chunked, hash-verified uploads
//!   and downloads.
//! - [`convert_registry`] — the registry's domain types to and from its messages, both ways (the
//!   typed client decodes with it too).
//! - [`jobs`] — `weft.v1.Jobs` and `weft.v1.Cluster` over a [`crate::cluster::Scheduler`]: submit,
//!   status, watch, list, cancel and logs of jobs; the registered workers.
//! - [`control`] — `weft.v1.SchedulerControl` over the [`crate::cluster::ControlState`]: workers
//!   register, heartbeat and report.
//! - [`worker`] — [`GrpcWorker`]: the scheduler's side of `weft.v1.Worker`, the
//!   [`crate::cluster::WorkerConnection`] to a real worker.
//! - `server` — [`start`]: every service above on one listener, and the reaper of silent workers;
//!   a [`SchedulerHandle`] to stop it.

pub mod control;
pub mod convert_registry;
pub mod jobs;
pub mod registry;
mod server;
pub mod worker;

pub use control::ControlService;
pub use registry::RegistryService;
pub use server::{SchedulerHandle, start, start_with_access};
pub use worker::GrpcWorker;
