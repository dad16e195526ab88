//! Integration tests of the scheduler crate: the registry on a real sled index and blob store, with
//! modules built from source.

mod registry;
