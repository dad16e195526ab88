//! Weft's in-process cluster: the scheduler of `weft-scheduler` and workers of `weft-worker` in one
//! process, each on its own `127.0.0.1:0` listener, talking the same gRPC protocol a cluster of
//! separate processes does — tasks are launched, reported and killed over `worker.proto`, and
//! shuffle blocks cross between workers through `FetchShuffleBlock`. Only the processes differ.
//!
//! This is what `weft run` (and `weft job` without `--scheduler`) runs jobs on. It sits above both
//! the scheduler and the worker crates, which never depend on each other.
//!
//! A job is submitted before any worker starts ([`LocalCluster::run`]): whatever the scheduler
//! refuses — a bad job file, a missing input, an existing output — is refused before a worker or
//! its work directory exists, by the same checks a cluster's scheduler makes.

mod data_dir;

pub use data_dir::{DataDir, DataDirError, RunStore};

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use weft_host::{Engine, GuestModule, ValidationLimits};
use weft_scheduler::cluster::{Scheduler, SchedulerConfig, SubmitError};
use weft_scheduler::job::Submission;
use weft_scheduler::jobs::{JobStore, MemoryJobStore, SledJobStore, StoreError};
use weft_scheduler::service::SchedulerHandle;
use weft_scheduler::{JobError, JobReport, ModuleId, Registry, Tenant};
use weft_task::TaskLimits;
use weft_worker::service::{WorkerConfig, WorkerError, WorkerHandle};
use weft_worker::{FetchError, ModuleSource};

/// How a local cluster is shaped.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    pub workers: usize,
    pub slots_per_worker: usize,
    pub limits: TaskLimits,
    /// Where workers keep their shuffle files (`work_dir/worker-N`); created when they start.
    pub work_dir: PathBuf,
    /// Where the scheduler keeps job state (sled); `None` keeps it in memory.
    pub jobs_dir: Option<PathBuf>,
    /// The scheduler's job store, in place of `jobs_dir`'s: e.g. a [`RunStore`], which shares a
    /// data directory with other processes.
    pub job_store: Option<Arc<dyn JobStore>>,
    /// Modules every worker installs before any task, by module id, in place of the registry's
    /// module of that id: e.g. `GuestModule::native` UDFs under the id of the wasm module they were
    /// built from, to run the same job without the sandbox and measure what it costs.
    pub preloaded: Vec<(String, GuestModule)>,
    /// Where workers keep compiled modules across runs (`cache_dir/compiled/<engine hash>/`), so
    /// that a second `weft run` of a job loads its modules instead of compiling them again (a
    /// 60 KB guest takes 100-200 ms to compile, 0.2 ms to load). `None`: in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Memory each worker offers its tasks, shared by its slots as each task's grouping budget
    /// (`weft worker --memory`); 0: the worker's default (256 MiB per task).
    pub worker_memory: u64,
}

impl LocalClusterConfig {
    /// Two workers of one slot each, shuffling under `work_dir`, everything else in memory.
    pub fn new(work_dir: impl Into<PathBuf>) -> LocalClusterConfig {
        LocalClusterConfig {
            workers: 2,
            slots_per_worker: 1,
            limits: TaskLimits::default(),
            work_dir: work_dir.into(),
            jobs_dir: None,
            job_store: None,
            preloaded: Vec::new(),
            cache_dir: None,
            worker_memory: 0,
        }
    }
}

/// Why a local cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot listen on loopback")]
    Io(#[from] std::io::Error),
    #[error("cannot start the engine")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start a worker")]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`LocalCluster::run`] did not produce a job's output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scheduler refused the job; nothing ran.
    #[error(transparent)]
    Refused(#[from] SubmitError),
    /// The workers could not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The job ran and failed (or was cancelled).
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Gives workers module bytes from the registry, for the tenant that runs the job only.
#[derive(Debug)]
struct RegistrySource(Arc<Registry>);

impl ModuleSource for RegistrySource {
    fn fetch(&self, tenant: &str, id: &str) -> Result<Vec<u8>, FetchError> {
        let other = |e: Box<dyn std::error::Error + Send + Sync>| FetchError::Other(e);
        let id: ModuleId = id
            .parse()
            .map_err(|_| FetchError::InvalidId(id.to_owned()))?;
        let tenant = Tenant::new(tenant).map_err(|e| other(e.into()))?;
        // Only a module the tenant registered under some name: ids of other tenants' modules do
        // not resolve.
        let entry = self
            .0
            .resolve(&tenant, &id.to_string())
            .map_err(|e| other(e.into()))?;
        self.0.read(&entry.version.id).map_err(|e| other(e.into()))
    }
}

/// A scheduler and its workers in this process.
#[derive(Debug)]
pub struct LocalCluster {
    server: SchedulerHandle,
    registry: Arc<Registry>,
    config: LocalClusterConfig,
    engine: Engine,
    workers: Vec<WorkerHandle>,
}

impl LocalCluster {
    /// Starts the scheduler and `config.workers` workers.
    pub async fn start(
        registry: Arc<Registry>,
        config: LocalClusterConfig,
    ) -> Result<LocalCluster, ClusterError> {
        let mut cluster = LocalCluster::start_scheduler(registry, config).await?;
        cluster.start_workers().await?;
        Ok(cluster)
    }

    /// Starts the scheduler alone (keeping job state in `config.jobs_dir`, or in memory): jobs
    /// submitted now are checked and queued, and run once [`start_workers`] adds the workers.
    ///
    /// [`start_workers`]: LocalCluster::start_workers
    pub async fn start_scheduler(
        registry: Arc<Registry>,
        config: LocalClusterConfig,
    ) -> Result<LocalCluster, ClusterError> {
        let store: Arc<dyn JobStore> = match (&config.job_store, &config.jobs_dir) {
            (Some(store), _) => store.clone(),
            (None, Some(dir)) => Arc::new(SledJobStore::open(dir)?),
            (None, None) => Arc::new(MemoryJobStore::new()),
        };
        let tasks = config
            .workers
            .saturating_mul(config.slots_per_worker.max(1));
        let scheduler = Scheduler::new(
            registry.clone(),
            store,
            SchedulerConfig {
                limits: config.limits,
                // The job is submitted before the workers start: size its splits for them.
                split_slots: Some(u32::try_from(tasks).unwrap_or(u32::MAX)),
                ..SchedulerConfig::default()
            },
        )?;
        let engine = Engine::for_tasks(u32::try_from(tasks).unwrap_or(u32::MAX))
            .map_err(|e| ClusterError::Engine(e.into()))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = weft_scheduler::service::start(
            listener,
            scheduler,
            engine.clone(),
            ValidationLimits::default(),
        )?;
        Ok(LocalCluster {
            server,
            registry,
            config,
            engine,
            workers: Vec::new(),
        })
    }

    /// Starts the configured workers (once: a cluster that has them starts none), each with its
    /// work directory under `config.work_dir`.
    pub async fn start_workers(&mut self) -> Result<(), ClusterError> {
        if !self.workers.is_empty() {
            return Ok(());
        }
        let source: Arc<dyn ModuleSource> = Arc::new(RegistrySource(self.registry.clone()));
        for i in 0..self.config.workers {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let worker = weft_worker::service::start(
                listener,
                WorkerConfig {
                    scheduler: self.server.url(),
                    slots: u32::try_from(self.config.slots_per_worker.max(1)).unwrap_or(u32::MAX),
                    work_dir: self.config.work_dir.join(format!("worker-{i}")),
                    preloaded: self.config.preloaded.clone(),
                    // Workers of one process share the cache: its files are written atomically,
                    // so concurrent writers cannot tear one.
                    cache_dir: self.config.cache_dir.clone(),
                    memory_bytes: self.config.worker_memory,
                    ..WorkerConfig::default()
                },
                self.engine.clone(),
                source.clone(),
            )
            .await?;
            self.workers.push(worker);
        }
        Ok(())
    }

    /// Runs a job to its end, as `weft run` does: submits it to the scheduler (which refuses it,
    /// before any worker starts, for anything a cluster's scheduler would refuse it for), starts
    /// the workers, and waits. The output is committed, or nothing is left behind.
    pub async fn run(
        &mut self,
        tenant: &Tenant,
        submission: Submission,
    ) -> Result<JobReport, RunError> {
        let job = self.scheduler().submit(tenant, submission).await?;
        if let Err(e) = self.start_workers().await {
            let _ = self.scheduler().cancel(tenant, &job).await;
            return Err(e.into());
        }
        Ok(self.scheduler().join(&job).await?)
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

    /// Stops the scheduler (cancelling what still runs) and the workers.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        for w in self.workers {
            w.shutdown().await;
        }
    }
}
