//! Integration tests of the scheduler crate: the registry on a real sled index and blob store, and
//! job files resolved and planned against it, with modules built from source.

mod job;
mod registry;
