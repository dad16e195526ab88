//! A registered worker as the scheduler sees it ([`WorkerEntry`]), and [`WorkerConnection`]: what
//! the scheduler asks of it — launch a task, kill an
//! attempt, release a job's shuffle files, check which input paths it can read — in domain terms.
//!
//! The job runner and the control state only ever talk to workers through this trait. Its gRPC
//! implementation is `service::worker` (what a cluster and `weft run` use); tests implement it in
//! memory to drive placement and the run loop without sockets.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use weft_task::{Launch, TaskId, TaskSpec};

/// A registered worker, as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct WorkerEntry {
    pub id: String,
    pub address: String,
    pub hostname: String,
    pub slots: u32,
    pub memory_bytes: u64,
    pub engine_hash: String,
    pub registered_ms: u64,
    /// How the scheduler reaches the worker.
    pub conn: Arc<dyn WorkerConnection>,
    pub(super) last_seen: Instant,
    /// Attempts the scheduler placed here and has not heard the end of, with their launch time.
    pub(super) running: HashMap<TaskId, Instant>,
    /// Module ids the worker reported holding compiled.
    pub(super) compiled: HashSet<String>,
    /// How far its running attempts had read, `(records, bytes)`, at its last heartbeat.
    pub(super) progress: HashMap<TaskId, (u64, u64)>,
    /// It said it is draining: it takes no new task.
    pub(super) draining: bool,
    /// Which registration this is (unique in the scheduler's life): a session opened for an
    /// earlier one ending says nothing of this one.
    pub(super) registration: u64,
}

impl WorkerEntry {
    /// Slots a new task may take: none on a draining worker.
    pub fn free_slots(&self) -> u32 {
        if self.draining {
            return 0;
        }
        self.slots.saturating_sub(self.running.len() as u32)
    }

    pub fn has_compiled(&self, module: &str) -> bool {
        self.compiled.contains(module)
    }
}

/// A connection to one worker.
#[async_trait::async_trait]
pub trait WorkerConnection: Send + Sync + fmt::Debug {
    /// Asks the worker to run `task` on a free slot. [`Launch::Refused`] when it has none.
    async fn launch(&self, task: &TaskSpec) -> Result<Launch, WorkerCallError>;

    /// Asks the worker to stop an attempt (it does between batches, and interrupts a guest call
    /// within an epoch tick). Whether the attempt was running there.
    async fn kill(&self, task: &TaskId) -> Result<bool, WorkerCallError>;

    /// Tells the worker a job is over: it deletes the job's shuffle files.
    async fn release_job(&self, job: &str) -> Result<(), WorkerCallError>;

    /// For each path, in order: `Ok` when the worker can read it (a file it can open, a directory
    /// it can list), else why not, in the worker's words.
    async fn check_paths(
        &self,
        paths: &[String],
    ) -> Result<Vec<Result<(), String>>, WorkerCallError>;
}

/// A call to a worker that did not get an answer, or got an error instead of one: the transport's
/// or the worker's error, kept whole.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WorkerCallError(pub Box<dyn std::error::Error + Send + Sync>);

impl WorkerCallError {
    /// An error that is only a message.
    pub fn new(message: impl Into<String>) -> WorkerCallError {
        WorkerCallError(message.into().into())
    }
}
