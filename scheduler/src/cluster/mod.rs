//! The scheduler as a service, and the in-process cluster `weft run` uses.
//!
//! [`Scheduler`] holds the jobs and the worker pool; [`start`] serves it (registry, jobs, cluster
//! and worker-control services) on a listener, as `weft scheduler` does.
//! [`LocalCluster`] starts that server and N workers in one process, each on
//! its own `127.0.0.1:0` listener, talking the same gRPC protocol a multi-process cluster does:
//! tasks are launched, reported and killed over `worker.proto`, and shuffle blocks cross between
//! workers through `FetchShuffleBlock`. Only the processes differ.

mod control;
mod runner;
mod scheduler;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use weft_host::{Engine, GuestModule, SandboxLimits, ValidationLimits};
use weft_worker::ModuleSource;
use weft_worker::service::{WorkerConfig, WorkerHandle};

pub use control::{ControlService, ControlState, WorkerEntry, WorkerInfo};
pub use scheduler::{LookupError, Scheduler, SchedulerConfig, SubmitError};
pub use server::{SchedulerHandle, start};

use crate::job::Plan;
use crate::jobs::JobStore;
use crate::{ModuleId, Registry, Tenant};

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
    #[error("output: {0}")]
    Output(weft_io::Error),
    /// No worker can read the job's input.
    #[error("input: {0}")]
    Input(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The cluster could not run the job.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub job_id: String,
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
}

/// How a local cluster is shaped.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    pub workers: usize,
    pub slots_per_worker: usize,
    pub limits: SandboxLimits,
    /// Where the scheduler keeps job state (sled); `None` keeps it in memory.
    pub jobs_dir: Option<PathBuf>,
    /// Modules every worker installs before any task, by module id, in place of the registry's
    /// module of that id: e.g. `GuestModule::native` UDFs under the id of the wasm module they were
    /// built from, to run the same job without the sandbox and measure what it costs.
    pub preloaded: Vec<(String, GuestModule)>,
    /// Where workers keep compiled modules across runs (`cache_dir/compiled/<engine hash>/`), so
    /// that a second `weft run` of a job loads its modules instead of compiling them again (a
    /// 60 KB guest takes 100-200 ms to compile, 0.2 ms to load). `None`: in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for LocalClusterConfig {
    fn default() -> Self {
        LocalClusterConfig {
            workers: 2,
            slots_per_worker: 1,
            limits: SandboxLimits::default(),
            jobs_dir: None,
            preloaded: Vec::new(),
            cache_dir: None,
        }
    }
}

/// Why a local cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("starting the engine: {0}")]
    Engine(String),
    #[error("starting a worker: {0}")]
    Worker(#[from] weft_worker::service::WorkerError),
    #[error(transparent)]
    Store(#[from] crate::jobs::StoreError),
}

/// Gives workers module bytes from the registry, for the tenant that runs the job only.
#[derive(Debug)]
struct RegistrySource(Arc<Registry>);

impl ModuleSource for RegistrySource {
    fn fetch(&self, tenant: &str, id: &str) -> Result<Vec<u8>, String> {
        let tenant = Tenant::new(tenant)?;
        let entry = self.0.resolve(&tenant, id).map_err(|e| e.to_string())?;
        let id: ModuleId = entry.version.id;
        self.0.read(&id).map_err(|e| e.to_string())
    }
}

/// A scheduler and its workers in this process.
#[derive(Debug)]
pub struct LocalCluster {
    server: SchedulerHandle,
    workers: Vec<WorkerHandle>,
    engine: Engine,
}

impl LocalCluster {
    /// Starts the scheduler (keeping job state in `config.jobs_dir`, or in memory) and
    /// `config.workers` workers, which keep their shuffle files under `work_dir`.
    pub async fn start(
        registry: Arc<Registry>,
        work_dir: &Path,
        config: LocalClusterConfig,
    ) -> Result<LocalCluster, ClusterError> {
        let store = match &config.jobs_dir {
            Some(dir) => JobStore::open(dir)?,
            None => JobStore::temporary()?,
        };
        let scheduler = Scheduler::new(
            registry.clone(),
            store,
            SchedulerConfig {
                limits: config.limits.clone(),
                ..SchedulerConfig::default()
            },
        )?;
        let tasks = config
            .workers
            .saturating_mul(config.slots_per_worker.max(1));
        let engine = Engine::for_tasks(u32::try_from(tasks).unwrap_or(u32::MAX))
            .map_err(|e| ClusterError::Engine(format!("{e:#}")))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = start(
            listener,
            scheduler,
            engine.clone(),
            ValidationLimits::default(),
        )?;
        let source: Arc<dyn ModuleSource> = Arc::new(RegistrySource(registry));
        let mut workers = Vec::new();
        for i in 0..config.workers {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let dir = work_dir.join(format!("worker-{i}"));
            let worker = weft_worker::service::start(
                listener,
                WorkerConfig {
                    scheduler: server.url(),
                    slots: config.slots_per_worker.max(1) as u32,
                    work_dir: dir,
                    preloaded: config.preloaded.clone(),
                    // Workers of one process share the cache: artifacts are written under a
                    // temporary name and renamed, so concurrent writers cannot tear a file.
                    cache_dir: config.cache_dir.clone(),
                    ..WorkerConfig::default()
                },
                engine.clone(),
                source.clone(),
            )
            .await?;
            workers.push(worker);
        }
        Ok(LocalCluster {
            server,
            workers,
            engine,
        })
    }

    /// The engine the workers run guests on (to ask, say, how it allocates them).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The scheduler, to submit jobs and ask about them.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        self.server.scheduler()
    }

    /// `http://ADDRESS` of the scheduler's gRPC server.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The in-process workers.
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Runs a planned job to completion: its output is committed, or nothing is left behind.
    pub async fn run(
        &self,
        tenant: &Tenant,
        plan: &Plan,
        overwrite: bool,
    ) -> Result<JobReport, JobError> {
        let scheduler = self.scheduler();
        let id = scheduler
            .submit_plan(tenant, plan.clone(), overwrite)
            .map_err(|e| JobError::Cluster(e.to_string()))?;
        scheduler.join(&id).await
    }

    /// Stops the scheduler (cancelling what still runs) and the workers.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        for w in self.workers {
            w.shutdown().await;
        }
    }
}
