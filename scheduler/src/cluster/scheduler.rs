//! [`Scheduler`]: the job side of the scheduler process. It accepts jobs — every submission, from
//! `weft run`, `weft job submit` or a cluster client, through the one preparation path of
//! [`job::prepare`](crate::job::prepare) — runs each in a task of its own on the shared worker
//! pool, and answers status, watch, list, cancel and logs. Every job and task attempt is kept in
//! the [`JobStore`]. A scheduler that starts on a store holding jobs that never ended picks them up
//! ([`SchedulerConfig::resume`]): the tasks whose output is still there (shuffle blocks on workers
//! that register again, parts in the job's staging directory) are not run again; without `resume`
//! (or when a job cannot be picked up) they are marked failed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_io::{Access, DataRoots};
use weft_task::{Limit, LimitError, TaskLimits};

use super::control::{ControlState, SlotShare, WorkerInfo};
use super::runner::{self, JobRun};
use super::tasks::initial_status;
use super::{JobError, JobReport};
use crate::access::JobCaps;
use crate::job::{self, AutoSplit, Location, Plan, PrepareError, SplitSource, Submission};
use crate::jobs::store::JobRecord;
use crate::jobs::{
    JobState, JobStatus, JobStore, StoreError, TaskLog, TaskRef, TaskReport, now_ms,
};
use crate::{Registry, Tenant};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often workers heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a worker is considered dead and its tasks failed.
    pub worker_timeout: Duration,
    /// The limits of a task whose job's `[limits]` does not set them (each at most `ceiling`'s).
    pub limits: TaskLimits,
    /// The most a job may ask for (`weft scheduler --limit KEY=VALUE`).
    pub ceiling: TaskLimits,
    /// Tenants' own ceilings (the tenants file), each under `ceiling`.
    pub tenant_limits: HashMap<Tenant, Vec<(Limit, u64)>>,
    /// Where each tenant's jobs may read and write (the tenants file); `None`: anywhere the
    /// scheduler and workers can (a cluster without tenants). A tenant missing from a map may
    /// touch nothing.
    pub data_roots: Option<HashMap<Tenant, DataRoots>>,
    /// Each tenant's weight and cap in the share of slots (the tenants file); weight 1 and no
    /// cap when not named.
    pub slot_shares: HashMap<String, SlotShare>,
    /// Each tenant's caps on running and queued jobs (the tenants file).
    pub job_caps: HashMap<Tenant, JobCaps>,
    /// How many times a task failing by its own code (a trap, a guest error, a limit) runs
    /// before its job fails, unless the job file says (`[retry] max_attempts`). 1: guests are
    /// deterministic, so the same input fails the same way again. Failures of the infrastructure
    /// are retried regardless.
    pub max_attempts: u32,
    /// Whether a straggling task gets a second attempt on another worker, unless the job file
    /// says (`[retry] speculation`). Off by default: a copy costs a slot.
    pub speculation: bool,
    /// The task slots automatic split sizes are chosen for. `None`: those of the workers
    /// registered when the job is submitted (1 if none is). A local cluster, which submits its job
    /// before its workers start, says how many slots they will have.
    pub split_slots: Option<u32>,
    /// Whether jobs the store has as queued or running, when the scheduler starts, are picked up
    /// (a cluster scheduler restarting) rather than marked failed (a `weft run` whose process, and
    /// workers, died with them).
    pub resume: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            heartbeat_interval: Duration::from_secs(1),
            worker_timeout: Duration::from_secs(10),
            limits: TaskLimits::default(),
            ceiling: TaskLimits::most(),
            tenant_limits: HashMap::new(),
            data_roots: None,
            slot_shares: HashMap::new(),
            job_caps: HashMap::new(),
            max_attempts: 1,
            speculation: false,
            split_slots: None,
            resume: false,
        }
    }
}

/// Why a submission was refused. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The job file, the input or the output is wrong.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The job's `[limits]` ask for more than its ceiling, or less than a task needs.
    #[error("{job_file}{}: {source}", at.map(|at| format!(":{at}")).unwrap_or_default())]
    Limits {
        job_file: String,
        at: Option<Location>,
        #[source]
        source: LimitError,
    },
    /// An input or the output lies outside the tenant's data roots; `field` is where the path came
    /// from.
    #[error("{field}")]
    Roots {
        field: String,
        #[source]
        source: weft_io::Error,
    },
    /// The tenant's queue of waiting jobs is full.
    #[error(
        "tenant `{tenant}` has {queued} jobs waiting, the most it may (max_queued_jobs); submit \
         again once one has started"
    )]
    QueueFull { tenant: String, queued: u32 },
    /// No registered worker can read the input; `field` is where the pattern came from.
    #[error("{field}: {detail}")]
    Unreadable { field: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `1st`, `2nd`, `3rd`, `4th`…
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Refuses a job whose input files or output lie outside `roots`: the inputs must be readable,
/// the output strictly inside a write root.
fn check_roots(roots: &DataRoots, plan: &Plan, submission: &Submission) -> Result<(), SubmitError> {
    for input in plan.input_paths() {
        roots
            .check(Path::new(&input), Access::Read)
            .map_err(|source| SubmitError::Roots {
                field: submission.input_field(),
                source,
            })?;
    }
    if let Some(output) = plan.output_dir() {
        roots
            .check(output, Access::Write)
            .map_err(|source| SubmitError::Roots {
                field: submission.output_field(),
                source,
            })?;
    }
    Ok(())
}

/// Why a restarted scheduler could not pick a job up (it is marked failed, saying so).
#[derive(Debug, thiserror::Error)]
enum PickUpError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job no longer plans to what ran: its input or its modules changed.
    #[error("{0}")]
    Changed(String),
}

/// Why a job could not be looked up or acted on.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no job {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job this scheduler process runs (or ran).
#[derive(Debug)]
struct LiveJob {
    tenant: String,
    status: watch::Receiver<JobStatus>,
    cancel: watch::Sender<bool>,
    /// The runner; taken by the one caller that wants the full [`JobReport`] or [`JobError`].
    outcome: Mutex<Option<JoinHandle<Result<JobReport, JobError>>>>,
    /// When the job was first seen over, by [`Scheduler::evict_finished`].
    finished: Mutex<Option<Instant>>,
}

/// How long a job over stays in memory for [`Scheduler::join`] (its status is in the store).
const KEEP_FINISHED: Duration = Duration::from_secs(60);

/// The job side of a scheduler.
#[derive(Debug)]
pub struct Scheduler {
    registry: Arc<Registry>,
    store: Arc<dyn JobStore>,
    control: Arc<ControlState>,
    config: SchedulerConfig,
    live: Mutex<HashMap<String, Arc<LiveJob>>>,
    /// Per tenant with a cap on running jobs, the places its jobs take while they run.
    gates: Mutex<HashMap<Tenant, Arc<tokio::sync::Semaphore>>>,
}

impl Scheduler {
    /// A scheduler over `registry` and `store`. Jobs the store has as queued or running are picked
    /// up with `config.resume` (their runs start at once: call this within a Tokio runtime, before
    /// workers can register), and are otherwise marked failed: whatever ran them is gone.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn JobStore>,
        config: SchedulerConfig,
    ) -> Result<Arc<Scheduler>, StoreError> {
        let control = Arc::new(ControlState::new(
            config.heartbeat_interval,
            config.worker_timeout,
        ));
        control.set_shares(config.slot_shares.clone());
        let scheduler = Arc::new(Scheduler {
            registry,
            store,
            control,
            config,
            live: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        });
        for mut record in scheduler.store.all()? {
            if record.status.state.is_final() {
                continue;
            }
            let why = if scheduler.config.resume {
                let job = record.status.job_id.clone();
                match scheduler.pick_up(record.clone()) {
                    Ok(()) => {
                        tracing::info!(%job, "picked up the job the scheduler ran before it stopped");
                        continue;
                    }
                    Err(e) => format!(
                        "interrupted: the scheduler restarted and could not pick the job up ({}); \
                         submit it again",
                        weft_task::error_chain(&e)
                    ),
                }
            } else {
                "interrupted: the scheduler stopped while the job ran; submit it again".into()
            };
            record.status.state = JobState::Failed;
            record.status.error = Some(why);
            record.status.finished_ms = Some(now_ms());
            for stage in &mut record.status.stages {
                stage.tasks_running = 0;
            }
            scheduler.store.put(&record)?;
        }
        Ok(scheduler)
    }

    /// Starts the run of a job an earlier scheduler process accepted and did not finish: planned
    /// again from its submission (refused if its input no longer plans to the same tasks), with
    /// what that process recorded of its tasks.
    fn pick_up(&self, mut record: JobRecord) -> Result<(), PickUpError> {
        let tenant = Tenant::new(&record.status.tenant)
            .map_err(|e| PickUpError::Changed(format!("its tenant: {e}")))?;
        // The splits the job started with, not sizes chosen for the workers of this process.
        let kept = record.split_size.unwrap_or(job::MAX_SPLIT_SIZE);
        let plan = job::prepare(
            &self.registry,
            &tenant,
            &record.submission,
            AutoSplit::Kept(kept),
        )?;
        let status = &record.status;
        let same_tasks = plan.stages.len() == status.stages.len()
            && plan
                .stages
                .iter()
                .zip(&status.stages)
                .all(|(planned, was)| {
                    let bytes = match &planned.input {
                        job::StageInput::Splits { splits, .. } => {
                            Some(splits.iter().map(|s| s.length).sum::<u64>())
                        }
                        job::StageInput::Shuffle { .. } => None,
                    };
                    planned.id == was.stage
                        && planned.tasks == was.tasks_total
                        && (was.bytes_total == 0 || bytes.is_none_or(|b| b == was.bytes_total))
                });
        if !same_tasks {
            return Err(PickUpError::Changed(format!(
                "{}: the job's input changed while the scheduler was down",
                record.submission.input_field()
            )));
        }
        // The same modules, too: a module registered again since (a step naming no version now
        // resolves to the new one) must not mix its output with the old one's.
        let planned = initial_status(&status.job_id, &tenant, &plan);
        if let Some((now, was)) = planned
            .stages
            .iter()
            .zip(&status.stages)
            .find(|(now, was)| now.steps != was.steps)
        {
            return Err(PickUpError::Changed(format!(
                "{}: stage {}'s steps now resolve to {} (they were {})",
                record.submission.job_file,
                was.stage,
                now.steps.join(", "),
                was.steps.join(", ")
            )));
        }
        let limits = self.limits_of(&tenant, &plan, &record.submission)?;
        let roots = self.roots_of(&tenant);
        let tasks = self.store.tasks(&record.status.job_id)?;
        // Worker ids the recorded attempts name are kept for the workers that had them: a new
        // worker registering first must not take one (its blocks are not there).
        let most = tasks
            .iter()
            .filter_map(|(_, r)| r.worker_id.strip_prefix('w')?.parse::<u32>().ok())
            .max();
        if let Some(most) = most {
            self.control.reserve_worker_ids(most.saturating_add(1));
        }
        let resume = record.staging.clone().map(|staging| runner::Resume {
            staging_dir: staging.into(),
            tasks,
        });
        for stage in &mut record.status.stages {
            stage.tasks_running = 0;
        }
        self.launch(&tenant, record, plan, limits, roots, resume);
        Ok(())
    }

    /// The task slots a job submitted now runs on, for sizing its splits
    /// ([`SchedulerConfig::split_slots`]).
    pub fn split_slots(&self) -> u32 {
        self.config
            .split_slots
            .unwrap_or_else(|| self.control.total_slots())
            .max(1)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn control(&self) -> &Arc<ControlState> {
        &self.control
    }

    /// Checks a submitted job — its file, steps, input and output, and that some registered
    /// worker can read its input — and starts it. Returns the job id.
    pub async fn submit(
        self: &Arc<Self>,
        tenant: &Tenant,
        submission: Submission,
    ) -> Result<String, SubmitError> {
        let plan = job::prepare(
            &self.registry,
            tenant,
            &submission,
            AutoSplit::Slots(self.split_slots()),
        )?;
        let caps = self
            .config
            .job_caps
            .get(tenant)
            .copied()
            .unwrap_or_default();
        if let Some(most) = caps.queued {
            let queued = self.queued_jobs(tenant).len() as u32;
            if queued >= most {
                return Err(SubmitError::QueueFull {
                    tenant: tenant.to_string(),
                    queued,
                });
            }
        }
        let limits = self.limits_of(tenant, &plan, &submission)?;
        let roots = self.roots_of(tenant);
        if let Some(roots) = &roots {
            check_roots(roots, &plan, &submission)?;
        }
        job::check_output(&plan, &submission)?;
        // Refuse now, rather than at run time, an input that no registered worker can read.
        if self.control.worker_count() > 0 {
            let mut readers = runner::Readers::new(plan.input_paths());
            readers.ask_new_workers(&self.control).await;
            if let Some(JobError::Input(detail)) = readers.none_can_read() {
                return Err(SubmitError::Unreadable {
                    field: submission.input_field(),
                    detail,
                });
            }
        }
        self.start(tenant, plan, submission, limits, roots)
    }

    /// The gate of `tenant`'s running jobs, when it has a cap: a job holds a place while it runs.
    fn gate(&self, tenant: &Tenant) -> Option<Arc<tokio::sync::Semaphore>> {
        let most = self.config.job_caps.get(tenant)?.running?;
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            gates
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(most as usize)))
                .clone(),
        )
    }

    /// `tenant`'s live jobs not started yet, oldest first, as (submitted, job id).
    fn queued_jobs(&self, tenant: &Tenant) -> Vec<(u64, String)> {
        let mut queued: Vec<(u64, String)> = self
            .live_jobs()
            .iter()
            .filter(|(_, j)| j.tenant == tenant.as_str())
            .map(|(id, j)| (j.status.borrow().clone(), id))
            .filter(|(s, _)| s.state == JobState::Queued)
            .map(|(s, id)| (s.submitted_ms, id.clone()))
            .collect();
        // By submission, then by the job number in `NAME-N` (`wc-9` before `wc-10`).
        queued.sort_by_key(|(submitted, id)| (*submitted, id.len(), id.clone()));
        queued
    }

    /// `status`, saying why a queued job waits and its place, if its tenant's cap holds it.
    fn explained(&self, mut status: JobStatus) -> JobStatus {
        if status.state != JobState::Queued {
            return status;
        }
        let Ok(tenant) = Tenant::new(&status.tenant) else {
            return status;
        };
        let Some(most) = self.config.job_caps.get(&tenant).and_then(|c| c.running) else {
            return status;
        };
        let queued = self.queued_jobs(&tenant);
        if let Some(place) = queued.iter().position(|(_, id)| *id == status.job_id) {
            status.waiting = Some(format!(
                "tenant `{tenant}` may run {most} job{} at once (max_running_jobs): {} of {} \
                 waiting",
                if most == 1 { "" } else { "s" },
                ordinal(place + 1),
                queued.len()
            ));
        }
        status
    }

    /// The data roots of `tenant`'s jobs, when the cluster restricts them.
    fn roots_of(&self, tenant: &Tenant) -> Option<DataRoots> {
        let roots = self.config.data_roots.as_ref()?;
        Some(roots.get(tenant).cloned().unwrap_or_default())
    }

    /// The limits the job's tasks run under: its `[limits]` over the defaults, within the
    /// cluster's ceiling and its tenant's.
    fn limits_of(
        &self,
        tenant: &Tenant,
        plan: &Plan,
        submission: &Submission,
    ) -> Result<TaskLimits, SubmitError> {
        let requested: Vec<(Limit, u64)> = plan.limits.iter().map(|l| (l.limit, l.value)).collect();
        let cluster = &self.config.ceiling;
        let mut own = *cluster;
        for &(limit, value) in self.config.tenant_limits.get(tenant).into_iter().flatten() {
            own.set(limit, value.min(cluster.get(limit)));
        }
        let defaults = &self.config.limits;
        defaults
            .resolve(&requested, cluster, "the cluster")
            .and_then(|_| defaults.resolve(&requested, &own, &format!("tenant `{tenant}`")))
            .map_err(|source| {
                let limit = match &source {
                    LimitError::AboveCeiling { limit, .. }
                    | LimitError::BelowFloor { limit, .. }
                    | LimitError::Invalid { limit, .. } => *limit,
                };
                let at = plan.limits.iter().find(|l| l.limit == limit).map(|l| l.at);
                SubmitError::Limits {
                    job_file: submission.job_file.clone(),
                    at,
                    source,
                }
            })
    }

    fn start(
        self: &Arc<Self>,
        tenant: &Tenant,
        plan: Plan,
        submission: Submission,
        limits: TaskLimits,
        roots: Option<DataRoots>,
    ) -> Result<String, SubmitError> {
        let job_id = self.store.new_job_id(&plan.job_name)?;
        let status = initial_status(&job_id, tenant, &plan);
        let split_size = match plan.split_source {
            SplitSource::JobFile => None,
            SplitSource::Slots(_) | SplitSource::Kept => Some(plan.split_size),
        };
        let record = JobRecord {
            status,
            submission,
            staging: None,
            split_size,
        };
        self.store.put(&record)?;
        self.evict_finished();
        self.launch(tenant, record, plan, limits, roots, None);
        Ok(job_id)
    }

    /// Starts the run of the job of `record`.
    fn launch(
        &self,
        tenant: &Tenant,
        record: JobRecord,
        plan: Plan,
        limits: TaskLimits,
        roots: Option<DataRoots>,
        resume: Option<runner::Resume>,
    ) {
        let job_id = record.status.job_id.clone();
        let (status_tx, status_rx) = watch::channel(record.status.clone());
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let run = JobRun {
            control: self.control.clone(),
            store: self.store.clone(),
            overwrite: record.submission.overwrite,
            record,
            status: status_tx,
            cancel: cancel_rx,
            tenant: tenant.clone(),
            max_attempts: plan.max_attempts.unwrap_or(self.config.max_attempts),
            speculation: plan.speculation.unwrap_or(self.config.speculation),
            plan,
            limits,
            roots,
            gate: self.gate(tenant),
            // Subscribed now: a worker registering from here on is told the job is live, and
            // keeps its files.
            outcomes: Some(self.control.subscribe(&job_id, tenant.as_str())),
            resume,
            superseded: HashMap::new(),
        };
        let handle = tokio::spawn(runner::run(run));
        self.live_jobs().insert(
            job_id,
            Arc::new(LiveJob {
                tenant: tenant.to_string(),
                status: status_rx,
                cancel: cancel_tx,
                outcome: Mutex::new(Some(handle)),
                finished: Mutex::new(None),
            }),
        );
    }

    /// Drops from memory the jobs over for a while (their status is in the store), and those
    /// over whose outcome was taken: a long-lived scheduler's memory does not grow with every job
    /// it ever ran.
    fn evict_finished(&self) {
        let now = Instant::now();
        self.live_jobs().retain(|_, job| {
            if !job.status.borrow().state.is_final() {
                return true;
            }
            let taken = job
                .outcome
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none();
            let mut finished = job.finished.lock().unwrap_or_else(|p| p.into_inner());
            let since = *finished.get_or_insert(now);
            !taken && now.duration_since(since) < KEEP_FINISHED
        });
    }

    /// How many jobs this scheduler holds in memory: those running, and those over for less than
    /// a minute whose outcome nobody took (the rest are only in the store).
    pub fn jobs_in_memory(&self) -> usize {
        self.live_jobs().len()
    }

    fn live_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveJob>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, tenant: &Tenant, job: &str) -> Option<Arc<LiveJob>> {
        self.live_jobs()
            .get(job)
            .filter(|j| j.tenant == tenant.as_str())
            .cloned()
    }

    /// A job's current status. Tenants only see their own jobs.
    pub fn status(&self, tenant: &Tenant, job: &str) -> Result<JobStatus, LookupError> {
        if let Some(live) = self.live(tenant, job) {
            let status = live.status.borrow().clone();
            return Ok(self.explained(status));
        }
        match self.store.get(job)? {
            Some(r) if r.status.tenant == tenant.as_str() => Ok(r.status),
            _ => Err(LookupError::NotFound(job.to_owned())),
        }
    }

    /// A receiver of the job's status as it changes (already final for a job of a previous run).
    pub fn watch(
        &self,
        tenant: &Tenant,
        job: &str,
    ) -> Result<watch::Receiver<JobStatus>, LookupError> {
        if let Some(live) = self.live(tenant, job) {
            return Ok(live.status.clone());
        }
        let status = self.status(tenant, job)?;
        // A job that is over never changes: a receiver whose sender is gone says so.
        let (_tx, rx) = watch::channel(status);
        Ok(rx)
    }

    /// Every job of `tenant`, oldest first.
    pub fn list(&self, tenant: &Tenant) -> Result<Vec<JobStatus>, LookupError> {
        self.list_where(|owner| owner == tenant.as_str())
    }

    /// Every job of every tenant, oldest first: what an operator sees.
    pub fn list_all(&self) -> Result<Vec<JobStatus>, LookupError> {
        self.list_where(|_| true)
    }

    /// The tenant that owns `job`, if there is such a job.
    pub fn owner_of(&self, job: &str) -> Result<Option<Tenant>, LookupError> {
        if let Some(live) = self.live_jobs().get(job) {
            return Ok(Tenant::new(&live.tenant).ok());
        }
        Ok(self
            .store
            .get(job)?
            .and_then(|r| Tenant::new(&r.status.tenant).ok()))
    }

    fn list_where(&self, owned: impl Fn(&str) -> bool) -> Result<Vec<JobStatus>, LookupError> {
        let live = self.live_jobs().clone();
        Ok(self
            .store
            .all()?
            .into_iter()
            .filter(|r| owned(&r.status.tenant))
            .map(|r| match live.get(&r.status.job_id) {
                Some(j) => self.explained(j.status.borrow().clone()),
                None => r.status,
            })
            .collect())
    }

    /// Cancels a job: its running tasks are killed and waited for, its output is not written.
    /// Returns the job's final status (that of a job already over is unchanged).
    pub async fn cancel(&self, tenant: &Tenant, job: &str) -> Result<JobStatus, LookupError> {
        let Some(live) = self.live(tenant, job) else {
            return self.status(tenant, job);
        };
        let _ = live.cancel.send(true);
        let mut rx = live.status.clone();
        let _ = rx.wait_for(|s| s.state.is_final()).await;
        let status = rx.borrow().clone();
        Ok(status)
    }

    /// Waits for a job this process started and returns how it ended, with the typed error of a
    /// failure. Only one caller gets it; others get [`JobError::Cluster`].
    pub async fn join(&self, job: &str) -> Result<JobReport, JobError> {
        let handle = self
            .live_jobs()
            .get(job)
            .and_then(|j| j.outcome.lock().unwrap_or_else(|p| p.into_inner()).take());
        match handle {
            Some(handle) => handle
                .await
                .map_err(|e| JobError::Cluster(format!("the job's runner stopped: {e}")))?,
            None => Err(JobError::Cluster(format!("job {job} is not joinable"))),
        }
    }

    /// The captured guest output of a job's tasks (of one task with `task`).
    pub fn logs(
        &self,
        tenant: &Tenant,
        job: &str,
        task: Option<TaskRef>,
    ) -> Result<Vec<TaskLog>, LookupError> {
        self.status(tenant, job)?;
        Ok(self
            .store
            .logs(job)?
            .into_iter()
            .filter(|l| task.is_none_or(|t| t.stage == l.stage && t.partition == l.partition))
            .collect())
    }

    /// Every recorded attempt of the job's tasks, in stage, partition and attempt order.
    pub fn tasks(&self, tenant: &Tenant, job: &str) -> Result<Vec<TaskReport>, LookupError> {
        self.status(tenant, job)?;
        Ok(self
            .store
            .tasks(job)?
            .into_iter()
            .map(|(key, record)| TaskReport::new(key, &record))
            .collect())
    }

    /// The registered workers.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.control.worker_infos()
    }

    /// Cancels every job still running and waits for each to end (bounded), for a clean stop.
    pub async fn stop_jobs(&self) {
        let live: Vec<Arc<LiveJob>> = self.live_jobs().values().cloned().collect();
        for job in &live {
            let _ = job.cancel.send(true);
        }
        for job in live {
            let mut rx = job.status.clone();
            let _ =
                tokio::time::timeout(Duration::from_secs(40), rx.wait_for(|s| s.state.is_final()))
                    .await;
        }
        let _ = self.store.flush();
    }
}
