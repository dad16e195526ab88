//! Errors of task execution.

use std::path::PathBuf;

use weft_host::{CallError, UdfKind};

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A step's UDF failed (trap, guest error, limit): the user's code.
    #[error("{kind} {module}/{function}: {}", source.reason())]
    Step {
        kind: UdfKind,
        module: String,
        function: String,
        #[source]
        source: Box<CallError>,
    },
    /// The module could not be instantiated.
    #[error("module {module}: {source}")]
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
    #[error("module {id}: {detail}")]
    Module { id: String, detail: String },
    /// Reading input or writing output failed.
    #[error(transparent)]
    Io(#[from] weft_io::Error),
    /// A shuffle block could not be fetched from another worker.
    #[error("fetching a shuffle block from {from}: {detail}")]
    Fetch { from: String, detail: String },
    /// The task was killed.
    #[error("the task was cancelled")]
    Cancelled,
    /// Reading or writing shuffle data failed.
    #[error("shuffle file {path}: {detail}")]
    Shuffle { path: PathBuf, detail: String },
    /// Writing or reading a sorted run spilled by a grouper over its memory budget failed.
    #[error("spilled run {path}: {detail}")]
    Spill { path: PathBuf, detail: String },
}

impl TaskError {
    /// Whether the failure is the user's code (deterministic: retrying will not help).
    pub fn is_guest_fault(&self) -> bool {
        match self {
            TaskError::Step { source, .. } => source.is_guest_fault(),
            _ => false,
        }
    }
}
