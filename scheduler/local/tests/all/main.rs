//! Integration tests of the in-process cluster, and of everything that needs the scheduler and
//! workers together: whole jobs on a `LocalCluster` (answers checked against references computed
//! independently), the scheduler server with workers that only know its URL, the worker's module
//! source against the scheduler's registry service, and the same job with native UDFs.

mod cluster;
mod local;
mod module_source;
mod native;
mod remote;
