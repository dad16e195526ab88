//! Integration tests of the scheduler crate: the registry on a real sled index and blob store, job
//! files resolved and planned against it, and whole jobs run by the in-process cluster, with
//! modules built from source.

mod cluster;
mod job;
mod local;
mod native;
mod registry;
mod registry_service;
mod remote;
