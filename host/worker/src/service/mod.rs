//! The worker as a gRPC service: it registers with the scheduler, runs launched tasks on its
//! slots (one thread each: guests are blocking code), reports their outcome, kills on request and
//! serves its shuffle blocks to other workers.

pub mod convert;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use weft_host::{Engine, Records};
use weft_proto::v1 as pb;
use weft_proto::v1::scheduler_control_client::SchedulerControlClient;
use weft_proto::v1::worker_client::WorkerClient;

use crate::task::{BlockLocation, TaskId, TaskSpec};
use crate::{Executor, ModuleSource, TaskError, read_block_bytes};
use convert::{TaskFailure, TaskOutcome};

/// How a worker is set up.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// The scheduler's control service, e.g. `http://127.0.0.1:7070`.
    pub scheduler: String,
    /// Tasks run at once.
    pub slots: u32,
    /// Shuffle files live under `work_dir/shuffle`.
    pub work_dir: PathBuf,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the scheduler at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the scheduler refused this worker: {0}")]
    Refused(String),
    #[error("worker I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A running worker. Dropping it does not stop it: call [`WorkerHandle::shutdown`].
#[derive(Debug)]
pub struct WorkerHandle {
    pub id: String,
    pub address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops serving and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }
}

struct State {
    executor: Executor,
    id: OnceLock<String>,
    slots: u32,
    /// Running attempts and their cancel flags.
    running: Mutex<HashMap<TaskId, Arc<AtomicBool>>>,
    scheduler: SchedulerControlClient<Channel>,
    /// Connections to other workers, for shuffle fetches.
    peers: Mutex<HashMap<String, WorkerClient<Channel>>>,
    runtime: tokio::runtime::Handle,
    /// This worker's address as other workers reach it (`http://host:port`).
    address: String,
}

/// Serves a worker on `listener` and registers it with the scheduler.
pub async fn start(
    listener: TcpListener,
    config: WorkerConfig,
    engine: Engine,
    source: Arc<dyn ModuleSource>,
) -> Result<WorkerHandle, WorkerError> {
    let address = listener.local_addr()?;
    std::fs::create_dir_all(&config.work_dir)?;
    let engine_hash = engine.compatibility_hash();
    let scheduler = SchedulerControlClient::connect(config.scheduler.clone())
        .await
        .map_err(|e| WorkerError::Connect {
            url: config.scheduler.clone(),
            detail: e.to_string(),
        })?;
    let state = Arc::new(State {
        executor: Executor::new(engine, source, &config.work_dir),
        id: OnceLock::new(),
        slots: config.slots.max(1),
        running: Mutex::new(HashMap::new()),
        scheduler,
        peers: Mutex::new(HashMap::new()),
        runtime: tokio::runtime::Handle::current(),
        address: format!("http://{address}"),
    });

    let (tx, rx) = oneshot::channel::<()>();
    let service = pb::worker_server::WorkerServer::new(Service(state.clone()))
        .max_decoding_message_size(64 << 20);
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await;
    });

    let reply = state
        .scheduler
        .clone()
        .register_worker(pb::RegisterWorkerRequest {
            protocol_version: weft_proto::PROTOCOL_VERSION,
            engine_hash,
            address: state.address.clone(),
            slots: state.slots,
            memory_bytes: 0,
            hostname: String::new(),
        })
        .await
        .map_err(|s| WorkerError::Refused(s.message().to_owned()))?
        .into_inner();
    let _ = state.id.set(reply.worker_id.clone());
    Ok(WorkerHandle {
        id: reply.worker_id,
        address,
        shutdown: Some(tx),
        server,
    })
}

struct Service(Arc<State>);

impl State {
    fn worker_id(&self) -> &str {
        self.id.get().map_or("", String::as_str)
    }

    /// Runs a task on this thread and reports its outcome.
    fn run_and_report(self: &Arc<State>, spec: TaskSpec, cancelled: Arc<AtomicBool>) {
        let remote = |block: &BlockLocation| -> Result<Vec<Records>, String> {
            self.runtime.block_on(self.fetch(block))
        };
        let result = self
            .executor
            .run(&spec, self.worker_id(), &remote, &cancelled)
            .map(|mut r| {
                for b in &mut r.blocks {
                    b.worker_address = self.address.clone();
                }
                r
            })
            .map_err(|e: TaskError| TaskFailure {
                message: e.to_string(),
                guest_fault: e.is_guest_fault(),
                cancelled: matches!(e, TaskError::Cancelled),
            });
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&spec.id);
        let outcome = TaskOutcome {
            id: spec.id,
            worker_id: self.worker_id().to_owned(),
            result,
        };
        let status = pb::TaskStatus::from(&outcome);
        let mut scheduler = self.scheduler.clone();
        // A lost report is recovered by the scheduler's heartbeat bookkeeping (cluster issue); here
        // there is nobody else to tell.
        let _ = self
            .runtime
            .block_on(async move { scheduler.report_task(status).await });
    }

    async fn fetch(&self, block: &BlockLocation) -> Result<Vec<Records>, String> {
        let client = {
            let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.get(&block.worker_address).cloned()
        };
        let mut client = match client {
            Some(c) => c,
            None => {
                let c = WorkerClient::connect(block.worker_address.clone())
                    .await
                    .map_err(|e| e.to_string())?
                    .max_decoding_message_size(64 << 20);
                self.peers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(block.worker_address.clone(), c.clone());
                c
            }
        };
        let mut stream = client
            .fetch_shuffle_block(pb::FetchShuffleBlockRequest {
                map_task: Some((&block.map_task).into()),
                reduce_partition: block.partition,
            })
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        let mut bytes = Vec::with_capacity(block.bytes as usize);
        while let Some(frame) = stream.message().await.map_err(|s| s.message().to_owned())? {
            bytes.extend_from_slice(&frame.arrow_ipc);
        }
        read_block_bytes(bytes)
    }
}

#[tonic::async_trait]
impl pb::worker_server::Worker for Service {
    async fn launch_task(
        &self,
        request: Request<pb::TaskDefinition>,
    ) -> Result<Response<pb::LaunchTaskReply>, Status> {
        let spec = TaskSpec::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let flag = Arc::new(AtomicBool::new(false));
        {
            let mut running = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
            if running.len() >= self.0.slots as usize {
                return Ok(Response::new(pb::LaunchTaskReply {
                    accepted: false,
                    reason: "no free slot".into(),
                }));
            }
            running.insert(spec.id.clone(), flag.clone());
        }
        let state = self.0.clone();
        std::thread::Builder::new()
            .name(format!("weft-task-{}-{}", spec.id.stage, spec.id.partition))
            .spawn(move || state.run_and_report(spec, flag))
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        Ok(Response::new(pb::LaunchTaskReply {
            accepted: true,
            reason: String::new(),
        }))
    }

    async fn kill_task(
        &self,
        request: Request<pb::TaskAttemptId>,
    ) -> Result<Response<pb::KillTaskReply>, Status> {
        let id = TaskId::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let running = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
        let killed = running
            .get(&id)
            .map(|flag| flag.store(true, Ordering::Relaxed))
            .is_some();
        Ok(Response::new(pb::KillTaskReply { killed }))
    }

    type FetchShuffleBlockStream = ReceiverStream<Result<pb::ShuffleFrame, Status>>;

    async fn fetch_shuffle_block(
        &self,
        request: Request<pb::FetchShuffleBlockRequest>,
    ) -> Result<Response<Self::FetchShuffleBlockStream>, Status> {
        let request = request.into_inner();
        let task = request
            .map_task
            .ok_or_else(|| Status::invalid_argument("missing map_task"))
            .and_then(|t| {
                TaskId::try_from(t).map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let path = self.0.executor.block_path(&task, request.reduce_partition);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::not_found(format!("shuffle block of {task}: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            const FRAME: usize = 1 << 20;
            loop {
                let mut buf = vec![0u8; FRAME];
                match file.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx
                            .send(Ok(pb::ShuffleFrame { arrow_ipc: buf }))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn release_job(
        &self,
        request: Request<pb::ReleaseJobRequest>,
    ) -> Result<Response<pb::ReleaseJobReply>, Status> {
        let job = request.into_inner().job_id;
        let id = TaskId::try_from(pb::TaskAttemptId {
            job_id: job,
            ..Default::default()
        })
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.0
            .executor
            .release_job(&id.job)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ReleaseJobReply {}))
    }

    async fn check_paths(
        &self,
        request: Request<pb::CheckPathsRequest>,
    ) -> Result<Response<pb::CheckPathsReply>, Status> {
        let paths = request.into_inner().paths;
        let errors = tokio::task::spawn_blocking(move || {
            paths.iter().map(|p| check_path(Path::new(p))).collect()
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::CheckPathsReply { errors }))
    }
}

/// Empty when this process can see `path` (a readable file, or a directory it can list), else why
/// not, as the operating system says it.
fn check_path(path: &Path) -> String {
    let result = std::fs::metadata(path).and_then(|meta| {
        if meta.is_dir() {
            std::fs::read_dir(path).map(drop)
        } else {
            std::fs::File::open(path).map(drop)
        }
    });
    match result {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}
