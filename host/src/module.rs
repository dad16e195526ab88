//! [`GuestModule`] and [`GuestInstance`]: a module compiled (or built natively) once, and its
//! instances, one per task, behind one API whatever runs the UDFs — wasm in the sandbox
//! (`wasm`) or natively in this process (`native`). Constructors live here, in wasmtime's shape:
//! [`GuestModule::new`] compiles, [`GuestModule::deserialize`] loads an artifact,
//! [`GuestModule::native`] wraps native UDFs.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow_array::{BinaryArray, BooleanArray};
use wasmtime::InstancePre;
use weft_abi::UdfKind;
use weft_abi::native::NativeUdf;
use weft_batch::{Groups, Records};

use crate::artifact;
use crate::compile::Compiler;
use crate::engine::{Engine, Sandbox, SandboxLimits};
use crate::error::{ArtifactError, CallError, ValidationError};
use crate::info::UdfInfo;
use crate::native::{NativeInstance, NativeModule};
use crate::validate;
use crate::wasm::WasmInstance;

/// A module compiled for this engine, ready to instantiate. (Or, from [`GuestModule::native`], UDFs
/// compiled into this process, behind the same API: see the `native` module.)
#[derive(Clone)]
pub struct GuestModule {
    code: Code,
    udfs: Arc<[UdfInfo]>,
}

/// What a module's instances run.
#[derive(Clone)]
enum Code {
    Wasm(InstancePre<Sandbox>),
    Native(NativeModule),
}

impl std::fmt::Debug for GuestModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestModule")
            .field("udfs", &self.udfs)
            .finish_non_exhaustive()
    }
}

impl GuestModule {
    /// Checks and compiles a module for `engine`. The checks are the static ones of registration
    /// (the caller is expected to have verified the bytes' hash); the ABI version is checked at
    /// instantiation.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<GuestModule, ValidationError> {
        GuestModule::compile(engine, bytes, &Compiler::InProcess)
    }

    /// As [`GuestModule::new`], compiling where `compiler` says (a child process bounded in time
    /// and memory, for a server).
    pub fn compile(
        engine: &Engine,
        bytes: &[u8],
        compiler: &Compiler,
    ) -> Result<GuestModule, ValidationError> {
        let inspected = validate::inspect(engine, bytes)?;
        let module = compiler.compile(engine, bytes)?;
        let pre = engine
            .linker()
            .instantiate_pre(&module)
            .map_err(|e| ValidationError::Compile(format!("{e:#}")))?;
        // What a module states about its keys is for planning, which reads it at registration;
        // dropped here so that a compiled module and its artifact (which keeps no custom
        // sections) describe their UDFs alike.
        let udfs = inspected
            .udfs
            .into_iter()
            .map(|udf| UdfInfo {
                key_unused: false,
                ..udf
            })
            .collect();
        Ok(GuestModule::wasm(pre, udfs))
    }

    /// A module of UDFs compiled into this process, e.g.
    /// `GuestModule::native(&weft_guest::native_udfs![my_udfs::split_words, my_udfs::sum])`.
    /// Its instances run the UDFs natively, outside the sandbox (see the `native` module's docs for
    /// what that leaves out). The list is checked as registration checks a module's exports:
    /// at least one UDF, valid names, each name once.
    pub fn native(udfs: &[NativeUdf]) -> Result<GuestModule, ValidationError> {
        let (native, infos) = NativeModule::new(udfs)?;
        Ok(GuestModule {
            code: Code::Native(native),
            udfs: infos.into(),
        })
    }

    /// Loads an artifact made by [`GuestModule::to_artifact`], without compiling. A damaged or
    /// truncated artifact ([`ArtifactError::Corrupt`]) and one built by an incompatible engine
    /// ([`ArtifactError::Load`]) are refused; the caller should compile the module instead.
    ///
    /// # Safety
    ///
    /// `artifact` must have been produced by [`GuestModule::to_artifact`] (in this process or
    /// another). The digest only detects accidental damage: anyone who can write the bytes can
    /// forge it, and wasmtime runs the machine code of an artifact as it is, outside the sandbox's
    /// checks. Never pass bytes from an untrusted source.
    pub unsafe fn deserialize(
        engine: &Engine,
        artifact: &[u8],
    ) -> Result<GuestModule, ArtifactError> {
        let body = artifact::unseal(artifact)?;
        // SAFETY: the caller promises the bytes are an artifact we serialized, and the digest
        // shows they are intact; wasmtime itself refuses one from an incompatible engine.
        let module = unsafe { wasmtime::Module::deserialize(engine.wasm(), body) }
            .map_err(|e| ArtifactError::Load(format!("{e:#}")))?;
        let udfs = artifact::udfs_of(&module)?;
        let pre = engine
            .linker()
            .instantiate_pre(&module)
            .map_err(|e| ArtifactError::Load(format!("{e:#}")))?;
        Ok(GuestModule::wasm(pre, udfs))
    }

    /// The module as an artifact for [`GuestModule::deserialize`].
    pub fn to_artifact(&self) -> Result<Vec<u8>, ArtifactError> {
        let Code::Wasm(pre) = &self.code else {
            return Err(ArtifactError::Serialize(
                "a native module has no artifact".into(),
            ));
        };
        let body = pre
            .module()
            .serialize()
            .map_err(|e| ArtifactError::Serialize(format!("{e:#}")))?;
        Ok(artifact::seal(body))
    }

    fn wasm(pre: InstancePre<Sandbox>, udfs: Vec<UdfInfo>) -> GuestModule {
        GuestModule {
            code: Code::Wasm(pre),
            udfs: udfs.into(),
        }
    }

    /// Whether the module runs natively (built with [`GuestModule::native`]) rather than in wasm.
    pub fn is_native(&self) -> bool {
        matches!(self.code, Code::Native(_))
    }

    /// The module's UDFs, sorted by name.
    pub fn udfs(&self) -> &[UdfInfo] {
        &self.udfs
    }

    /// Instantiates the module in a fresh sandbox under `limits` (a native module has neither).
    pub fn instantiate(&self, limits: &SandboxLimits) -> Result<GuestInstance, CallError> {
        Ok(GuestInstance(match &self.code {
            Code::Wasm(pre) => Instance::Wasm(WasmInstance::new(pre, &self.udfs, limits)?),
            Code::Native(native) => Instance::Native(native.instantiate()),
        }))
    }
}

/// What one fold into a combiner did (ABI.md §3a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Records folded in: the map step's output, or the batch given.
    pub records: usize,
    /// Bytes the combiner holds after the fold (its tables as allocated).
    pub held: usize,
}

/// One live guest: a sandboxed store with the module instantiated (or a native module's UDFs). Not
/// shareable across threads at once; a worker runs one per task.
#[derive(Debug)]
pub struct GuestInstance(Instance);

#[derive(Debug)]
enum Instance {
    Wasm(WasmInstance),
    Native(NativeInstance),
}

/// Calls `$method` on the wasm or the native instance.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &mut $self.0 {
            Instance::Wasm(guest) => guest.$method($($arg),*),
            Instance::Native(guest) => guest.$method($($arg),*),
        }
    };
}

impl GuestInstance {
    /// Runs a `map` UDF: one output record per input record.
    pub fn map(&mut self, udf: &str, input: &Records) -> Result<Records, CallError> {
        dispatch!(self.map(udf, input))
    }

    /// Runs a `filter` UDF: which input records to keep.
    pub fn filter(&mut self, udf: &str, input: &Records) -> Result<BooleanArray, CallError> {
        dispatch!(self.filter(udf, input))
    }

    /// Runs a `flat_map` UDF: any number of records out.
    pub fn flat_map(&mut self, udf: &str, input: &Records) -> Result<Records, CallError> {
        dispatch!(self.flat_map(udf, input))
    }

    /// Runs a `reduce` UDF: one combined value per group, in group order.
    pub fn reduce(&mut self, udf: &str, input: &Groups) -> Result<BinaryArray, CallError> {
        dispatch!(self.reduce(udf, input))
    }

    /// Runs a `group_reduce` UDF: any number of records out.
    pub fn group_reduce(&mut self, udf: &str, input: &Groups) -> Result<Records, CallError> {
        dispatch!(self.group_reduce(udf, input))
    }

    /// Whether the `reduce` UDF `reduce` has a combiner in the module (ABI.md §3a): running values
    /// held in the guest, so map output can be combined where it is produced.
    pub fn has_combiner(&self, reduce: &str) -> bool {
        match &self.0 {
            Instance::Wasm(guest) => guest.has_combiner(reduce),
            Instance::Native(guest) => guest.has_combiner(reduce),
        }
    }

    /// Runs the `map` or `flat_map` UDF `udf` over `input` and folds its output into the combiner
    /// of `reduce`, without the records leaving the guest: how many records were folded, and the
    /// bytes the combiner holds.
    pub fn map_into_combiner(
        &mut self,
        kind: UdfKind,
        udf: &str,
        input: &Records,
        reduce: &str,
    ) -> Result<Folded, CallError> {
        if !matches!(kind, UdfKind::Map | UdfKind::FlatMap) {
            return Err(CallError::KindMismatch {
                name: udf.to_owned(),
                actual: kind,
                requested: UdfKind::FlatMap,
            });
        }
        dispatch!(self.map_into_combiner(kind, udf, input, reduce))
    }

    /// Folds `input` into the combiner of `reduce`.
    pub fn combine(&mut self, reduce: &str, input: &Records) -> Result<Folded, CallError> {
        dispatch!(self.combine(reduce, input))
    }

    /// Takes every record the combiner of `reduce` holds (each key once, with its combined
    /// value); it holds nothing after.
    pub fn drain_combiner(&mut self, reduce: &str) -> Result<Records, CallError> {
        dispatch!(self.drain_combiner(reduce))
    }

    /// Everything the guest has written to stdout so far (up to the capture limit); always empty
    /// for a native module, whose output is the process's own.
    pub fn stdout(&self) -> Vec<u8> {
        match &self.0 {
            Instance::Wasm(guest) => guest.stdout(),
            Instance::Native(_) => Vec::new(),
        }
    }

    /// Everything the guest has written to stderr so far (up to the capture limit); always empty
    /// for a native module.
    pub fn stderr(&self) -> Vec<u8> {
        match &self.0 {
            Instance::Wasm(guest) => guest.stderr(),
            Instance::Native(_) => Vec::new(),
        }
    }

    /// Lets `flag` stop this instance: once it is raised, the running call (or the next) fails with
    /// [`CallError::Cancelled`] within an epoch tick. A native call cannot be stopped while it
    /// runs: the flag fails the next call.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        dispatch!(self.set_interrupt(flag))
    }

    /// The largest linear memory the guest has grown to, in bytes (0 for a native module).
    pub fn peak_memory_bytes(&self) -> u64 {
        match &self.0 {
            Instance::Wasm(guest) => guest.peak_memory_bytes(),
            Instance::Native(_) => 0,
        }
    }

    /// Whether the guest wrote more to stdout or stderr than the capture limit kept.
    pub fn output_truncated(&self) -> bool {
        match &self.0 {
            Instance::Wasm(guest) => guest.output_truncated(),
            Instance::Native(_) => false,
        }
    }

    /// Makes every call fail with [`CallError::TaskTimeLimit`] once `deadline` has passed, even in
    /// the middle of a call (within an epoch tick). A native call cannot be stopped while it
    /// runs; its caller checks the deadline between calls.
    pub fn set_task_deadline(&mut self, deadline: std::time::Instant, limit: std::time::Duration) {
        if let Instance::Wasm(guest) = &mut self.0 {
            guest.set_task_deadline(deadline, limit);
        }
    }
}
