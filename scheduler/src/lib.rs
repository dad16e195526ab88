//! Weft's scheduler side.
//!
//! # Layout
//! - [`registry`] — the content-addressed module registry: blobs stored once by blake3 hash, the
//!   index (names, versions, tags, UDF kinds, sizes, registration times) in sled. The cluster
//!   scheduler serves it over gRPC; embedded mode (`weft run`, the CLI without `--scheduler`) opens
//!   the same registry in the local data directory.
//! - [`job`] — job files (TOML): parsing with located errors, resolution of every step against the
//!   registry, and planning into stages cut at every shuffle, with the input cut into splits.
//! - [`jobs`] — jobs as the scheduler keeps them: status (and its JSON contract), guest logs,
//!   persisted by a [`jobs::JobStore`] (sled on disk, or memory).
//! - [`cluster`] — the [`cluster::Scheduler`] (accepts jobs, runs each on the shared worker pool,
//!   answers status/watch/list/cancel/logs), its control state (workers register, heartbeat and
//!   report there; slots are accounted there), placement and the run loop, which reach workers
//!   only through [`cluster::WorkerConnection`].
//! - [`service`] — the gRPC edges: registry, jobs, cluster and worker-control services over the
//!   domain types, the gRPC [`cluster::WorkerConnection`], and the server that serves them all
//!   on one listener ([`service::start`]).
//! - [`client`] — typed clients of a remote scheduler, returning the same domain types.
//! - [`Tenant`] — who owns a module and a job. There is one tenant today, `default`, but
//!   every key already carries it, so tenancy does not need a data migration.

pub mod access;
pub mod client;
pub mod cluster;
pub mod job;
pub mod jobs;
pub mod registry;
pub mod service;
mod sled_db;
mod tenant;

pub use cluster::{JobError, JobReport, StageReport};
pub use registry::{ModuleId, Registry, RegistryError};
pub use tenant::Tenant;
