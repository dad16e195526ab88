//! The scheduler as a service: the jobs it accepts and runs on the shared worker pool, and the
//! cluster's membership.
//!
//! # Layout
//! - `scheduler` — [`Scheduler`]: accepts jobs (one preparation path, `job::prepare`), runs each
//!   in a task of its own, answers status, watch, list, cancel and logs;
//! - `control` — [`ControlState`]: registered workers, their slots and heartbeats, and where each
//!   job wants its task outcomes;
//! - `worker` — [`WorkerConnection`]: how the scheduler reaches a worker (launch, kill, release,
//!   check paths); its gRPC implementation is in `service`;
//! - `tasks` — a plan's stages as task specs, and a job's first status;
//! - `placement` — which worker a task goes to;
//! - `runner` — the run loop of one job.
//!
//! The gRPC services over these, and the server that serves them, are in [`crate::service`].
//!
//! The in-process cluster (`weft run`: this scheduler and workers in one process) is assembled
//! above this crate and the worker's, in `weft-local`.

mod control;
mod placement;
mod runner;
mod scheduler;
mod stage;
mod tasks;
mod worker;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use control::{ControlState, SlotShare, WorkerInfo};
pub use scheduler::{LookupError, Scheduler, SchedulerConfig, SubmitError};
pub use worker::{WorkerCallError, WorkerConnection, WorkerEntry};

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A task failed; the message names its step's module and function and carries the guest's own
    /// message.
    #[error("job {job}: stage {stage} partition {partition}: {message}")]
    Task {
        job: String,
        stage: u32,
        partition: u32,
        message: String,
        guest_fault: bool,
    },
    /// The output directory could not be prepared or committed.
    #[error("output")]
    Output(#[source] weft_io::Error),
    /// No worker can read the job's input.
    #[error("input: {0}")]
    Input(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The cluster could not run the job.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A task could not read shuffle output kept by a worker that is gone. Internal to a run:
    /// the tasks that wrote the output run again.
    #[error("shuffle output was lost with its worker")]
    InputLost,
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub job_id: String,
    pub job_name: String,
    pub output: PathBuf,
    pub stages: Vec<StageReport>,
    pub elapsed: Duration,
}

/// Totals of one stage's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageReport {
    pub stage: u32,
    pub tasks: u32,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Shuffle blocks the stage's tasks fetched from another worker over gRPC.
    pub remote_fetches: u64,
    /// Malformed input records the stage's tasks dropped (`on_error` skip or quarantine).
    pub records_skipped: u64,
}
