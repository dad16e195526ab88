//! Errors of task execution. Each keeps its cause as its `source` (the I/O error, the gRPC status,
//! Arrow's error, the guest's failure), so the cause can be told apart — a guest's trap from a
//! lost peer, for retries — and the report of a failed task names all of it
//! ([`weft_task::error_chain`]).

use std::path::PathBuf;

use weft_host::{CallError, UdfKind, ValidationError};
use weft_task::{Remote, StepRef};

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A step's UDF failed (trap, guest error, limit): the user's code.
    #[error(
        "{kind} {module}/{function}{}",
        at.as_ref().map(|at| format!(" on the record at {at}")).unwrap_or_default()
    )]
    Step {
        kind: UdfKind,
        module: String,
        function: String,
        /// Where the input record it failed on is (`path:line`), when that is known: the step
        /// read input records and failed with an error of its own.
        at: Option<String>,
        #[source]
        source: UdfFailure,
    },
    /// The module could not be instantiated.
    #[error("module {module}")]
    Instantiate {
        module: String,
        #[source]
        source: Box<CallError>,
    },
    /// A wide step was given where only narrow ones can run (a planner bug).
    #[error("a {0} step cannot run in a pipeline of narrow steps")]
    NotNarrow(UdfKind),
    /// A narrow step was given where a grouping one is needed (a planner bug).
    #[error("a {0} step does not group by key")]
    NotWide(UdfKind),
    /// A step names a module the pipeline was not given.
    #[error("no compiled module {0} was provided for the task")]
    MissingModule(String),
    /// A module could not be fetched, verified or compiled.
    #[error("module {id}")]
    Module {
        id: String,
        #[source]
        source: ModuleError,
    },
    /// Reading input or writing output failed.
    #[error(transparent)]
    Io(#[from] weft_io::Error),
    /// A shuffle block could not be fetched from another worker (`from`, its address).
    #[error("fetching a shuffle block from {from}")]
    Fetch {
        from: String,
        #[source]
        source: PeerError,
    },
    /// The task was killed.
    #[error("the task was cancelled")]
    Cancelled,
    /// The task ran for its whole time limit.
    #[error("the task exceeded its time limit of {} (limits.task_time)", humantime::format_duration(*limit))]
    TaskTime { limit: std::time::Duration },
    /// The task's records out came to more than its limit.
    #[error("the task wrote more than its output limit of {} (limits.task_output)", weft_io::format_size(*limit))]
    TaskOutput { limit: u64 },
    /// Reading or writing shuffle data failed.
    #[error("shuffle file {}", path.display())]
    Shuffle {
        path: PathBuf,
        #[source]
        source: DataError,
    },
    /// The task's own code panicked: a bug in Weft, not in the user's code. The attempt fails with
    /// the panic's message (and may be retried) instead of its thread ending silently, with the
    /// task left "running" for ever.
    #[error("the task panicked (a bug in Weft): {0}")]
    Panicked(String),
    /// Writing or reading a sorted run spilled by a grouper over its memory budget failed.
    #[error("spilled run {}", path.display())]
    Spill {
        path: PathBuf,
        #[source]
        source: DataError,
    },
}

impl TaskError {
    /// Whether the failure is the user's code (deterministic: retrying will not help).
    pub fn is_guest_fault(&self) -> bool {
        match self {
            TaskError::Step { source, .. } => source.0.is_guest_fault(),
            TaskError::TaskTime { .. } | TaskError::TaskOutput { .. } => true,
            _ => false,
        }
    }

    /// The address of the worker a shuffle fetch could not reach (its connection failed, or it
    /// did not answer), if that is why the task failed.
    pub fn unreachable_peer(&self) -> Option<&str> {
        match self {
            TaskError::Fetch {
                from,
                source: PeerError::Connect(_),
            } => Some(from),
            TaskError::Fetch {
                from,
                source: PeerError::Rpc(Remote(status)),
            } if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ) =>
            {
                Some(from)
            }
            _ => None,
        }
    }

    /// `step`'s UDF failed with `source`.
    pub(crate) fn step(step: &StepRef, source: CallError) -> TaskError {
        TaskError::Step {
            kind: step.kind,
            module: step.label.clone(),
            function: step.function.clone(),
            at: None,
            source: UdfFailure(Box::new(source)),
        }
    }

    pub(crate) fn shuffle(path: impl Into<PathBuf>, source: impl Into<DataError>) -> TaskError {
        TaskError::Shuffle {
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn spill(path: impl Into<PathBuf>, source: impl Into<DataError>) -> TaskError {
        TaskError::Spill {
            path: path.into(),
            source: source.into(),
        }
    }
}

/// How a step's UDF failed, as its step names it: the reason alone (`trapped: …`, `failed: …`), since
/// the step already says which UDF (`map textkit@1/upper: trapped: …`). The call's own error is
/// inside, typed.
#[derive(Debug)]
pub struct UdfFailure(pub Box<CallError>);

impl std::fmt::Display for UdfFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.reason())
    }
}

impl std::error::Error for UdfFailure {}

/// What was wrong with shuffle or spill data, or with the file holding it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Bytes that do not form what the shuffle writes (a truncated or foreign file, a bug).
    #[error("{0}")]
    Malformed(String),
}

impl From<String> for DataError {
    fn from(what: String) -> DataError {
        DataError::Malformed(what)
    }
}

/// Why another worker's shuffle block could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect")]
    Connect(#[source] tonic::transport::Error),
    #[error(transparent)]
    Rpc(#[from] Remote),
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Why a module could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("not a blake3 module id")]
    InvalidId,
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("the fetched bytes do not match the module id")]
    Mismatch,
    #[error("cannot compile it")]
    Compile(#[source] ValidationError),
    #[error("cannot load it with a wasm stack of {stack} bytes: {detail}")]
    Stack { stack: usize, detail: String },
}

/// Why a [`ModuleSource`](crate::ModuleSource) could not give a module's bytes.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not a module id (blake3:<64 hex digits>)")]
    InvalidId(String),
    #[error("cannot reach the scheduler at {url}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("cannot fetch the module from the scheduler at {url}")]
    Rpc {
        url: String,
        #[source]
        source: Remote,
    },
    #[error("the module is over the size limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the module from the scheduler at {url} does not match its id; it will not be used")]
    Mismatch { url: String },
    /// A source of another kind (say, a registry in the same process) failed.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}
