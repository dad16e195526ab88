//! Typed errors of the host: why a module was refused, and why a UDF call failed.
//!
//! The split matters downstream: a [`ValidationError`] is the user's to fix before anything runs; a
//! [`CallError`] says whether the user's code failed ([`CallError::is_guest_fault`]: a trap, an error
//! status, a broken ABI promise, a limit) or the infrastructure did, because only the latter is worth
//! a retry. An [`ArtifactError`] only ever costs a compilation.

use std::fmt;
use std::time::Duration;

use weft_abi::UdfKind;
use weft_batch::{BatchError, format_size};

/// Why a module cannot be registered or loaded. Every variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("module is {size} bytes, over the size limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    #[error("the module does not export `{name}` ({what}), which ABI v{abi} requires", abi = weft_abi::ABI_VERSION)]
    MissingExport {
        name: &'static str,
        what: &'static str,
    },
    #[error("export `{name}` has type {found}, but the ABI requires {expected}")]
    WrongExportType {
        name: String,
        expected: String,
        found: String,
    },
    #[error(
        "export `{0}` starts with `weft_` but is not an ABI export: UDFs are named \
         weft_<map|filter|flat_map|reduce|group_reduce>_<name>, name in [A-Za-z0-9_], and a \
         reduce's combiner weft_combine_<name>"
    )]
    UnknownWeftExport(String),
    #[error(
        "export `{export}` is a combiner, but the module has no reduce UDF `{name}` \
         (a combiner belongs to a reduce of the same module)"
    )]
    OrphanCombiner { export: String, name: String },
    #[error("{0} (see guest-sdk/ABI.md, section 3b)")]
    UdfFacts(#[from] weft_abi::facts::FactsError),
    #[error(
        "custom section `{section}`, line {line}: `{name}` is not a UDF of this module",
        section = weft_abi::facts::SECTION
    )]
    UdfFactsUnknownUdf { line: usize, name: String },
    #[error(
        "UDF name `{name}` is exported twice (as {first} and as {second}); names must be unique"
    )]
    DuplicateUdf {
        name: String,
        first: UdfKind,
        second: UdfKind,
    },
    #[error("the module exports no UDF (no export named weft_<kind>_<name>)")]
    NoUdfs,
    #[error(
        "the module imports {kind} `{module}::{name}`, which the sandbox does not provide \
         (only functions of `wasi_snapshot_preview1` are available)"
    )]
    ForbiddenImport {
        module: String,
        name: String,
        kind: &'static str,
    },
    #[error(
        "the module imports `{module}::{name}` with type {found}, but the sandbox provides {expected}"
    )]
    ImportTypeMismatch {
        module: String,
        name: String,
        expected: String,
        found: String,
    },
    #[error("unsupported memory: {0}")]
    UnsupportedMemory(String),
    #[error(
        "the module was built for guest ABI version {found}; this host implements version {expected}"
    )]
    AbiVersion { found: u32, expected: u32 },
    #[error("the module failed to start: {0}")]
    Startup(String),
    #[error("compiling the module failed: {0}")]
    Compile(String),
    /// Compiling ran into its time or memory limit (a compile bomb, or a limit set too low).
    #[error("{0}")]
    CompileLimit(String),
}

/// Why a compiled artifact could not be made or loaded. A reader that gets one compiles the module
/// from its wasm bytes instead.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("serializing the compiled module failed: {0}")]
    Serialize(String),
    /// Not an artifact of ours, truncated, or damaged: its digest does not match.
    #[error("the artifact is damaged: {0}")]
    Corrupt(String),
    /// wasmtime refused it, e.g. because another engine configuration or version built it.
    #[error("wasmtime refused the artifact: {0}")]
    Load(String),
}

/// The most of a guest's error message the host keeps: a message is for a person, and one of
/// megabytes would travel with the task's failure into job records and every `job list`.
pub const MAX_GUEST_MESSAGE_BYTES: usize = 16 << 10;

/// A guest's error message as the host keeps it: lossily UTF-8, cut after
/// [`MAX_GUEST_MESSAGE_BYTES`] with a note of its full length.
pub(crate) fn guest_message(bytes: &[u8]) -> String {
    if bytes.len() <= MAX_GUEST_MESSAGE_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut message = String::from_utf8_lossy(&bytes[..MAX_GUEST_MESSAGE_BYTES]).into_owned();
    message.push_str(&format!(
        "... (the guest's message is {} bytes; the first {MAX_GUEST_MESSAGE_BYTES} are kept)",
        bytes.len()
    ));
    message
}

/// Why one call of a UDF (or the instantiation before it) failed.
#[derive(Debug)]
pub enum CallError {
    /// The module has no UDF of that name.
    NoSuchUdf(String),
    /// The UDF exists but the caller asked for another kind (a reduce step naming a map function).
    KindMismatch {
        name: String,
        actual: UdfKind,
        requested: UdfKind,
    },
    /// The guest returned the error status with a message of its own.
    Guest { udf: String, message: String },
    /// The guest trapped (a Rust panic, `unreachable`, an out-of-bounds access...).
    Trap {
        udf: String,
        trap: String,
        stderr: String,
    },
    /// The guest broke a promise of the ABI (bad pointer, wrong output count...).
    Abi { udf: String, detail: String },
    /// The guest tried to grow its memory past the sandbox limit.
    MemoryLimit {
        udf: String,
        limit: usize,
        stderr: String,
    },
    /// The call used up its wasm stack (a recursion too deep for the limit).
    StackLimit { udf: String, limit: usize },
    /// The call ran longer than its time limit and was interrupted.
    TimeLimit { udf: String, limit: Duration },
    /// The task's time was up during the call, which was interrupted.
    TaskTimeLimit { udf: String, limit: Duration },
    /// The call returned more bytes than one call may.
    OutputLimit { udf: String, bytes: u64, limit: u64 },
    /// The instance was interrupted by its owner (the task was killed) during the call.
    Cancelled { udf: String },
    /// A batch that cannot cross the ABI (over 4 GiB, or keys and values of different lengths).
    Batch(BatchError),
    /// Instantiating the module failed (it passed validation, so this is a startup trap or a limit).
    Instantiate(String),
    /// The caller asked for the combiner of a `reduce` UDF that has none in the module.
    NoCombiner(String),
}

impl CallError {
    /// The UDF a failed call was to, if the failure is about one.
    pub fn udf(&self) -> Option<&str> {
        match self {
            CallError::Guest { udf, .. }
            | CallError::Trap { udf, .. }
            | CallError::Abi { udf, .. }
            | CallError::MemoryLimit { udf, .. }
            | CallError::StackLimit { udf, .. }
            | CallError::TimeLimit { udf, .. }
            | CallError::TaskTimeLimit { udf, .. }
            | CallError::OutputLimit { udf, .. }
            | CallError::Cancelled { udf } => Some(udf),
            _ => None,
        }
    }

    /// What went wrong, without naming the UDF: for messages that name it already
    /// (`map textkit@1/upper: trapped: ...`). `Display` is `UDF `name` ` followed by this.
    pub fn reason(&self) -> String {
        match self {
            CallError::NoSuchUdf(name) => format!("no UDF named `{name}` in the module"),
            CallError::KindMismatch {
                name,
                actual,
                requested,
            } => format!("UDF `{name}` is a {actual}, not a {requested}"),
            CallError::Guest { message, .. } => format!("failed: {message}"),
            CallError::Trap { trap, stderr, .. } => {
                format!("trapped: {trap}{}", StderrTail(stderr))
            }
            CallError::Abi { detail, .. } => format!("broke the guest ABI: {detail}"),
            CallError::MemoryLimit { limit, stderr, .. } => format!(
                "exceeded the memory limit of {} (limits.memory){}",
                format_size(*limit as u64),
                StderrTail(stderr)
            ),
            CallError::StackLimit { limit, .. } => format!(
                "exceeded the stack limit of {} (limits.stack): call stack exhausted",
                format_size(*limit as u64)
            ),
            CallError::TimeLimit { limit, .. } => format!(
                "exceeded the time limit of {} per call (limits.call_time)",
                humantime::format_duration(*limit)
            ),
            CallError::TaskTimeLimit { limit, .. } => format!(
                "was stopped: the task exceeded its time limit of {} (limits.task_time)",
                humantime::format_duration(*limit)
            ),
            CallError::OutputLimit { bytes, limit, .. } => format!(
                "returned {} from one call, over the limit of {} (limits.batch_output)",
                format_size(*bytes),
                format_size(*limit)
            ),
            CallError::Cancelled { .. } => "was interrupted: the task was cancelled".to_owned(),
            CallError::Batch(why) => format!("batch cannot be passed to the guest: {why}"),
            CallError::Instantiate(why) => format!("instantiating the module failed: {why}"),
            CallError::NoCombiner(name) => format!(
                "the module has no combiner for `{name}` (no export {}{name})",
                weft_abi::COMBINE_EXPORT_PREFIX
            ),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.udf() {
            Some(udf) => write!(f, "UDF `{udf}` {}", self.reason()),
            None => f.write_str(&self.reason()),
        }
    }
}

/// No `source`: the `Display` of every variant already says all of it, the batch error's included.
impl std::error::Error for CallError {}

impl From<BatchError> for CallError {
    fn from(e: BatchError) -> CallError {
        CallError::Batch(e)
    }
}

impl CallError {
    /// Whether the failure is the user's code (deterministic: retrying will not help) rather than
    /// the host's.
    pub fn is_guest_fault(&self) -> bool {
        !matches!(
            self,
            CallError::Instantiate(_) | CallError::Cancelled { .. }
        )
    }
}

/// Formats captured stderr after an error message, if there is any.
struct StderrTail<'a>(&'a str);

impl fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.trim_end();
        if text.is_empty() {
            Ok(())
        } else {
            write!(f, "; guest stderr: {text}")
        }
    }
}
