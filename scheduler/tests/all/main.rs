//! Integration tests of the scheduler crate: the registry on a real sled index and blob store, and
//! over gRPC; job files parsed, resolved and planned against it. Whole jobs, which need workers,
//! are tested above this crate and the worker's, in `weft-local`.

mod job;
mod registry;
mod registry_service;
