//! The cluster's membership and slots, shared by the control service and every job runner:
//! registered workers, their slots (accounted here, for every job at once), what they hold
//! compiled, when they were last heard from, and where each job wants its task outcomes.
//!
//! Workers register, heartbeat and report task outcomes here (through the `SchedulerControl` gRPC
//! service, `service::control`, which converts the messages). A worker silent for longer than the
//! timeout is dropped by [`ControlState::reap`], and each task it was running is reported to its
//! job as failed, so no job waits forever on a dead machine. A heartbeat also reconciles: attempts
//! the worker runs that no job wants are killed, and attempts a job waits for that the worker no
//! longer runs (a lost report) are failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use weft_task::{
    GuestOutput, Heartbeat, HeartbeatReply, Registered, TaskFailure, TaskId, TaskOutcome,
    WorkerRegistration,
};

use super::placement;
use super::worker::{WorkerConnection, WorkerEntry};
use crate::jobs::now_ms;

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
    /// Finishing its tasks and serving its shuffle blocks before it stops: it takes no new task.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Debug, Default)]
struct Inner {
    workers: BTreeMap<String, WorkerEntry>,
    /// Where each running job wants its task outcomes.
    jobs: HashMap<String, mpsc::UnboundedSender<TaskOutcome>>,
    /// The tenant of each running job, for fair share.
    tenants: HashMap<String, String>,
    /// Jobs whose last try for a slot found none (or was held back): they wait for one, on one of
    /// the workers listed (those their task could run on).
    waiting: HashMap<String, HashSet<String>>,
    /// Each tenant's weight and slot cap; weight 1 and no cap when not set.
    shares: HashMap<String, SlotShare>,
}

/// A tenant's part in the sharing of slots (the tenants file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotShare {
    /// Its weight against other tenants competing for slots (at least 1).
    pub weight: u32,
    /// The most slots its tasks may hold at once, however many are free; `None`: no cap.
    pub max_slots: Option<u32>,
}

impl Default for SlotShare {
    fn default() -> Self {
        SlotShare {
            weight: 1,
            max_slots: None,
        }
    }
}

impl Inner {
    /// The tasks running now, by tenant: one pass over the workers.
    fn running_by_tenant(&self) -> HashMap<&str, u32> {
        let mut running: HashMap<&str, u32> = HashMap::new();
        for task in self.workers.values().flat_map(|w| w.running.keys()) {
            if let Some(tenant) = self.tenants.get(&task.job) {
                *running.entry(tenant.as_str()).or_default() += 1;
            }
        }
        running
    }

    fn slot_share(&self, tenant: &str) -> SlotShare {
        self.shares.get(tenant).copied().unwrap_or_default()
    }

    /// Whether `tenant` may take one more slot now (on worker `slot`, if one is free): `None` if so;
    /// otherwise whether it must wait its turn (`Some(true)`: another tenant waiting for a slot on
    /// that worker holds a smaller share) or is at its own cap (`Some(false)`, and then it does not
    /// wait in line: it holds no one back).
    ///
    /// A tenant's share is its running tasks over its weight; while another tenant waiting for a
    /// slot holds a smaller share, that one gets the next free slot (weighted fair share, as
    /// Spark's FAIR pools or YARN's fair scheduler give slots). A tenant alone, or ahead of no
    /// one, takes any free slot up to its cap.
    fn held_back(&self, tenant: &str, slot: Option<&str>) -> Option<bool> {
        let running = self.running_by_tenant();
        let count = |t: &str| running.get(t).copied().unwrap_or(0);
        let share = |t: &str| f64::from(count(t)) / f64::from(self.slot_share(t).weight.max(1));
        if self
            .slot_share(tenant)
            .max_slots
            .is_some_and(|cap| count(tenant) >= cap)
        {
            return Some(false);
        }
        let mine = share(tenant);
        // A tenant waiting only for workers this slot is not on cannot take it: it holds no one
        // back from it.
        self.waiting
            .iter()
            .filter(|(_, usable)| slot.is_none_or(|slot| usable.contains(slot)))
            .filter_map(|(job, _)| self.tenants.get(job))
            .filter(|other| *other != tenant)
            .any(|other| share(other) < mine)
            .then_some(true)
    }
}

/// What the control service shares with job runners.
#[derive(Debug)]
pub struct ControlState {
    inner: Mutex<Inner>,
    /// Signalled when a slot frees up or a worker registers: runners waiting for a slot retry.
    changed: Notify,
    next_worker: AtomicU32,
    /// Numbers registrations ([`WorkerEntry::registration`]).
    registrations: AtomicU64,
    /// Workers dropped so far (lost, reaped, replaced by a restarted process): a runner looks for
    /// output gone with them only when it changed.
    losses: AtomicU64,
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
            registrations: AtomicU64::new(1),
            losses: AtomicU64::new(0),
            heartbeat_interval,
            worker_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands out new worker ids from `wN` on at least: ids below it are kept for the workers
    /// that had them before a scheduler restart, which register again with them.
    pub fn reserve_worker_ids(&self, n: u32) {
        self.next_worker.fetch_max(n, Ordering::Relaxed);
    }

    /// Resolves when a slot may have freed up or a worker joined.
    pub fn changed(&self) -> &Notify {
        &self.changed
    }

    pub fn worker_count(&self) -> usize {
        self.lock().workers.len()
    }

    /// The registered workers not in `known`, with their connections: what a job asks about its
    /// input when it sees a worker for the first time. Cheap when there is none (it runs at every
    /// turn of a stage's loop), unlike a [`ControlState::workers`] snapshot.
    pub fn workers_not_in(
        &self,
        known: &HashSet<String>,
    ) -> Vec<(String, Arc<dyn WorkerConnection>)> {
        self.lock()
            .workers
            .values()
            .filter(|w| !known.contains(&w.id))
            .map(|w| (w.id.clone(), w.conn.clone()))
            .collect()
    }

    /// The task slots of every registered worker together: how many tasks the cluster runs at
    /// once.
    pub fn total_slots(&self) -> u32 {
        self.lock()
            .workers
            .values()
            .fold(0u32, |n, w| n.saturating_add(w.slots))
    }

    /// How many workers were dropped so far: changes whenever shuffle output may have been lost.
    pub fn losses(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    /// The ids of the registered workers.
    pub fn live_workers(&self) -> HashSet<String> {
        self.lock().workers.keys().cloned().collect()
    }

    /// A snapshot of every registered worker.
    pub fn workers(&self) -> Vec<WorkerEntry> {
        self.lock().workers.values().cloned().collect()
    }

    /// The connection to worker `id`, if it is still registered.
    pub fn connection(&self, id: &str) -> Option<Arc<dyn WorkerConnection>> {
        self.lock().workers.get(id).map(|w| w.conn.clone())
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
                    draining: w.draining,
                }
            })
            .collect()
    }

    /// Takes a slot for `task` on the free worker `score` rates highest (`None`: not eligible;
    /// see [`placement::choose`]), returning the worker's id and connection; `None` when no
    /// eligible worker has a free slot.
    ///
    /// Slots are shared among tenants by weight: while another tenant with a smaller share of
    /// the running tasks (over its weight) waits for a slot, this one is held back (`None`) and
    /// the other gets the slot when its runner tries. A tenant at its slot cap gets none.
    pub fn acquire(
        &self,
        task: &TaskId,
        score: impl Fn(&WorkerEntry) -> Option<i64>,
    ) -> Option<(String, Arc<dyn WorkerConnection>)> {
        let mut inner = self.lock();
        let free = placement::choose(inner.workers.values(), &score).map(|w| w.id.clone());
        let held_back = inner
            .tenants
            .get(&task.job)
            .and_then(|tenant| inner.held_back(tenant, free.as_deref()));
        if held_back == Some(false) {
            // At its tenant's cap: it waits for one of its own tasks to end, not in line.
            inner.waiting.remove(&task.job);
            return None;
        }
        let Some(best) = free.filter(|_| held_back.is_none()) else {
            if inner.tenants.contains_key(&task.job) {
                let usable = inner
                    .workers
                    .values()
                    .filter(|w| score(w).is_some())
                    .map(|w| w.id.clone())
                    .collect();
                inner.waiting.insert(task.job.clone(), usable);
            }
            return None;
        };
        inner.waiting.remove(&task.job);
        let worker = inner.workers.get_mut(&best)?;
        worker.running.insert(task.clone(), Instant::now());
        Some((worker.id.clone(), worker.conn.clone()))
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

    /// Starts routing outcomes of `job`'s tasks to the returned receiver; `tenant` owns the job
    /// (its tasks count in the tenant's share of the slots).
    pub fn subscribe(&self, job: &str, tenant: &str) -> mpsc::UnboundedReceiver<TaskOutcome> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        inner.jobs.insert(job.to_owned(), tx);
        inner.tenants.insert(job.to_owned(), tenant.to_owned());
        rx
    }

    pub fn unsubscribe(&self, job: &str) {
        let mut inner = self.lock();
        inner.jobs.remove(job);
        inner.tenants.remove(job);
        inner.waiting.remove(job);
        drop(inner);
        // A job that stopped waiting may have held others back.
        self.changed.notify_waiters();
    }

    /// Sets each tenant's weight and cap in the share of slots (a tenant not named weighs 1 and
    /// has no cap).
    pub fn set_shares(&self, shares: HashMap<String, SlotShare>) {
        self.lock().shares = shares;
    }

    /// Sends `outcome` to its job, if the job still listens.
    fn route(inner: &Inner, outcome: TaskOutcome) {
        // A report for a job that is over (failed, cancelled) has nobody to go to: drop it.
        if let Some(tx) = inner.jobs.get(&outcome.id.job) {
            let _ = tx.send(outcome);
        }
    }

    /// Drops worker `id` as lost, for `why`; each task it was running fails to its job. Returns
    /// whether it was registered.
    pub fn lose(&self, id: &str, why: &str) -> bool {
        self.lose_if(id, why, |_| true)
    }

    /// Drops worker `id` as lost, for `why`, if `which` accepts its entry.
    fn lose_if(&self, id: &str, why: &str, which: impl Fn(&WorkerEntry) -> bool) -> bool {
        let mut inner = self.lock();
        if !inner.workers.get(id).is_some_and(which) {
            return false;
        }
        let Some(worker) = inner.workers.remove(id) else {
            return false;
        };
        self.losses.fetch_add(1, Ordering::Relaxed);
        fail_all(&inner, &worker, why);
        drop(inner);
        self.changed.notify_waiters();
        true
    }

    /// The registration of worker `id` as it is now, to tie its session to, and its address;
    /// `None` if it is not registered.
    pub fn registration(&self, id: &str) -> Option<(u64, String)> {
        self.lock()
            .workers
            .get(id)
            .map(|w| (w.registration, w.address.clone()))
    }

    /// Drops worker `id` as lost, for `why`, if it is still the registration `registration` (a
    /// session of an earlier one ending says nothing of a worker registered again since).
    /// Returns whether it was dropped.
    pub fn lose_registration(&self, id: &str, registration: u64, why: &str) -> bool {
        self.lose_if(id, why, |w| w.registration == registration)
    }

    /// The id of the registered worker at `address`, and its connection.
    pub fn worker_at(&self, address: &str) -> Option<(String, Arc<dyn WorkerConnection>)> {
        self.lock()
            .workers
            .values()
            .find(|w| w.address == address)
            .map(|w| (w.id.clone(), w.conn.clone()))
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
                self.losses.fetch_add(1, Ordering::Relaxed);
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

    /// Registers a worker reached through `conn`, and returns its id and heartbeat interval. A
    /// worker that comes back on an address already registered is a new process: whatever the old
    /// one ran is failed.
    pub fn register(
        &self,
        registration: WorkerRegistration,
        conn: Arc<dyn WorkerConnection>,
    ) -> Registered {
        let id;
        {
            let mut inner = self.lock();
            let stale: Vec<String> = inner
                .workers
                .values()
                .filter(|w| w.address == registration.address)
                .map(|w| w.id.clone())
                .collect();
            for old in stale {
                if let Some(w) = inner.workers.remove(&old) {
                    self.losses.fetch_add(1, Ordering::Relaxed);
                    let why = format!("worker {} at {} restarted", w.id, w.address);
                    fail_all(&inner, &w, &why);
                }
            }
            // A worker registering again keeps its id (across a scheduler restart, say), unless
            // another worker holds it now; new ids start past every id handed back.
            let previous = registration.previous_id.as_deref().and_then(|prev| {
                let n: u32 = prev.strip_prefix('w')?.parse().ok()?;
                (format!("w{n}") == prev && !inner.workers.contains_key(prev)).then_some(n)
            });
            id = match previous {
                Some(n) => {
                    self.next_worker
                        .fetch_max(n.saturating_add(1), Ordering::Relaxed);
                    format!("w{n}")
                }
                None => format!("w{}", self.next_worker.fetch_add(1, Ordering::Relaxed)),
            };
            inner.workers.insert(
                id.clone(),
                WorkerEntry {
                    id: id.clone(),
                    address: registration.address,
                    hostname: registration.hostname,
                    slots: registration.slots.max(1),
                    memory_bytes: registration.memory_bytes,
                    engine_hash: registration.engine_hash,
                    registered_ms: now_ms(),
                    conn,
                    last_seen: Instant::now(),
                    running: HashMap::new(),
                    compiled: HashSet::new(),
                    progress: HashMap::new(),
                    draining: false,
                    registration: self.registrations.fetch_add(1, Ordering::Relaxed),
                },
            );
        }
        let live_jobs = self.lock().jobs.keys().cloned().collect();
        self.changed.notify_waiters();
        Registered {
            worker_id: id,
            heartbeat_interval: self.heartbeat_interval,
            live_jobs,
        }
    }

    /// Takes a worker's heartbeat: it is alive, holds these modules compiled, and runs these
    /// attempts. Attempts it runs that no job wants are to be killed; attempts placed on it that
    /// it no longer runs, long after their launch, lost their report and fail to their jobs. An
    /// unknown worker (this scheduler restarted, or dropped it as dead) is told to register again.
    pub fn heartbeat(&self, heartbeat: Heartbeat) -> HeartbeatReply {
        let reported: HashSet<TaskId> = heartbeat.running.into_iter().collect();
        let mut inner = self.lock();
        let Some(worker) = inner.workers.get_mut(&heartbeat.worker_id) else {
            return HeartbeatReply {
                reregister: true,
                kill: Vec::new(),
            };
        };
        worker.last_seen = Instant::now();
        if heartbeat.draining && !worker.draining {
            tracing::info!(worker = %worker.id, "the worker is draining: no new task goes there");
        }
        worker.draining = heartbeat.draining;
        worker.compiled = heartbeat.compiled_modules.into_iter().collect();
        worker.progress = heartbeat
            .progress
            .into_iter()
            .map(|p| (p.id, (p.records_in, p.bytes_in)))
            .collect();
        let kill: Vec<TaskId> = reported
            .iter()
            .filter(|id| !worker.running.contains_key(id))
            .cloned()
            .collect();
        let grace = self.heartbeat_interval * 3;
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
        let freed = !missing.is_empty();
        for id in missing {
            let why = format!("worker {worker_id} no longer runs {id}: its report was lost");
            ControlState::route(&inner, lost(id, &worker_id, why));
        }
        drop(inner);
        if freed {
            self.changed.notify_waiters();
        }
        HeartbeatReply {
            reregister: false,
            kill,
        }
    }

    /// Takes a task attempt's report. Only an attempt the scheduler still counts as running is
    /// news: anything else was already failed (a lost worker, a lost report) or belongs to a job
    /// that is over, and is dropped.
    pub fn report(&self, outcome: TaskOutcome) {
        let mut inner = self.lock();
        let released = match inner.workers.get_mut(&outcome.worker_id) {
            Some(w) => {
                w.last_seen = Instant::now();
                w.running.remove(&outcome.id).is_some()
            }
            None => false,
        };
        if released {
            ControlState::route(&inner, outcome);
        }
        drop(inner);
        if released {
            self.changed.notify_waiters();
        }
    }

    /// What the running attempts of `job`'s stage `stage` have read so far, `(records, bytes)`, as
    /// their workers last reported.
    pub fn stage_progress(&self, job: &str, stage: u32) -> (u64, u64) {
        let inner = self.lock();
        let mut total = (0, 0);
        for worker in inner.workers.values() {
            for id in worker.running.keys() {
                if id.job == job
                    && id.stage == stage
                    && let Some((records, bytes)) = worker.progress.get(id)
                {
                    total.0 += records;
                    total.1 += bytes;
                }
            }
        }
        total
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
            unreachable: None,
        }),
        output: GuestOutput::default(),
        usage: Default::default(),
    }
}
