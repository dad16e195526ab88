//! The worker as a gRPC service: it registers with the scheduler, holds a session open with it (so
//! that its death is noticed at once), heartbeats (free slots, running
//! attempts, compiled modules; killing what the scheduler says and registering again when it has
//! forgotten the worker), runs launched tasks on its slots (one thread each: guests are blocking
//! code), reports their outcome with what the guests printed, kills on request and serves its
//! shuffle blocks to other workers.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use weft_host::{Compiler, Engine, GuestModule, Records};
use weft_proto::v1 as pb;
use weft_proto::v1::scheduler_control_client::SchedulerControlClient;
use weft_proto::v1::worker_client::WorkerClient;
use weft_task::auth::{AuthChannel, Secret, presented};
use weft_task::link::{Link, Tls};
use weft_task::{
    BlockLocation, Heartbeat, HeartbeatReply, Launch, Registered, Remote, TaskFailure, TaskId,
    TaskOutcome, TaskProgress, TaskSpec, WorkerRegistration,
};

use crate::{BlockDecoder, Executor, ExecutorStats, ModuleSource, PeerError, Progress, TaskError};

/// The stack of a task's thread: the most wasm stack a task may ask for (its guests' calls run on
/// this thread), and room for the host's own frames (reading, writing, wasmtime's entry) beside.
/// Address space only: pages are touched as calls go deep.
const TASK_THREAD_STACK: usize = weft_task::MAX_STACK_BYTES as usize + (8 << 20);
/// How often a draining worker looks whether it is done.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// How long a draining worker with no task waits for a scheduler out of reach before it stops.
const SCHEDULER_GONE: Duration = Duration::from_secs(10);
/// The heartbeat interval when the scheduler's registration reply leaves it at 0.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// The shortest interval honoured: a scheduler asking for less would have workers spin.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// How long a heartbeat or a registration may take before it counts as failed: a scheduler that
/// accepts connections but does not answer must not stall the heartbeat loop.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before registering again with a scheduler that could not be reached; it
/// doubles up to [`REGISTER_BACKOFF_MAX`].
const REGISTER_BACKOFF_START: Duration = Duration::from_millis(100);
const REGISTER_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How a worker is set up. Every field has a usable default except `scheduler`.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    /// The scheduler's control service, e.g. `http://127.0.0.1:7070`.
    pub scheduler: String,
    /// Tasks run at once (at least 1).
    pub slots: u32,
    /// Shuffle files live under `work_dir/shuffle`.
    pub work_dir: PathBuf,
    /// The memory budget the scheduler may plan with, in bytes; 0 when unknown.
    pub memory_bytes: u64,
    /// The machine's name, for the scheduler's listings; empty: the system's hostname, read at
    /// start-up.
    pub hostname: String,
    /// Where compiled modules are kept across restarts (`cache_dir/compiled/<engine hash>/`);
    /// `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Modules installed before any task, by module id, in place of what the registry holds under
    /// that id (see [`Executor::preload`]): e.g. UDFs compiled natively, to measure the sandbox.
    pub preloaded: Vec<(String, GuestModule)>,
    /// How long to keep trying to register while the scheduler cannot be reached (not up yet,
    /// restarting), retrying with back-off from 100 ms to 5 s; `None` waits for it forever. A
    /// scheduler that answers with a refusal is never retried.
    pub register_patience: Option<Duration>,
    /// Where modules are compiled: a server compiles in a child process it can kill
    /// ([`Compiler::Process`]), so a compile bomb costs it nothing but the child.
    pub compiler: Compiler,
    /// The cluster secret: presented to the scheduler and to other workers, and required of
    /// whoever calls this worker. `None` for a cluster without one.
    pub cluster_secret: Option<Secret>,
    /// TLS: with a certificate, the worker serves over TLS (its address is `https://`); its CA is
    /// what it trusts when calling the scheduler and other workers.
    pub tls: Option<Tls>,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the scheduler at {url}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the scheduler did not register this worker")]
    Register(#[source] RegisterError),
    #[error("cannot create the work directory {}", path.display())]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS certificate or key is refused")]
    Tls(#[source] tonic::transport::Error),
    #[error("worker I/O")]
    Io(#[from] std::io::Error),
}

/// Why a registration (or a heartbeat) failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The scheduler answered with a refusal (say, another protocol version) or an error.
    #[error(transparent)]
    Rpc(#[from] Remote),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A running worker. Dropping it stops serving and heartbeating without waiting (tasks already
/// running finish on their threads); [`WorkerHandle::shutdown`] also waits.
pub struct WorkerHandle {
    pub address: SocketAddr,
    state: Arc<State>,
    /// Set to true (or dropped) to stop the server and the heartbeat loop.
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("id", &self.id())
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// The id the scheduler gave this worker. It changes when the scheduler asks the worker to
    /// register again (after a scheduler restart, say).
    pub fn id(&self) -> String {
        self.state.worker_id()
    }

    /// Where the executor's compiled modules came from so far.
    pub fn executor_stats(&self) -> ExecutorStats {
        self.state.executor.stats()
    }

    /// How many times this worker, idle for a while after running tasks, gave its allocator's free
    /// memory back to the system (once per idle spell).
    pub fn idle_trims(&self) -> u64 {
        self.state.idle_trims.load(Ordering::Relaxed)
    }

    /// Drains the worker, as before a restart: it takes no new task (and tells the scheduler so),
    /// lets the tasks it runs finish and report, and serves its shuffle blocks until the jobs that
    /// need them have released them — or until `timeout`, or until the scheduler has been out of
    /// reach for a while (then no job can go on). Call [`WorkerHandle::shutdown`] after.
    pub async fn drain(&self, timeout: Duration) {
        let state = &self.state;
        state.draining.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let mut announced = false;
        loop {
            let tasks = lock(&state.running).len() + lock(&state.reporting).len();
            let blocks = state.executor.holds_shuffle_output();
            if tasks == 0 && !blocks {
                tracing::info!("drained: no task runs, no shuffle block is needed");
                return;
            }
            if !announced {
                announced = true;
                tracing::info!(
                    tasks,
                    "draining: finishing the running tasks and serving shuffle \
                    blocks until their jobs end (at most {timeout:?})"
                );
            }
            if started.elapsed() > timeout {
                tracing::warn!(tasks, "drain timed out after {timeout:?}; stopping");
                return;
            }
            let silent = lock(&state.last_heartbeat).map_or(started.elapsed(), |t| t.elapsed());
            if tasks == 0 && silent > SCHEDULER_GONE {
                tracing::warn!("the scheduler is out of reach: no job needs the shuffle blocks");
                return;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Stops serving and heartbeating, and waits for both to end.
    pub async fn shutdown(self) {
        // Tasks still running are killed: nobody will take their results any more.
        for flag in self
            .state
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            flag.cancelled.store(true, Ordering::Relaxed);
        }
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.heartbeat.await;
        if let Some(session) = lock(&self.state.session).take() {
            session.abort();
        }
    }
}

struct State {
    executor: Executor,
    /// The id the scheduler gave this worker (empty until its registration reply arrives):
    /// replaced when the scheduler asks for a new registration, read by every task, report and
    /// heartbeat.
    id: watch::Sender<String>,
    slots: u32,
    /// Running attempts and their cancel flags.
    running: Mutex<HashMap<TaskId, Running>>,
    /// Attempts that have ended and whose report is on its way. They no longer take a slot, but
    /// heartbeats still list them: a heartbeat that overtook the report would otherwise tell the
    /// scheduler the attempt vanished, and it would fail the task as lost.
    reporting: Mutex<HashSet<TaskId>>,
    scheduler: SchedulerControlClient<AuthChannel>,
    /// Connections to other workers, for shuffle fetches.
    peers: Mutex<HashMap<String, WorkerClient<AuthChannel>>>,
    /// How to reach other workers: TLS, and the cluster secret.
    link: Link,
    runtime: tokio::runtime::Handle,
    /// This worker's address as other workers reach it (`http://host:port`).
    address: String,
    /// What registration sends, kept so that registering again says exactly the same.
    registration: WorkerRegistration,
    scheduler_url: String,
    /// Set once the worker drains: launches are refused and heartbeats say so.
    draining: AtomicBool,
    /// When a heartbeat last reached the scheduler.
    last_heartbeat: Mutex<Option<Instant>>,
    /// The session held open with the scheduler since the last registration (see
    /// [`State::open_session`]).
    session: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Attempts launched here so far: an idle spell is over when it changes.
    launched: AtomicU64,
    /// The value of `launched` when the worker last gave its free memory back (`u64::MAX`: never).
    trimmed_at: AtomicU64,
    /// How many idle spells ended with the free memory given back.
    idle_trims: AtomicU64,
}

/// How long a worker stays without tasks before it gives its allocator's free memory back
/// ([`crate::release_free_memory`]): long enough that the next task of a stage, launched within
/// milliseconds, finds it still there.
const IDLE_TRIM_DELAY: Duration = Duration::from_secs(2);

/// An attempt running here: its kill flag and how far it has read.
struct Running {
    cancelled: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain inserts and removes).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves a worker on `listener`, registers it with the scheduler and starts heartbeating.
pub async fn start(
    listener: TcpListener,
    config: WorkerConfig,
    engine: Engine,
    source: Arc<dyn ModuleSource>,
) -> Result<WorkerHandle, WorkerError> {
    let address = listener.local_addr()?;
    std::fs::create_dir_all(&config.work_dir).map_err(|source| WorkerError::WorkDir {
        path: config.work_dir.clone(),
        source,
    })?;
    let registration = WorkerRegistration {
        engine_hash: engine.compatibility_hash(),
        address: format!("{}://{address}", Tls::scheme(config.tls.as_ref())),
        slots: config.slots.max(1),
        memory_bytes: config.memory_bytes,
        hostname: if config.hostname.is_empty() {
            system_hostname()
        } else {
            config.hostname.clone()
        },
        previous_id: None,
    };
    let mut executor = Executor::new(engine, source, &config.work_dir);
    if config.memory_bytes > 0 {
        // Each slot's task gets an equal share of the worker's memory for its grouping.
        executor = executor.with_task_memory(config.memory_bytes / u64::from(registration.slots));
    }
    if let Some(dir) = &config.cache_dir {
        executor = executor.with_cache_dir(dir);
    }
    executor = executor.with_compiler(config.compiler.clone());
    for (id, module) in &config.preloaded {
        executor.preload(id, module.clone());
    }
    // Connected on first use, so a worker may start before its scheduler (see `register`).
    let link = Link::new(config.cluster_secret.clone(), config.tls.clone());
    let scheduler = link
        .connect_lazy(&config.scheduler, CONTROL_TIMEOUT)
        .map_err(|source| WorkerError::Connect {
            url: config.scheduler.clone(),
            source,
        })?;
    let scheduler = SchedulerControlClient::new(scheduler);
    let state = Arc::new(State {
        executor,
        id: watch::Sender::new(String::new()),
        slots: registration.slots,
        running: Mutex::new(HashMap::new()),
        reporting: Mutex::new(HashSet::new()),
        scheduler,
        peers: Mutex::new(HashMap::new()),
        link,
        runtime: tokio::runtime::Handle::current(),
        address: registration.address.clone(),
        registration,
        scheduler_url: config.scheduler.clone(),
        draining: AtomicBool::new(false),
        last_heartbeat: Mutex::new(None),
        session: Mutex::new(None),
        launched: AtomicU64::new(0),
        trimmed_at: AtomicU64::new(u64::MAX),
        idle_trims: AtomicU64::new(0),
    });

    let (stop, stopped) = watch::channel(false);
    let service = InterceptedService::new(
        pb::worker_server::WorkerServer::new(Service(state.clone()))
            .max_decoding_message_size(64 << 20),
        require_secret(config.cluster_secret.as_ref()),
    );
    let mut server_stop = stopped.clone();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = config.tls.as_ref().and_then(Tls::server) {
        builder = builder.tls_config(tls).map_err(WorkerError::Tls)?;
    }
    let server = tokio::spawn(async move {
        let _ = builder
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                // A dropped sender stops the server as well.
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await;
    });

    // The server is up first: a scheduler may call the worker back while registering it.
    let had_files = state.executor.jobs_with_files();
    let reply = match state.register_patiently(config.register_patience).await {
        Ok(reply) => reply,
        Err(refused) => {
            let _ = stop.send(true);
            let _ = server.await;
            return Err(WorkerError::Register(refused));
        }
    };
    state.set_id(reply.worker_id);
    state.forget_ended_jobs(&had_files, &reply.live_jobs);
    state.open_session();
    let heartbeat = tokio::spawn(heartbeat_loop(
        state.clone(),
        heartbeat_interval(reply.heartbeat_interval),
        stopped,
    ));
    Ok(WorkerHandle {
        address,
        state,
        stop,
        server,
        heartbeat,
    })
}

/// The machine's hostname as the kernel has it, else `$HOSTNAME`, else empty.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// The interval a registration reply asks for, bounded below; 0 means the default.
fn heartbeat_interval(asked: Duration) -> Duration {
    if asked.is_zero() {
        DEFAULT_HEARTBEAT
    } else {
        asked.max(MIN_HEARTBEAT)
    }
}

/// Heartbeats until `stop` says so (or its sender is dropped), waiting `every` after each one. An
/// unreachable scheduler is retried at the same pace, with one warning per outage.
async fn heartbeat_loop(state: Arc<State>, mut every: Duration, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(every) => {}
        }
        let problem = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            problem = state.beat(&mut every) => problem,
        };
        match problem {
            Some(problem) if !failing => {
                failing = true;
                tracing::warn!(worker = %state.address, %problem,
                    "heartbeat failed; retrying every {every:?}");
            }
            None if failing => {
                failing = false;
                tracing::info!("heartbeats reach the scheduler again");
            }
            _ => {}
        }
    }
}

struct Service(Arc<State>);

impl State {
    fn worker_id(&self) -> String {
        self.id.borrow().clone()
    }

    fn set_id(&self, id: String) {
        self.id.send_replace(id);
    }

    /// This worker's id, once it has one. The scheduler may launch a task the moment it has
    /// registered the worker, before the registration reply reaches it: a task must not run (it
    /// tells its own blocks from others' by the id) nor report (the scheduler drops a report of an
    /// unknown worker, and fails the task as lost) until then.
    fn registered_id(&self) -> String {
        let mut id = self.id.subscribe();
        self.runtime.block_on(async {
            let _ = id.wait_for(|id| !id.is_empty()).await;
        });
        self.worker_id()
    }

    /// Registers (again) with the same request as at start-up.
    /// Registers, retrying with back-off while the scheduler cannot be reached, for up to
    /// `patience` (forever if `None`). One warning per outage says what is awaited.
    async fn register_patiently(
        &self,
        patience: Option<Duration>,
    ) -> Result<Registered, RegisterError> {
        let started = tokio::time::Instant::now();
        let mut wait = REGISTER_BACKOFF_START;
        let mut warned = false;
        loop {
            let error = match self.register().await {
                Err(RegisterError::Rpc(Remote(status)))
                    if status.code() == tonic::Code::Unavailable =>
                {
                    RegisterError::Rpc(Remote(status))
                }
                Err(RegisterError::Timeout(t)) => RegisterError::Timeout(t),
                done => return done,
            };
            if patience.is_some_and(|p| started.elapsed() + wait > p) {
                return Err(error);
            }
            if !warned {
                warned = true;
                tracing::warn!(scheduler = %self.scheduler_url, problem = %error,
                    "cannot reach the scheduler; retrying with back-off until it answers");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REGISTER_BACKOFF_MAX);
        }
    }

    /// Registers (again: with the id it had, to keep it).
    async fn register(&self) -> Result<Registered, RegisterError> {
        let mut client = self.scheduler.clone();
        let id = self.worker_id();
        let registration = WorkerRegistration {
            previous_id: (!id.is_empty()).then_some(id),
            ..self.registration.clone()
        };
        let call = client.register_worker(registration.to_pb(weft_proto::PROTOCOL_VERSION));
        match tokio::time::timeout(CONTROL_TIMEOUT, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner().into()),
            Ok(Err(status)) => Err(Remote(status).into()),
            Err(_) => Err(RegisterError::Timeout(CONTROL_TIMEOUT)),
        }
    }

    /// One heartbeat and what its reply asks for; `None` when all went well, else what failed.
    /// A new registration may change the interval.
    async fn beat(&self, every: &mut Duration) -> Option<String> {
        let heartbeat = Heartbeat {
            worker_id: self.worker_id(),
            running: {
                // `running` first: an attempt enters `reporting` before it leaves `running`, so
                // read in this order it is in one of the two (or both: the scheduler dedups).
                let mut running: Vec<TaskId> = lock(&self.running).keys().cloned().collect();
                running.extend(lock(&self.reporting).iter().cloned());
                running
            },
            compiled_modules: self.executor.compiled_modules(),
            draining: self.draining.load(Ordering::Relaxed),
            progress: lock(&self.running)
                .iter()
                .map(|(id, r)| TaskProgress {
                    id: id.clone(),
                    records_in: r.progress.records_in.load(Ordering::Relaxed),
                    bytes_in: r.progress.bytes_in.load(Ordering::Relaxed),
                })
                .collect(),
        };
        let mut client = self.scheduler.clone();
        let call = client.heartbeat(heartbeat.to_pb(self.slots));
        let reply = match tokio::time::timeout(CONTROL_TIMEOUT, call).await {
            Ok(Ok(reply)) => HeartbeatReply::try_from(reply.into_inner()),
            Ok(Err(status)) => return Some(Remote(status).to_string()),
            Err(_) => return Some(RegisterError::Timeout(CONTROL_TIMEOUT).to_string()),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => return Some(format!("a malformed heartbeat reply: {e}")),
        };
        *lock(&self.last_heartbeat) = Some(Instant::now());
        for id in &reply.kill {
            self.kill(id);
        }
        if reply.reregister {
            let had_files = self.executor.jobs_with_files();
            match self.register().await {
                Ok(reply) => {
                    tracing::info!(old = %self.worker_id(), new = %reply.worker_id,
                        "registered again at the scheduler's request");
                    self.set_id(reply.worker_id);
                    self.forget_ended_jobs(&had_files, &reply.live_jobs);
                    self.open_session();
                    *every = heartbeat_interval(reply.heartbeat_interval);
                }
                Err(refused) => {
                    return Some(format!(
                        "registering again failed: {}",
                        weft_task::error_chain(&refused)
                    ));
                }
            }
        }
        None
    }

    /// Opens the session the scheduler watches for this registration (replacing the last one): a
    /// stream held open as long as the worker runs, so that the scheduler takes the worker as lost
    /// the moment its process dies, rather than a worker timeout later. Nothing is read from it;
    /// when it ends (the scheduler stopped) the heartbeats find out what to do.
    fn open_session(&self) {
        let mut client = self.scheduler.clone();
        let worker_id = self.worker_id();
        let session = self.runtime.spawn(async move {
            match client.session(pb::SessionRequest { worker_id }).await {
                Ok(reply) => {
                    let mut events = reply.into_inner();
                    while let Ok(Some(_)) = events.message().await {}
                }
                Err(status) => tracing::debug!(%status,
                    "no session with the scheduler: its heartbeats alone tell it this worker lives"),
            }
        });
        if let Some(old) = lock(&self.session).replace(session) {
            old.abort();
        }
    }

    /// Deletes the shuffle and spill files of the jobs of `had_files` (those with files here
    /// before the registration was sent) not in `live`: jobs that ended while the worker was out of
    /// reach (their release never came) or before it restarted. Only those: a job that started
    /// after the scheduler answered is not in `live`, and its first files may already be here.
    fn forget_ended_jobs(&self, had_files: &HashSet<String>, live: &[String]) {
        let ended: Vec<&String> = had_files.iter().filter(|j| !live.contains(j)).collect();
        for job in &ended {
            if let Err(e) = self.executor.release_job(job) {
                tracing::warn!(%job, error = %e, "cannot delete the files of a job that ended");
            }
        }
        if !ended.is_empty() {
            tracing::info!(
                jobs = ended.len(),
                "deleted the shuffle files of jobs that ended"
            );
        }
    }

    /// Asks a running attempt to stop (it does between batches); false if it is not running here.
    fn kill(&self, id: &TaskId) -> bool {
        lock(&self.running)
            .get(id)
            .map(|r| r.cancelled.store(true, Ordering::Relaxed))
            .is_some()
    }

    /// Once no attempt has run here for [`IDLE_TRIM_DELAY`], gives the allocator's free memory back
    /// to the system, once per idle spell. glibc keeps up to 32 MiB free at the top of each of its
    /// heaps (one per task thread, up to eight per core) for the next task's buffers
    /// ([`crate::tune_malloc`]); an idle worker of eight slots held ~135 MB of it after a
    /// shuffle-heavy job. In `weft run`, where workers share a process, one worker's idle spell
    /// trims the process's heaps: the busy ones fault back in what they need.
    fn trim_when_idle(self: &Arc<State>) {
        let idle =
            |state: &State| lock(&state.running).is_empty() && lock(&state.reporting).is_empty();
        if !idle(self) {
            return;
        }
        let launched = self.launched.load(Ordering::Relaxed);
        let state = self.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(IDLE_TRIM_DELAY).await;
            if state.launched.load(Ordering::Relaxed) != launched || !idle(&state) {
                return;
            }
            // Once per idle spell, however many attempts ended as it began.
            if state.trimmed_at.swap(launched, Ordering::Relaxed) == launched {
                return;
            }
            let released = tokio::task::spawn_blocking(crate::release_free_memory).await;
            tracing::debug!(
                ?released,
                "idle: free heap memory handed back to the system"
            );
            state.idle_trims.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Runs a task on this thread and reports its outcome.
    fn run_and_report(
        self: &Arc<State>,
        spec: TaskSpec,
        cancelled: Arc<AtomicBool>,
        progress: Arc<Progress>,
    ) {
        let remote = |block: &BlockLocation,
                      each: &mut dyn FnMut(Records) -> Result<(), TaskError>|
         -> Result<(), TaskError> {
            self.runtime.block_on(self.fetch(block, each))
        };
        let worker_id = self.registered_id();
        let run = self
            .executor
            .run_with_progress(&spec, &worker_id, &remote, &cancelled, &progress);
        let result = run
            .result
            .map(|mut r| {
                for b in &mut r.blocks {
                    b.worker_address = self.address.clone();
                }
                r
            })
            .map_err(|e: TaskError| TaskFailure {
                message: weft_task::error_chain(&e),
                guest_fault: e.is_guest_fault(),
                cancelled: matches!(e, TaskError::Cancelled),
                unreachable: e.unreachable_peer().map(str::to_owned),
            });
        lock(&self.reporting).insert(spec.id.clone());
        lock(&self.running).remove(&spec.id);
        let outcome = TaskOutcome {
            id: spec.id.clone(),
            worker_id: self.worker_id(),
            result,
            output: run.output,
            usage: run.usage,
        };
        let status = pb::TaskStatus::from(&outcome);
        let mut scheduler = self.scheduler.clone();
        // A lost report is recovered by the scheduler's heartbeat bookkeeping: the attempt is no
        // longer among the heartbeat's running ones.
        let _ = self
            .runtime
            .block_on(async move { scheduler.report_task(status).await });
        lock(&self.reporting).remove(&spec.id);
        self.trim_when_idle();
    }

    /// Streams a block from the worker that holds it, decoding batches as frames arrive and
    /// handing each to `each`: a block is never held whole.
    async fn fetch(
        &self,
        block: &BlockLocation,
        each: &mut dyn FnMut(Records) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let client = {
            let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.get(&block.worker_address).cloned()
        };
        let mut client = match client {
            Some(c) => c,
            None => {
                let c = connect_peer(&block.worker_address, &self.link, self.slots).await?;
                self.peers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(block.worker_address.clone(), c.clone());
                c
            }
        };
        fetch_block(
            &mut client,
            &block.worker_address,
            &block.map_task,
            block.partition,
            each,
        )
        .await
    }
}

/// Refuses every call that does not present `secret` (when there is one): a worker takes tasks
/// from its scheduler and serves shuffle blocks to its peers, no one else.
fn require_secret(secret: Option<&Secret>) -> impl Interceptor + Clone + use<> {
    let hash = secret.map(Secret::hash);
    move |request: Request<()>| {
        let Some(hash) = &hash else {
            return Ok(request);
        };
        match presented(request.metadata()) {
            Ok(Some(given)) if hash.matches(given) => Ok(request),
            _ => Err(Status::unauthenticated(
                "this worker serves only its own cluster: the cluster secret is required",
            )),
        }
    }
}

/// A client of the worker at `address` (`http://host:port`, or `https://`), for fetching its
/// shuffle blocks, over `link` (TLS, and the cluster secret), shared by up to `fetches` fetches at
/// once (this worker's slots: a reduce task fetches one block at a time). A fetch whose reader
/// stalls holds back only itself ([`Link::connect_bulk`]).
pub async fn connect_peer(
    address: &str,
    link: &Link,
    fetches: u32,
) -> Result<WorkerClient<AuthChannel>, TaskError> {
    let fail = |e| TaskError::Fetch {
        from: address.to_owned(),
        source: PeerError::Connect(e),
    };
    let channel = link
        .connect_bulk(address, CONTROL_TIMEOUT, fetches)
        .await
        .map_err(fail)?;
    Ok(WorkerClient::new(channel).max_decoding_message_size(64 << 20))
}

/// The size of the frames a worker streams a shuffle block in (`FetchShuffleBlock`).
pub const SHUFFLE_FRAME: usize = 1 << 20;

/// Streams the block of `map_task` for reduce `partition` from the worker at `address` through
/// `client` (`FetchShuffleBlock`), decoding batches as frames arrive and handing each to `each`: a
/// block is never held whole. What a reduce task does for each remote block; public so that the
/// benchmark measures this very path.
pub async fn fetch_block(
    client: &mut WorkerClient<AuthChannel>,
    address: &str,
    map_task: &TaskId,
    partition: u32,
    each: &mut dyn FnMut(Records) -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    let fail = |source: PeerError| TaskError::Fetch {
        from: address.to_owned(),
        source,
    };
    let rpc = |status| fail(Remote(status).into());
    let mut stream = client
        .fetch_shuffle_block(pb::FetchShuffleBlockRequest {
            map_task: Some(map_task.into()),
            reduce_partition: partition,
        })
        .await
        .map_err(rpc)?
        .into_inner();
    let mut decoder = BlockDecoder::default();
    while let Some(frame) = stream.message().await.map_err(rpc)? {
        for records in decoder
            .push_slice(&frame.arrow_ipc)
            .map_err(|e| fail(e.into()))?
        {
            each(records)?;
        }
    }
    decoder.finish().map_err(|e| fail(e.into()))
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
        let progress = Arc::new(Progress::default());
        {
            let mut running = lock(&self.0.running);
            if self.0.draining.load(Ordering::Relaxed) {
                return Ok(Response::new(
                    (&Launch::Refused("the worker is draining".into())).into(),
                ));
            }
            if running.len() >= self.0.slots as usize {
                return Ok(Response::new(
                    (&Launch::Refused("no free slot".into())).into(),
                ));
            }
            // The same attempt still here (a restarted scheduler, which cannot know every attempt
            // the last one launched, gave its number again): the old one is being killed and
            // reports first; two must never share an id, their files or their report.
            if running.contains_key(&spec.id) || lock(&self.0.reporting).contains(&spec.id) {
                return Ok(Response::new(
                    (&Launch::Refused(format!("attempt {} is still running here", spec.id))).into(),
                ));
            }
            running.insert(
                spec.id.clone(),
                Running {
                    cancelled: flag.clone(),
                    progress: progress.clone(),
                },
            );
            self.0.launched.fetch_add(1, Ordering::Relaxed);
        }
        let state = self.0.clone();
        std::thread::Builder::new()
            .name(format!("weft-task-{}-{}", spec.id.stage, spec.id.partition))
            .stack_size(TASK_THREAD_STACK)
            .spawn(move || state.run_and_report(spec, flag, progress))
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        Ok(Response::new((&Launch::Accepted).into()))
    }

    async fn kill_task(
        &self,
        request: Request<pb::TaskAttemptId>,
    ) -> Result<Response<pb::KillTaskReply>, Status> {
        let id = TaskId::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::KillTaskReply {
            killed: self.0.kill(&id),
        }))
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
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Status::not_found(format!("shuffle block of {task}: {e}")))?
            .into_std()
            .await;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut file = Some(file);
            while let Some(open) = file.take() {
                // Each frame is read on the blocking pool straight into its own buffer (tokio's
                // `fs::File` would read into a buffer of its own and copy from there); the task
                // gives the thread back between frames, so a reader that stops reading holds a
                // channel's worth of frames, not a thread.
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = Vec::with_capacity(SHUFFLE_FRAME);
                    let read = (&open).take(SHUFFLE_FRAME as u64).read_to_end(&mut buf);
                    (open, read.map(|_| buf))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|(open, read)| read.map(|buf| (open, buf)).map_err(|e| e.to_string()));
                let frame = match read {
                    Ok((_, buf)) if buf.is_empty() => break,
                    Ok((open, buf)) => {
                        file = Some(open);
                        Ok(pb::ShuffleFrame {
                            arrow_ipc: buf.into(),
                        })
                    }
                    Err(e) => Err(Status::internal(format!(
                        "reading the shuffle block of {task}: {e}"
                    ))),
                };
                if tx.send(frame).await.is_err() {
                    break;
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
        weft_task::convert::check_job_id(&job)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.0
            .executor
            .release_job(&job)
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
