//! Weft's scheduler side.
//!
//! # Layout
//! - [`registry`] — the content-addressed module registry: blobs stored once by blake3 hash, the
//!   index (names, versions, tags, UDF kinds, sizes, registration times) in sled. The cluster
//!   scheduler serves it over gRPC; embedded mode (`weft run`, the CLI without `--scheduler`) opens
//!   the same registry in the local data directory.
//! - [`job`] — job files (TOML): parsing with located errors, resolution of every step against the
//!   registry, and planning into stages cut at every shuffle, with the input cut into splits.
//! - [`cluster`] — the scheduler's control service (workers register and report there), the job
//!   runner that executes a plan on the workers, and [`LocalCluster`]: scheduler and workers in one
//!   process, on loopback gRPC, for `weft run` and tests.
//! - [`Tenant`] — who owns a module (and, later, a job). There is one tenant today, `default`, but
//!   every key already carries it, so tenancy does not need a data migration.

pub mod client;
pub mod cluster;
pub mod job;
pub mod jobs;
pub mod registry;
pub mod service;
mod tenant;

pub use cluster::{JobError, JobReport, LocalCluster, LocalClusterConfig, StageReport};
pub use registry::{ModuleId, Registry, RegistryError};
pub use tenant::Tenant;
