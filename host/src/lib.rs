//! Weft's host: the sandbox that validates guest modules and runs their UDFs in wasmtime.
//!
//! # Brief overview
//! - [`Engine`] — one per process: wasmtime configured for Weft (epoch interruption for time limits,
//!   32-bit single-threaded guests), and the linker with the only imports a guest may use: WASI
//!   preview 1 without ambient capabilities (no files, environment, arguments or network; stdout and
//!   stderr captured per instance).
//! - [`Engine::validate`] — every check registration makes ([`ValidationError`] names what is wrong).
//! - [`Engine::load`] → [`GuestModule`] (compiled, pre-linked) → [`GuestModule::instantiate`] →
//!   [`GuestInstance`], whose `map`/`filter`/`flat_map`/`reduce`/`group_reduce` methods pass a whole
//!   Arrow batch ([`Records`] or [`Groups`]) per call through the ABI of `guest-sdk/ABI.md`.
//! - [`GuestModule::to_artifact`] / [`Engine::load_artifact`] — a compiled module as bytes, so a
//!   worker that restarts loads it instead of compiling it again; [`Engine::compatibility_hash`]
//!   says which engines can share them.
//!
//! - [`GuestModule::native`] — the same API over UDFs compiled into the host process (the Rust SDK's
//!   native build), without the sandbox: to measure what the sandbox costs, and to test that both
//!   builds agree.
//!
//! Failures of a call are [`CallError`]s that keep the user's fault (a trap, a guest error message,
//! a broken ABI promise, a limit) apart from the host's.

mod artifact;
mod batch;
mod engine;
mod error;
mod guest;
mod native;
mod validate;

pub use batch::{Groups, Records};
pub use engine::{
    Engine, INSTANCES_PER_TASK, InstanceAllocation, MAX_LIVE_INSTANCES, SandboxLimits,
};
pub use error::{ArtifactError, CallError, ValidationError};
pub use guest::{GuestInstance, GuestModule};
pub use validate::{
    DEFAULT_MAX_MODULE_BYTES, ModuleInfo, UdfInfo, ValidatedModule, ValidationLimits,
};
pub use weft_abi::native::NativeUdf;
pub use weft_abi::{ABI_VERSION, UdfKind};
