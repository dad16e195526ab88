//! The scheduler's control service (`SchedulerControl`) and the state it shares with job runners:
//! registered workers, their slots (accounted here, for every job at once), what they hold
//! compiled, when they were last heard from, and where each job wants its task outcomes.
//!
//! Workers register (refused if they speak another protocol version), heartbeat and report task
//! outcomes here. A worker silent for longer than the timeout is dropped by [`ControlState::reap`],
//! and each task it was running is reported to its job as failed, so no job waits forever on a dead
//! machine. A heartbeat also reconciles: attempts the worker runs that no job wants are killed, and
//! attempts a job waits for that the worker no longer runs (a lost report) are failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use weft_proto::v1 as pb;
use weft_proto::v1::worker_client::WorkerClient;
use weft_worker::service::convert::{TaskFailure, TaskOutcome};
use weft_worker::task::{GuestOutput, TaskId};

use crate::jobs::now_ms;

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
    pub client: WorkerClient<Channel>,
    last_seen: Instant,
    /// Attempts the scheduler placed here and has not heard the end of, with their launch time.
    running: HashMap<TaskId, Instant>,
    /// Module ids the worker reported holding compiled.
    compiled: HashSet<String>,
}

impl WorkerEntry {
    pub fn free_slots(&self) -> u32 {
        self.slots.saturating_sub(self.running.len() as u32)
    }

    pub fn has_compiled(&self, module: &str) -> bool {
        self.compiled.contains(module)
    }
}

/// What `weft cluster workers` shows of a worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    pub worker_id: String,
    pub address: String,
    pub hostname: String,
    pub slots: u32,
    pub free_slots: u32,
    /// Running attempts, as `JOB stage S partition P attempt A`.
    pub running: Vec<String>,
    pub memory_bytes: u64,
    pub engine_hash: String,
    pub compiled_modules: Vec<String>,
    pub last_seen_ms_ago: u64,
    pub registered_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    workers: BTreeMap<String, WorkerEntry>,
    /// Where each running job wants its task outcomes.
    jobs: HashMap<String, mpsc::UnboundedSender<TaskOutcome>>,
}

/// What the control service shares with job runners.
#[derive(Debug)]
pub struct ControlState {
    inner: Mutex<Inner>,
    /// Signalled when a slot frees up or a worker registers: runners waiting for a slot retry.
    changed: Notify,
    next_worker: AtomicU32,
    heartbeat_interval: Duration,
    worker_timeout: Duration,
}

impl ControlState {
    /// Workers heartbeat every `heartbeat_interval` and are dropped after `worker_timeout` of
    /// silence.
    pub fn new(heartbeat_interval: Duration, worker_timeout: Duration) -> ControlState {
        ControlState {
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            next_worker: AtomicU32::new(1),
            heartbeat_interval,
            worker_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when a slot may have freed up or a worker joined.
    pub fn changed(&self) -> &Notify {
        &self.changed
    }

    pub fn worker_count(&self) -> usize {
        self.lock().workers.len()
    }

    /// A snapshot of every registered worker.
    pub fn workers(&self) -> Vec<WorkerEntry> {
        self.lock().workers.values().cloned().collect()
    }

    /// The client of worker `id`, if it is still registered.
    pub fn client(&self, id: &str) -> Option<WorkerClient<Channel>> {
        self.lock().workers.get(id).map(|w| w.client.clone())
    }

    /// What `weft cluster workers` shows.
    pub fn worker_infos(&self) -> Vec<WorkerInfo> {
        let inner = self.lock();
        inner
            .workers
            .values()
            .map(|w| {
                let mut running: Vec<String> = w.running.keys().map(ToString::to_string).collect();
                running.sort();
                let mut compiled_modules: Vec<String> = w.compiled.iter().cloned().collect();
                compiled_modules.sort();
                WorkerInfo {
                    worker_id: w.id.clone(),
                    address: w.address.clone(),
                    hostname: w.hostname.clone(),
                    slots: w.slots,
                    free_slots: w.free_slots(),
                    running,
                    memory_bytes: w.memory_bytes,
                    engine_hash: w.engine_hash.clone(),
                    compiled_modules,
                    last_seen_ms_ago: u64::try_from(w.last_seen.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                    registered_ms: w.registered_ms,
                }
            })
            .collect()
    }

    /// Takes a slot for `task` on the free worker `score` rates highest (`None`: not eligible),
    /// returning the worker's id and client; `None` when no eligible worker has a free slot.
    pub fn acquire(
        &self,
        task: &TaskId,
        score: impl Fn(&WorkerEntry) -> Option<i64>,
    ) -> Option<(String, WorkerClient<Channel>)> {
        let mut inner = self.lock();
        let best = inner
            .workers
            .values()
            .filter(|w| w.free_slots() > 0)
            .filter_map(|w| score(w).map(|s| (s, w.free_slots(), w.id.clone())))
            // Highest score, then most free slots (spreads load), then the lowest id (stable).
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)))?;
        let worker = inner.workers.get_mut(&best.2)?;
        worker.running.insert(task.clone(), Instant::now());
        Some((worker.id.clone(), worker.client.clone()))
    }

    /// Gives back `task`'s slot on `worker`. Returns whether the task was running there.
    pub fn release(&self, worker: &str, task: &TaskId) -> bool {
        let released = self
            .lock()
            .workers
            .get_mut(worker)
            .is_some_and(|w| w.running.remove(task).is_some());
        if released {
            self.changed.notify_waiters();
        }
        released
    }

    /// Starts routing outcomes of `job`'s tasks to the returned receiver.
    pub fn subscribe(&self, job: &str) -> mpsc::UnboundedReceiver<TaskOutcome> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().jobs.insert(job.to_owned(), tx);
        rx
    }

    pub fn unsubscribe(&self, job: &str) {
        self.lock().jobs.remove(job);
    }

    /// Sends `outcome` to its job, if the job still listens.
    fn route(inner: &Inner, outcome: TaskOutcome) {
        // A report for a job that is over (failed, cancelled) has nobody to go to: drop it.
        if let Some(tx) = inner.jobs.get(&outcome.id.job) {
            let _ = tx.send(outcome);
        }
    }

    /// Drops every worker not heard from within the timeout; each task it ran fails to its job.
    /// Returns the ids dropped.
    pub fn reap(&self) -> Vec<String> {
        let mut inner = self.lock();
        let dead: Vec<String> = inner
            .workers
            .values()
            .filter(|w| w.last_seen.elapsed() > self.worker_timeout)
            .map(|w| w.id.clone())
            .collect();
        for id in &dead {
            if let Some(w) = inner.workers.remove(id) {
                let why = format!(
                    "worker {} at {} was lost: no heartbeat for {} s",
                    w.id,
                    w.address,
                    self.worker_timeout.as_secs()
                );
                fail_all(&inner, &w, &why);
            }
        }
        if !dead.is_empty() {
            self.changed.notify_waiters();
        }
        dead
    }

    /// Silence after which a worker is dropped.
    pub fn worker_timeout(&self) -> Duration {
        self.worker_timeout
    }

    /// How often workers are told to heartbeat; the reaper runs at the same pace.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }
}

/// Reports every task running on `worker` as failed with `why`.
fn fail_all(inner: &Inner, worker: &WorkerEntry, why: &str) {
    for id in worker.running.keys() {
        ControlState::route(inner, lost(id.clone(), &worker.id, why.to_owned()));
    }
}

fn lost(id: TaskId, worker: &str, message: String) -> TaskOutcome {
    TaskOutcome {
        id,
        worker_id: worker.to_owned(),
        result: Err(TaskFailure {
            message,
            guest_fault: false,
            cancelled: false,
        }),
        output: GuestOutput::default(),
    }
}

/// The gRPC face of [`ControlState`].
#[derive(Debug)]
pub struct ControlService(pub std::sync::Arc<ControlState>);

#[tonic::async_trait]
impl pb::scheduler_control_server::SchedulerControl for ControlService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        let r = request.into_inner();
        if r.protocol_version != weft_proto::PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "the worker speaks protocol version {}, this scheduler version {}; run matching \
                 versions of weft",
                r.protocol_version,
                weft_proto::PROTOCOL_VERSION
            )));
        }
        let client = WorkerClient::connect(r.address.clone())
            .await
            .map_err(|e| Status::unavailable(format!("cannot reach {}: {e}", r.address)))?
            .max_decoding_message_size(64 << 20);
        let state = &self.0;
        let id = format!("w{}", state.next_worker.fetch_add(1, Ordering::Relaxed));
        {
            let mut inner = state.lock();
            // A worker that comes back on the same address is a new process: whatever the old
            // one ran is gone.
            let stale: Vec<String> = inner
                .workers
                .values()
                .filter(|w| w.address == r.address)
                .map(|w| w.id.clone())
                .collect();
            for old in stale {
                if let Some(w) = inner.workers.remove(&old) {
                    let why = format!("worker {} at {} restarted", w.id, w.address);
                    fail_all(&inner, &w, &why);
                }
            }
            inner.workers.insert(
                id.clone(),
                WorkerEntry {
                    id: id.clone(),
                    address: r.address,
                    hostname: r.hostname,
                    slots: r.slots.max(1),
                    memory_bytes: r.memory_bytes,
                    engine_hash: r.engine_hash,
                    registered_ms: now_ms(),
                    client,
                    last_seen: Instant::now(),
                    running: HashMap::new(),
                    compiled: HashSet::new(),
                },
            );
        }
        state.changed.notify_waiters();
        Ok(Response::new(pb::RegisterWorkerReply {
            worker_id: id,
            heartbeat_interval_ms: u64::try_from(state.heartbeat_interval.as_millis())
                .unwrap_or(1000),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        let r = request.into_inner();
        let mut reported = HashSet::new();
        for id in r.running {
            reported
                .insert(TaskId::try_from(id).map_err(|e| Status::invalid_argument(e.to_string()))?);
        }
        let state = &self.0;
        let mut inner = state.lock();
        let Some(worker) = inner.workers.get_mut(&r.worker_id) else {
            // Unknown: this scheduler restarted, or dropped the worker as dead.
            return Ok(Response::new(pb::HeartbeatReply {
                reregister: true,
                kill: Vec::new(),
            }));
        };
        worker.last_seen = Instant::now();
        worker.compiled = r.compiled_modules.into_iter().collect();
        // Running there but not wanted (its job is over): kill.
        let kill: Vec<pb::TaskAttemptId> = reported
            .iter()
            .filter(|id| !worker.running.contains_key(id))
            .map(pb::TaskAttemptId::from)
            .collect();
        // Wanted but not running there, long after its launch: its report was lost.
        let grace = state.heartbeat_interval * 3;
        let missing: Vec<TaskId> = worker
            .running
            .iter()
            .filter(|(id, launched)| !reported.contains(id) && launched.elapsed() > grace)
            .map(|(id, _)| id.clone())
            .collect();
        let worker_id = worker.id.clone();
        for id in &missing {
            worker.running.remove(id);
        }
        for id in missing {
            let why = format!("worker {worker_id} no longer runs {id}: its report was lost");
            ControlState::route(&inner, lost(id, &worker_id, why));
        }
        drop(inner);
        Ok(Response::new(pb::HeartbeatReply {
            reregister: false,
            kill,
        }))
    }

    async fn report_task(
        &self,
        request: Request<pb::TaskStatus>,
    ) -> Result<Response<pb::ReportTaskReply>, Status> {
        let outcome = TaskOutcome::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let state = &self.0;
        let mut inner = state.lock();
        let released = match inner.workers.get_mut(&outcome.worker_id) {
            Some(w) => {
                w.last_seen = Instant::now();
                w.running.remove(&outcome.id).is_some()
            }
            None => false,
        };
        // Only an attempt the scheduler still counts as running is news: anything else was
        // already failed (a lost worker, a lost report) or belongs to a job that is over.
        if released {
            ControlState::route(&inner, outcome);
        }
        drop(inner);
        if released {
            state.changed.notify_waiters();
        }
        Ok(Response::new(pb::ReportTaskReply {}))
    }
}
