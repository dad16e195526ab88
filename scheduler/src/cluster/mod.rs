//! The scheduler as a service, and the in-process cluster `weft run` uses.
//!
//! [`LocalCluster`] starts the scheduler's control service and N workers in one process, each on
//! its own `127.0.0.1:0` listener, talking the same gRPC protocol a multi-process cluster does:
//! tasks are launched, reported and killed over `worker.proto`, and shuffle blocks cross between
//! workers through `FetchShuffleBlock`. Only the processes differ.

mod control;
mod runner;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use weft_host::{Engine, SandboxLimits};
use weft_proto::v1 as pb;
use weft_worker::ModuleSource;
use weft_worker::service::{WorkerConfig, WorkerHandle};

pub use control::{ControlService, ControlState};

use crate::job::Plan;
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
}

impl Default for LocalClusterConfig {
    fn default() -> Self {
        LocalClusterConfig {
            workers: 2,
            slots_per_worker: 1,
            limits: SandboxLimits::default(),
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
    control: Arc<ControlState>,
    workers: Vec<WorkerHandle>,
    shutdown: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    limits: SandboxLimits,
}

static JOBS: AtomicU64 = AtomicU64::new(0);

impl LocalCluster {
    /// Starts the scheduler and `config.workers` workers, which keep their shuffle files under
    /// `work_dir`.
    pub async fn start(
        registry: Arc<Registry>,
        work_dir: &Path,
        config: LocalClusterConfig,
    ) -> Result<LocalCluster, ClusterError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let scheduler = format!("http://{}", listener.local_addr()?);
        let control = Arc::new(ControlState::default());
        let (tx, rx) = oneshot::channel::<()>();
        let service = pb::scheduler_control_server::SchedulerControlServer::new(ControlService(
            control.clone(),
        ));
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = rx.await;
                })
                .await;
        });

        let engine = Engine::new().map_err(|e| ClusterError::Engine(format!("{e:#}")))?;
        let source: Arc<dyn ModuleSource> = Arc::new(RegistrySource(registry));
        let mut workers = Vec::new();
        for i in 0..config.workers.max(1) {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let worker = weft_worker::service::start(
                listener,
                WorkerConfig {
                    scheduler: scheduler.clone(),
                    slots: config.slots_per_worker.max(1) as u32,
                    work_dir: work_dir.join(format!("worker-{i}")),
                    ..WorkerConfig::default()
                },
                engine.clone(),
                source.clone(),
            )
            .await?;
            workers.push(worker);
        }
        Ok(LocalCluster {
            control,
            workers,
            shutdown: tx,
            server,
            limits: config.limits,
        })
    }

    /// Runs a planned job to completion: its output is committed, or nothing is left behind.
    pub async fn run(
        &self,
        tenant: &Tenant,
        plan: &Plan,
        overwrite: bool,
    ) -> Result<JobReport, JobError> {
        let n = JOBS.fetch_add(1, Ordering::Relaxed);
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let job_id = format!("{}-{millis}-{n}", plan.job_name);
        runner::run(
            &self.control,
            tenant,
            plan,
            &job_id,
            overwrite,
            &self.limits,
        )
        .await
    }

    /// Stops the workers and the scheduler.
    pub async fn shutdown(self) {
        for w in self.workers {
            w.shutdown().await;
        }
        let _ = self.shutdown.send(());
        let _ = self.server.await;
    }
}
