//! Weft's host: the sandbox that validates guest modules and runs their UDFs in wasmtime.
//!
//! # Brief overview
//! - [`Engine`] — one per process: wasmtime configured for Weft (epoch interruption for time limits,
//!   32-bit single-threaded guests), and the linker with the only imports a guest may use: WASI
//!   preview 1 without ambient capabilities (no files, environment, arguments or network; stdout and
//!   stderr captured per instance).
//! - [`ValidatedModule::new`] — every check registration makes ([`ValidationError`] names what is
//!   wrong).
//! - [`GuestModule::new`] (compiled, pre-linked) → [`GuestModule::instantiate`] →
//!   [`GuestInstance`], whose `map`/`filter`/`flat_map`/`reduce`/`group_reduce` methods pass a whole
//!   Arrow batch ([`Records`] or [`Groups`], from `weft-batch`) per call through the ABI of
//!   `guest-sdk/ABI.md`.
//! - [`GuestModule::to_artifact`] / [`GuestModule::deserialize`] — a compiled module as bytes, so a
//!   worker that restarts loads it instead of compiling it again; [`Engine::compatibility_hash`]
//!   says which engines can share them.
//!
//! - [`GuestModule::native`] — the same API over UDFs compiled into the host process (the Rust SDK's
//!   native build), without the sandbox: to measure what the sandbox costs, and to test that both
//!   builds agree.
//!
//! Failures of a call are [`CallError`]s that keep the user's fault (a trap, a guest error message,
//! a broken ABI promise, a limit) apart from the host's.

// The modules form a one-way stack, each using only those listed before it: `error`, `info`,
// `signature` and `call` are leaves; `engine` (the wasmtime engine and a guest's store) uses
// `signature`; `wasm` (the call protocol of a wasm guest) and `native` build on them; `validate`
// (which starts a guest once) on `wasm`; `artifact` is the format of compiled modules; `module`
// (the public facade and its constructors) on all of them.
mod artifact;
mod call;
mod compile;
mod engine;
mod error;
mod info;
mod module;
mod native;
mod signature;
mod validate;
mod wasi;
mod wasm;

pub use compile::{Compiler, Gate, ProcessCompiler, serve_compile};
pub use engine::{
    DEFAULT_MAX_STACK, Engine, INSTANCES_PER_TASK, InstanceAllocation, MAX_LIVE_INSTANCES,
    SandboxLimits,
};
pub use error::{ArtifactError, CallError, MAX_GUEST_MESSAGE_BYTES, ValidationError};
pub use info::{ModuleInfo, UdfInfo};
pub use module::{Folded, GuestInstance, GuestModule};
pub use validate::{
    DEFAULT_MAX_MODULE_BYTES, DEFAULT_MAX_STARTUP_TIME, ModuleLimits, ValidatedModule,
    ValidationLimits,
};
pub use weft_abi::native::NativeUdf;
pub use weft_abi::{ABI_VERSION, UdfKind};
pub use weft_batch::{BatchError, Groups, Records};
