//! The run loop of one job's [`Plan`]: it waits (queued) until a worker is there, checks which
//! workers can read the input, then runs stage after stage — each task on a free slot taken from
//! the cluster-wide pool ([`placement`](super::placement)) — and commits the output at the end.
//! Progress goes to the job's status (watched by clients) and, at every task end, to the job store.
//! A task lost to the infrastructure runs again as its next attempt, and shuffle output lost with
//! its worker is written again from lineage (`run_stages`, `run_tasks`); a task failing by its own
//! code past its `max_attempts`, or a cancel, stops the job: running tasks are killed and waited
//! for, the output is aborted, and the job's shuffle files are released either way.
//!
//! Workers are reached only through [`WorkerConnection`](super::worker::WorkerConnection)s held by
//! the [`ControlState`]; outcomes come back through it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_io::DataRoots;

use tokio::sync::{mpsc, watch};
use weft_io::OutputCommitter;
use weft_task::{
    BlockLocation, Launch, TaskId, TaskInput, TaskLimits, TaskOutcome, TaskResult, TaskSpec,
};

use super::control::ControlState;
use super::placement;
use super::tasks::JobTasks;
use super::{JobError, JobReport, StageReport};
use crate::Tenant;
use crate::job::{Plan, StageInput, StageOutput};
use crate::jobs::store::{AttemptKey, JobRecord, TaskRecord};
use crate::jobs::{JobState, JobStatus, JobStore, TaskLog, now_ms};

/// How long stopping a job waits for its killed attempts to report.
const STOP_PATIENCE: Duration = Duration::from_secs(30);

/// Everything one job's run needs.
pub(crate) struct JobRun {
    pub control: Arc<ControlState>,
    pub store: Arc<dyn JobStore>,
    pub record: JobRecord,
    pub status: watch::Sender<JobStatus>,
    pub cancel: watch::Receiver<bool>,
    pub tenant: Tenant,
    pub plan: Plan,
    pub overwrite: bool,
    pub limits: TaskLimits,
    /// How many times a task failing by its own code runs before the job fails.
    pub max_attempts: u32,
    /// Whether a straggling task gets a second attempt on another worker (first to finish wins).
    pub speculation: bool,
    /// The tenant's data roots, when the cluster restricts them.
    pub roots: Option<DataRoots>,
    /// The tenant's cap on running jobs: the job waits, queued, for a place.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Where the job's task outcomes arrive ([`ControlState::subscribe`], done before the run
    /// starts so that workers registering meanwhile learn the job is live); taken by the run.
    pub outcomes: Option<mpsc::UnboundedReceiver<TaskOutcome>>,
    /// What an earlier scheduler process did of the job, when this one picks it up.
    pub resume: Option<Resume>,
}

/// A job picked up again by a restarted scheduler: its output's staging directory and every task
/// attempt the earlier process recorded. The tasks whose output is still there (shuffle blocks on
/// a worker that came back, parts in the staging directory) do not run again.
#[derive(Debug)]
pub(crate) struct Resume {
    pub staging_dir: PathBuf,
    pub tasks: Vec<(AttemptKey, TaskRecord)>,
}

/// A task's output that counts: the attempt that wrote it, and what it reported.
#[derive(Debug, Clone)]
struct Output {
    attempt: u32,
    result: TaskResult,
}

impl JobRun {
    /// Applies `change` to the status, and persists it when `persist`.
    fn update(&mut self, persist: bool, change: impl FnOnce(&mut JobStatus)) {
        self.status.send_modify(change);
        if persist {
            self.record.status = self.status.borrow().clone();
            // A store failure must not fail a job that is otherwise fine; it shows in the
            // scheduler's log, and the in-memory status stays right.
            if let Err(e) = self.store.put(&self.record) {
                tracing::warn!(job = %self.record.status.job_id, error = %weft_task::error_chain(&e));
            }
        }
    }

    fn job_id(&self) -> String {
        self.record.status.job_id.clone()
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

/// Runs the job to its end and records how it ended.
pub(crate) async fn run(mut job: JobRun) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let result = run_inner(&mut job).await;
    job.control.unsubscribe(&job.job_id());
    let (state, error) = match &result {
        Ok(_) => (JobState::Succeeded, None),
        Err(JobError::Cancelled) => (JobState::Cancelled, Some("cancelled".to_owned())),
        Err(e) => (JobState::Failed, Some(weft_task::error_chain(e))),
    };
    job.update(true, |s| {
        s.state = state;
        s.error = error;
        s.finished_ms = Some(now_ms());
        for stage in &mut s.stages {
            stage.tasks_running = 0;
        }
    });
    let _ = job.store.flush();
    result.map(|stages| JobReport {
        job_id: job.job_id(),
        job_name: job.plan.job_name.clone(),
        output: job.plan.output_dir().unwrap_or(Path::new("")).to_owned(),
        stages,
        elapsed: started.elapsed(),
    })
}

async fn run_inner(job: &mut JobRun) -> Result<Vec<StageReport>, JobError> {
    let output_dir = job
        .plan
        .output_dir()
        .ok_or_else(|| JobError::Cluster("the plan has no output stage".into()))?
        .to_owned();
    // Queued until the tenant's cap has a place for it (held while it runs)...
    let _place = match job.gate.clone() {
        Some(gate) => loop {
            if job.cancelled() {
                return Err(JobError::Cancelled);
            }
            tokio::select! {
                place = gate.clone().acquire_owned() => break Some(place.map_err(|_| {
                    JobError::Cluster("the tenant's job gate was closed".into())
                })?),
                _ = job.cancel.changed() => {}
            }
        },
        None => None,
    };
    // ... and until some worker is there.
    loop {
        if job.cancelled() {
            return Err(JobError::Cancelled);
        }
        let changed = job.control.changed().notified();
        if job.control.worker_count() > 0 {
            break;
        }
        tokio::select! {
            _ = changed => {}
            _ = job.cancel.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    job.update(true, |s| {
        s.state = JobState::Running;
        s.started_ms.get_or_insert_with(now_ms);
    });
    let mut readers = Readers::new(job.plan.input_paths());
    readers.ask_new_workers(&job.control).await;
    if let Some(error) = readers.none_can_read() {
        return Err(error);
    }
    // The output is checked against the tenant's roots again where it is about to be made, and
    // again before the commit: a directory swapped for a symlink since submission leads nowhere.
    let roots = job.roots.clone();
    let within_roots = || match &roots {
        Some(roots) => roots
            .check(&output_dir, weft_io::Access::Write)
            .map_err(JobError::Output),
        None => Ok(()),
    };
    within_roots()?;
    let resume = job.resume.take();
    let committer = match &resume {
        Some(resume) => OutputCommitter::resume(&output_dir, &resume.staging_dir, job.overwrite)
            .map_err(JobError::Output)?,
        None => {
            let committer =
                OutputCommitter::begin(&output_dir, job.overwrite).map_err(JobError::Output)?;
            // Made durable before any task writes there: a scheduler restarting on this store
            // takes the staging directory up again with the parts in it.
            job.record.staging = Some(committer.staging_dir().to_string_lossy().into_owned());
            job.update(true, |_| {});
            let _ = job.store.flush();
            committer
        }
    };
    let job_id = job.job_id();
    let mut outcomes = job
        .outcomes
        .take()
        .ok_or_else(|| JobError::Cluster("the job's outcomes were taken".into()))?;
    let restored = match resume {
        Some(resume) => {
            wait_for_holders(job, &resume.tasks).await?;
            resume.tasks
        }
        None => Vec::new(),
    };
    let result = run_stages(job, &mut readers, &committer, &mut outcomes, restored).await;
    // Shuffle files are released on every worker, whatever happened.
    for w in job.control.workers() {
        if let Err(e) = w.conn.release_job(&job_id).await {
            tracing::warn!(job = %job_id, worker = %w.id, error = %weft_task::error_chain(&e),
                "cannot release the job's shuffle files");
        }
    }
    match result {
        Ok((stages, winners)) => {
            if let Err(e) = within_roots() {
                let _ = committer.abort();
                return Err(e);
            }
            committer
                .commit_attempts(&winners)
                .map_err(JobError::Output)?;
            Ok(stages)
        }
        Err(e) => {
            let _ = committer.abort();
            Err(e)
        }
    }
}

/// Which workers can read the job's input. Each worker is asked once, when the job first sees it, so
/// a worker that registers while the job runs (or after it started, as `weft run`'s workers do) can
/// take map tasks too.
pub(crate) struct Readers {
    paths: Vec<String>,
    asked: HashSet<String>,
    readable: HashSet<String>,
    /// What the workers that cannot read said.
    refusals: Vec<String>,
}

impl Readers {
    pub(crate) fn new(paths: Vec<String>) -> Readers {
        Readers {
            paths,
            asked: HashSet::new(),
            readable: HashSet::new(),
            refusals: Vec::new(),
        }
    }

    /// Asks every registered worker not asked yet whether it can read the input.
    pub(crate) async fn ask_new_workers(&mut self, control: &ControlState) {
        for (id, conn) in control.workers_not_in(&self.asked) {
            self.asked.insert(id.clone());
            let refusal = match conn.check_paths(&self.paths).await {
                Ok(answers) if answers.len() != self.paths.len() => {
                    Some(format!("{}: malformed reply", id))
                }
                Ok(answers) => self
                    .paths
                    .iter()
                    .zip(&answers)
                    .find_map(|(p, a)| a.as_ref().err().map(|e| (p, e)))
                    .map(|(path, e)| format!("{} cannot read {path}: {e}", id)),
                Err(e) => Some(format!("{}: {}", id, weft_task::error_chain(&e))),
            };
            match refusal {
                None => {
                    self.readable.insert(id);
                }
                Some(refusal) => self.refusals.push(refusal),
            }
        }
    }

    /// The workers found able to read the input.
    pub(crate) fn readable(&self) -> &HashSet<String> {
        &self.readable
    }

    /// An error naming what each worker said, when none can read the input.
    pub(crate) fn none_can_read(&self) -> Option<JobError> {
        self.readable.is_empty().then(|| {
            JobError::Input(format!(
                "no worker can read the job's input ({}); inputs must be on a file system every \
                 worker can read, at the same path",
                if self.refusals.is_empty() {
                    "no worker is registered".to_owned()
                } else {
                    self.refusals.join("; ")
                }
            ))
        })
    }
}

/// The output parts committed, as `(partition, attempt)`: one attempt per partition.
type Winners = Vec<(u32, u32)>;

async fn run_stages(
    job: &mut JobRun,
    readers: &mut Readers,
    committer: &OutputCommitter,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    restored: Vec<(AttemptKey, TaskRecord)>,
) -> Result<(Vec<StageReport>, Winners), JobError> {
    let plan = job.plan.clone();
    let job_id = job.job_id();
    let tenant = job.tenant.clone();
    let roots = job.roots.clone();
    let parts_dir = committer.attempts_dir();
    let tasks = JobTasks {
        job_id: &job_id,
        tenant: &tenant,
        job_name: &plan.job_name,
        limits: job.limits,
        roots: roots.as_ref(),
        staging_dir: committer.staging_dir(),
        parts_dir: &parts_dir,
    };
    // What each task of each stage produced, by partition; `None` until it has (or since its
    // output was lost with its worker).
    let mut outputs: Vec<Vec<Option<Output>>> = plan
        .stages
        .iter()
        .map(|stage| vec![None; tasks.stage(stage, &[]).len()])
        .collect();
    // The next attempt number of each task, so that a report of an attempt given up is ignored.
    let mut attempts: HashMap<(usize, u32), u32> = HashMap::new();
    if !restored.is_empty() {
        restore(job, committer, &restored, &mut outputs, &mut attempts);
    }
    let mut recomputes = 0;
    let mut index = 0;
    while index < plan.stages.len() {
        let stage = &plan.stages[index];
        // Shuffle output on a worker that is gone is lost: the tasks that wrote it run again
        // (lineage), from the earliest stage that lost some.
        let lost = lost_outputs(job, &mut outputs, &job.control.live_workers());
        if let Some(earliest) = lost {
            recomputes += 1;
            if recomputes > MAX_RECOMPUTES {
                return Err(JobError::Cluster(format!(
                    "shuffle output was lost with its workers {MAX_RECOMPUTES} times; giving up"
                )));
            }
            tracing::info!(job = %job_id, stage = plan.stages[earliest].id,
                "shuffle output lost with its worker: running the tasks that wrote it again");
            index = earliest;
            continue;
        }
        let parent_blocks: Vec<BlockLocation> = stage
            .parents
            .iter()
            .filter_map(|p| plan.stages.iter().position(|s| s.id == *p))
            .flat_map(|p| {
                outputs[p]
                    .iter()
                    .flatten()
                    .flat_map(|o| o.result.blocks.clone())
            })
            .collect();
        let specs: Vec<TaskSpec> = tasks
            .stage(stage, &parent_blocks)
            .into_iter()
            .filter(|spec| outputs[index][spec.id.partition as usize].is_none())
            .map(|mut spec| {
                let next = attempts.entry((index, spec.id.partition)).or_default();
                spec.id.attempt = *next;
                *next += 1;
                spec
            })
            .collect();
        let bytes_total: u64 = match &stage.input {
            StageInput::Splits { splits, .. } => splits.iter().map(|s| s.length).sum(),
            StageInput::Shuffle { .. } => parent_blocks.iter().map(|b| b.bytes).sum(),
        };
        job.update(false, |s| s.stages[index].bytes_total = bytes_total);
        // A map task may run only where its input is readable.
        let readers = matches!(stage.input, StageInput::Splits { .. }).then_some(&mut *readers);
        let results = &mut outputs[index];
        match run_tasks(job, index, specs, readers, outcomes, results, &mut attempts).await {
            Ok(()) => index += 1,
            // A task could not read shuffle output of a worker that is gone: the loop's next turn
            // finds what was lost and runs it again.
            Err(JobError::InputLost) => {}
            Err(e) => return Err(e),
        }
    }
    let winners = plan
        .stages
        .iter()
        .zip(&outputs)
        .filter(|(stage, _)| matches!(stage.output, StageOutput::Output { .. }))
        .flat_map(|(_, done)| done.iter().zip(0..))
        .filter_map(|(done, partition)| done.as_ref().map(|o| (partition, o.attempt)))
        .collect();
    let reports = plan
        .stages
        .iter()
        .zip(outputs)
        .map(|(stage, results)| {
            let results: Vec<TaskResult> =
                results.into_iter().flatten().map(|o| o.result).collect();
            StageReport {
                stage: stage.id,
                tasks: results.len() as u32,
                records_in: results.iter().map(|r| r.records_in).sum(),
                records_out: results.iter().map(|r| r.records_out).sum(),
                bytes_in: results.iter().map(|r| r.bytes_in).sum(),
                bytes_out: results.iter().map(|r| r.bytes_out).sum(),
                remote_fetches: results.iter().map(|r| r.remote_fetches).sum(),
                records_skipped: results.iter().map(|r| r.records_skipped).sum(),
            }
        })
        .collect();
    Ok((reports, winners))
}

/// Takes back what an earlier scheduler process recorded of the job. A task with a succeeded
/// attempt whose output is still there — its part in the staging directory, or its shuffle blocks
/// on a worker registered again (the same process: a worker keeps its id across a scheduler
/// restart, a new process gets a new one) — is done, the lowest such attempt winning; attempts go
/// on numbering past every recorded one, so none is given twice. The status is set from what was
/// kept: whatever ran when the scheduler stopped runs again.
fn restore(
    job: &mut JobRun,
    committer: &OutputCommitter,
    restored: &[(AttemptKey, TaskRecord)],
    outputs: &mut [Vec<Option<Output>>],
    attempts: &mut HashMap<(usize, u32), u32>,
) {
    let live = job.control.live_workers();
    let job_id = job.job_id();
    for &((stage_id, partition, attempt), ref record) in restored {
        let Some(index) = job.plan.stages.iter().position(|s| s.id == stage_id) else {
            continue;
        };
        let next = attempts.entry((index, partition)).or_default();
        *next = (*next).max(attempt + 1);
        let Some(slot) = outputs[index].get_mut(partition as usize) else {
            continue;
        };
        if !record.succeeded || slot.is_some() {
            continue;
        }
        let still_there = match job.plan.stages[index].output {
            StageOutput::Output { .. } => committer.has_attempt_part(partition, attempt),
            StageOutput::Shuffle { .. } => {
                record.blocks.is_empty() || live.contains(&record.worker_id)
            }
        };
        if !still_there {
            continue;
        }
        let map_task = TaskId {
            job: job_id.clone(),
            stage: stage_id,
            partition,
            attempt,
        };
        let blocks = record
            .blocks
            .iter()
            .map(|&(reduce, bytes)| BlockLocation {
                worker_id: record.worker_id.clone(),
                worker_address: record.worker_address.clone(),
                map_task: map_task.clone(),
                partition: reduce,
                bytes,
                records: 0,
            })
            .collect();
        *slot = Some(Output {
            attempt,
            result: TaskResult {
                records_in: record.records_in,
                records_out: record.records_out,
                bytes_in: record.bytes_in,
                bytes_out: record.bytes_out,
                blocks,
                remote_fetches: record.remote_fetches,
                records_skipped: record.records_skipped,
            },
        });
    }
    job.update(true, |s| {
        for (st, done) in s.stages.iter_mut().zip(outputs.iter()) {
            let kept: Vec<&TaskResult> = done.iter().flatten().map(|o| &o.result).collect();
            st.tasks_running = 0;
            st.records_in_running = 0;
            st.bytes_in_running = 0;
            st.tasks_done = kept.len() as u32;
            st.records_in = kept.iter().map(|r| r.records_in).sum();
            st.records_out = kept.iter().map(|r| r.records_out).sum();
            st.bytes_in = kept.iter().map(|r| r.bytes_in).sum();
            st.bytes_out = kept.iter().map(|r| r.bytes_out).sum();
            st.remote_fetches = kept.iter().map(|r| r.remote_fetches).sum();
            st.records_skipped = kept.iter().map(|r| r.records_skipped).sum();
        }
    });
}

/// Waits, for a job picked up after a restart, until every worker holding its recorded shuffle
/// output has registered again (each does at its next heartbeat), so that output is not taken
/// for lost; one not back within a worker timeout is.
async fn wait_for_holders(
    job: &mut JobRun,
    tasks: &[(AttemptKey, TaskRecord)],
) -> Result<(), JobError> {
    let holders: HashSet<String> = tasks
        .iter()
        .filter(|(_, r)| r.succeeded && !r.blocks.is_empty())
        .map(|(_, r)| r.worker_id.clone())
        .collect();
    let deadline = Instant::now() + job.control.worker_timeout();
    loop {
        if job.cancelled() {
            return Err(JobError::Cancelled);
        }
        let changed = job.control.changed().notified();
        let live = job.control.live_workers();
        if holders.is_subset(&live) || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::select! {
            _ = changed => {}
            _ = job.cancel.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// How often a job runs lost shuffle output again before it gives up.
const MAX_RECOMPUTES: u32 = 8;
/// Attempts of one task lost to the infrastructure (its worker lost, a fetch or launch failing)
/// before the job gives up; a user's failure (a trap, a limit) is not retried.
const MAX_INFRA_ATTEMPTS: u32 = 6;

/// Forgets the output of every finished task whose shuffle blocks were on a worker not in `live`
/// and that a stage still to run needs (output read only by stages that are done is not written
/// again), taking it out of the status too. Returns the earliest stage that lost some.
fn lost_outputs(
    job: &mut JobRun,
    outputs: &mut [Vec<Option<Output>>],
    live: &HashSet<String>,
) -> Option<usize> {
    let stages = &job.plan.stages;
    let mut lost: Vec<(usize, TaskResult)> = Vec::new();
    // From the last stage back: forgetting a stage's output makes its parents' needed again.
    for stage in (0..outputs.len()).rev() {
        let id = stages[stage].id;
        let needed = stages
            .iter()
            .zip(outputs.iter())
            .any(|(child, done)| child.parents.contains(&id) && done.iter().any(Option::is_none));
        if !needed {
            continue;
        }
        for slot in outputs[stage].iter_mut() {
            if slot
                .as_ref()
                .is_some_and(|o| o.result.blocks.iter().any(|b| !live.contains(&b.worker_id)))
            {
                lost.extend(slot.take().map(|o| (stage, o.result)));
            }
        }
    }
    let earliest = lost.iter().map(|(stage, _)| *stage).min()?;
    job.update(true, |s| {
        for (stage, result) in &lost {
            let st = &mut s.stages[*stage];
            st.tasks_done -= 1;
            st.records_in -= result.records_in;
            st.records_out -= result.records_out;
            st.bytes_in -= result.bytes_in;
            st.bytes_out -= result.bytes_out;
            st.remote_fetches -= result.remote_fetches;
            st.records_skipped -= result.records_skipped;
        }
    });
    Some(earliest)
}

/// Runs the stage's tasks of `specs` to completion, each result into `results` (by partition).
/// A task lost to the infrastructure (its worker lost or stopped, a fetch failing) runs again as
/// its next attempt, after a pause, elsewhere if its launch failed; a task that could not read the
/// shuffle output of a worker that is gone ends the stage with [`JobError::InputLost`]; a user's
/// failure fails the job after stopping the rest.
async fn run_tasks(
    job: &mut JobRun,
    stage_index: usize,
    specs: Vec<TaskSpec>,
    mut readers: Option<&mut Readers>,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    results: &mut [Option<Output>],
    attempts: &mut HashMap<(usize, u32), u32>,
) -> Result<(), JobError> {
    let total = specs.len();
    // Each task waiting for a slot, with when it may be launched (a retry waits a little).
    let mut pending: VecDeque<(TaskSpec, Instant)> =
        specs.into_iter().map(|s| (s, Instant::now())).collect();
    let mut running: HashMap<TaskId, (String, TaskSpec)> = HashMap::new();
    let mut done = 0;
    let control = job.control.clone();
    // Since when tasks have waited with none running and no worker able to take them.
    let mut stranded: Option<Instant> = None;
    let (job_id, stage_id) = (job.job_id(), job.status.borrow().stages[stage_index].stage);
    // Attempts of each task lost to the infrastructure, and failed by the user's code, so far.
    let mut lost_attempts: HashMap<u32, u32> = HashMap::new();
    let mut failed_attempts: HashMap<u32, u32> = HashMap::new();
    // Workers a launch failed on, not tried again for this job until then.
    // Workers set aside, not tried again for this stage until then: one a launch failed on, or
    // one whose attempts kept failing for reasons of its own (Spark's excludeOnFailure), with what
    // set the last one aside.
    let mut excluded: HashMap<String, Instant> = HashMap::new();
    let mut set_aside: Option<String> = None;
    // Attempts that failed on each worker for the infrastructure's reasons, the worker still there.
    let mut failed_on: HashMap<String, u32> = HashMap::new();
    // Speculation: when each running attempt started, how long the stage's finished ones took,
    // the tasks given a second attempt, and the worker each second attempt must avoid.
    let mut started: HashMap<TaskId, Instant> = HashMap::new();
    let mut took: Vec<Duration> = Vec::new();
    let mut speculated: HashSet<u32> = HashSet::new();
    let mut avoid: HashMap<TaskId, String> = HashMap::new();

    while done < total {
        // What running tasks have read so far, as heartbeats report it: live progress.
        let in_flight = control.stage_progress(&job_id, stage_id);
        let shown = {
            let status = job.status.borrow();
            let st = &status.stages[stage_index];
            (st.records_in_running, st.bytes_in_running)
        };
        if in_flight != shown {
            job.update(false, |s| {
                let st = &mut s.stages[stage_index];
                (st.records_in_running, st.bytes_in_running) = in_flight;
            });
        }
        if job.cancelled() {
            stop_running(job, stage_index, &mut running, outcomes).await;
            return Err(JobError::Cancelled);
        }
        // Armed before trying, so a slot freed while we launch is not missed.
        let changed = control.changed().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(readers) = readers.as_deref_mut() {
            readers.ask_new_workers(&control).await;
        }
        let eligible = readers.as_deref().map(Readers::readable);
        let now = Instant::now();
        excluded.retain(|_, until| *until > now);

        // Tasks in order; one waiting out its retry pause lets those behind it go first.
        let mut waiting = VecDeque::new();
        while let Some((spec, not_before)) = pending.pop_front() {
            if not_before > now {
                waiting.push_back((spec, not_before));
                continue;
            }
            let shunned = avoid.get(&spec.id);
            let Some((worker, conn)) = control.acquire(&spec.id, |w| {
                usable(w, &spec, eligible, &excluded).filter(|_| shunned != Some(&w.id))
            }) else {
                waiting.push_back((spec, not_before));
                break;
            };
            match conn.launch(&spec).await {
                Ok(Launch::Accepted) => {
                    started.insert(spec.id.clone(), Instant::now());
                    running.insert(spec.id.clone(), (worker, spec));
                    job.update(false, |s| s.stages[stage_index].tasks_running += 1);
                }
                Ok(Launch::Refused(reason)) => {
                    // The worker is busier than the scheduler thought (e.g. it still finishes a
                    // killed attempt): try again when something changes.
                    tracing::debug!(task = %spec.id, %worker, %reason, "launch refused");
                    control.release(&worker, &spec.id);
                    waiting.push_back((spec, not_before));
                    break;
                }
                Err(e) => {
                    // The worker cannot be reached (stopped, partitioned away): another may take
                    // the task, as a new attempt; this one is left alone for a while.
                    control.release(&worker, &spec.id);
                    let why = format!(
                        "launching {} on {worker}: {}",
                        spec.id,
                        weft_task::error_chain(&e)
                    );
                    tracing::warn!(job = %job_id, "{why}");
                    excluded.insert(worker, now + control.worker_timeout());
                    let tries = lost_attempts.entry(spec.id.partition).or_default();
                    *tries += 1;
                    if *tries >= MAX_INFRA_ATTEMPTS {
                        stop_running(job, stage_index, &mut running, outcomes).await;
                        return Err(JobError::Cluster(why));
                    }
                    set_aside = Some(why);
                    waiting.push_back((next_attempt(spec, stage_index, attempts), now));
                }
            }
        }
        waiting.extend(pending.drain(..));
        pending = waiting;

        // A straggler — running far longer than most of the stage's tasks took — gets a second
        // attempt elsewhere, as Spark's speculation does; the first of the two to finish wins.
        if job.speculation && done * 4 >= total * 3 && !took.is_empty() {
            let mut sorted = took.clone();
            sorted.sort();
            let slow = (sorted[sorted.len() / 2] * 3 / 2).max(SPECULATION_MIN_RUNTIME);
            let stragglers: Vec<(TaskId, String, TaskSpec)> = running
                .iter()
                .filter(|(id, _)| !speculated.contains(&id.partition))
                .filter(|(id, _)| started.get(*id).is_some_and(|t| t.elapsed() > slow))
                .map(|(id, (worker, spec))| (id.clone(), worker.clone(), spec.clone()))
                .collect();
            for (id, worker, spec) in stragglers {
                speculated.insert(id.partition);
                let copy = next_attempt(spec, stage_index, attempts);
                tracing::info!(task = %id, copy = %copy.id, %worker,
                    "a straggler: a second attempt starts on another worker");
                avoid.insert(copy.id.clone(), worker);
                pending.push_front((copy, now));
            }
        }

        // Tasks that no worker can take, with nothing running, wait for a worker to (re)join, but
        // not forever: a job must end rather than hang on a cluster that lost its workers.
        if running.is_empty() && !pending.is_empty() {
            let able = control
                .workers()
                .iter()
                .any(|w| usable(w, &pending[0].0, eligible, &excluded).is_some());
            if able {
                stranded = None;
            } else {
                let since = *stranded.get_or_insert_with(Instant::now);
                if since.elapsed() > control.worker_timeout() {
                    return Err(JobError::Cluster(format!(
                        "no registered worker could take stage {}'s tasks for {} s ({} worker(s) \
                         registered; a map task needs one that can read the input){}",
                        pending[0].0.id.stage,
                        control.worker_timeout().as_secs(),
                        control.worker_count(),
                        set_aside
                            .as_deref()
                            .map(|e| format!("; the last worker set aside: {e}"))
                            .unwrap_or_default()
                    )));
                }
            }
        }

        let outcome = tokio::select! {
            outcome = outcomes.recv() => {
                outcome.ok_or_else(|| JobError::Cluster("the scheduler stopped".into()))?
            }
            _ = &mut changed => continue,
            _ = job.cancel.changed() => continue,
            // A launch refused for a busy worker, or a retry's pause, is looked at this often.
            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        let Some((_, spec)) = running.remove(&outcome.id) else {
            continue; // not ours (a superseded attempt)
        };
        account(job, stage_index, &outcome);
        let partition = outcome.id.partition;
        // Another attempt of the same task won already, or still runs (speculation): this one's
        // end decides nothing.
        let twin_running = running.keys().any(|id| id.partition == partition);
        if results[partition as usize].is_some() || (outcome.result.is_err() && twin_running) {
            job.update(true, |s| {
                let st = &mut s.stages[stage_index];
                st.tasks_running -= 1;
                if outcome.result.is_err() {
                    st.tasks_failed += 1;
                }
            });
            continue;
        }
        match outcome.result {
            Ok(result) => {
                if let Some(at) = started.remove(&outcome.id) {
                    took.push(at.elapsed());
                }
                // The other attempt of a speculated task lost the race: stop it, or drop it if it
                // has not started.
                pending.retain(|(spec, _)| spec.id.partition != partition);
                let losers: Vec<(TaskId, String)> = running
                    .iter()
                    .filter(|(id, _)| id.partition == partition)
                    .map(|(id, (worker, _))| (id.clone(), worker.clone()))
                    .collect();
                for (id, worker) in losers {
                    running.remove(&id);
                    job.update(false, |s| s.stages[stage_index].tasks_running -= 1);
                    if let Some(conn) = control.connection(&worker)
                        && let Err(e) = conn.kill(&id).await
                    {
                        tracing::warn!(task = %id, %worker, error = %weft_task::error_chain(&e),
                            "cannot kill the slower attempt; its worker's next heartbeat will");
                    }
                }
                let in_flight = control.stage_progress(&job_id, stage_id);
                job.update(true, |s| {
                    let st = &mut s.stages[stage_index];
                    (st.records_in_running, st.bytes_in_running) = in_flight;
                    st.tasks_running -= 1;
                    st.tasks_done += 1;
                    st.records_in += result.records_in;
                    st.records_out += result.records_out;
                    st.bytes_in += result.bytes_in;
                    st.bytes_out += result.bytes_out;
                    st.remote_fetches += result.remote_fetches;
                    st.records_skipped += result.records_skipped;
                });
                results[partition as usize] = Some(Output {
                    attempt: outcome.id.attempt,
                    result,
                });
                done += 1;
            }
            Err(failure) => {
                job.update(true, |s| {
                    let st = &mut s.stages[stage_index];
                    st.tasks_running -= 1;
                    st.tasks_failed += 1;
                });
                if failure.guest_fault {
                    let failed = failed_attempts.entry(partition).or_default();
                    *failed += 1;
                    if *failed < job.max_attempts {
                        tracing::info!(task = %outcome.id, error = %failure.message,
                            "attempt failed; running the task again ([retry] max_attempts)");
                        let retry = next_attempt(spec, stage_index, attempts);
                        pending.push_back((retry, Instant::now()));
                        continue;
                    }
                } else {
                    // A peer it could not fetch from may be gone: asked at once, one that does not
                    // answer is lost now rather than after its heartbeat timeout.
                    if let Some(address) = &failure.unreachable {
                        probe_peer(&control, address).await;
                    }
                    // Its input was on a worker that is gone: what wrote it must run again first.
                    let live = control.live_workers();
                    if let TaskInput::Shuffle { blocks, .. } = &spec.input
                        && blocks.iter().any(|b| !live.contains(&b.worker_id))
                    {
                        stop_running(job, stage_index, &mut running, outcomes).await;
                        // None of the stage's attempts runs now; the stage goes on after the
                        // lost output is written again.
                        job.update(false, |s| s.stages[stage_index].tasks_running = 0);
                        return Err(JobError::InputLost);
                    }
                    // A worker, still there, whose attempts keep failing (its disk, its memory,
                    // its network) is left aside for the rest of the stage's retries.
                    if failure.unreachable.is_none() && live.contains(&outcome.worker_id) {
                        let failures = failed_on.entry(outcome.worker_id.clone()).or_default();
                        *failures += 1;
                        if *failures >= EXCLUDE_AFTER_FAILURES {
                            let why = format!(
                                "{} failed {failures} attempts of stage {stage_id}, the last: {}",
                                outcome.worker_id, failure.message
                            );
                            tracing::warn!(job = %job_id, "setting aside worker {why}");
                            excluded
                                .insert(outcome.worker_id.clone(), Instant::now() + EXCLUDED_FOR);
                            set_aside = Some(why);
                        }
                    }
                    let tries = lost_attempts.entry(partition).or_default();
                    *tries += 1;
                    if *tries < MAX_INFRA_ATTEMPTS {
                        tracing::info!(task = %outcome.id, worker = %outcome.worker_id,
                            error = %failure.message, "attempt lost; running the task again");
                        // A pause that grows, so that a worker about to be found lost (a fetch
                        // from it failing) is, before the task's attempts run out: together they
                        // last several worker timeouts.
                        let pause = control.worker_timeout() * *tries / 4;
                        let retry = next_attempt(spec, stage_index, attempts);
                        pending.push_back((retry, Instant::now() + pause));
                        continue;
                    }
                }
                stop_running(job, stage_index, &mut running, outcomes).await;
                // A kill this job did not ask for: the worker stopped (or another scheduler told
                // it to); say where, since the task's own message only says it was cancelled.
                let message = if failure.cancelled {
                    format!(
                        "killed on worker {}: {} (the worker is shutting down?)",
                        outcome.worker_id, failure.message
                    )
                } else {
                    failure.message
                };
                return Err(JobError::Task {
                    job: job.plan.job_name.clone(),
                    stage: outcome.id.stage,
                    partition: outcome.id.partition,
                    message,
                    guest_fault: failure.guest_fault,
                });
            }
        }
    }
    Ok(())
}

/// Attempts of a stage failing on one worker for the infrastructure's reasons (not a peer's, and not
/// its loss) after which the stage leaves that worker aside ([`EXCLUDED_FOR`]).
const EXCLUDE_AFTER_FAILURES: u32 = 2;
/// How long a worker whose attempts kept failing is left aside by the stage.
const EXCLUDED_FOR: Duration = Duration::from_secs(600);

/// How long a worker a peer could not reach has to answer before it is taken as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the worker at `address`, which a task could not reach, whether it is there (a cheap call);
/// if it does not answer in time, it is lost: its tasks fail to their jobs and its shuffle output
/// is written again.
async fn probe_peer(control: &ControlState, address: &str) {
    let Some((id, conn)) = control.worker_at(address) else {
        return; // lost already
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, conn.check_paths(&[])).await;
    let why = match answer {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => weft_task::error_chain(&e),
        Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
    };
    let why = format!("worker {id} at {address} was lost: a peer could not fetch from it ({why})");
    if control.lose(&id, &why) {
        tracing::warn!("{why}");
    }
}

/// How well `worker` suits `spec` ([`placement::score`]); `None` if it cannot take it, or a launch
/// on it failed a moment ago.
fn usable(
    worker: &super::WorkerEntry,
    spec: &TaskSpec,
    eligible: Option<&HashSet<String>>,
    excluded: &HashMap<String, Instant>,
) -> Option<i64> {
    placement::score(worker, spec, eligible).filter(|_| !excluded.contains_key(&worker.id))
}

/// The least time a task runs before it may be speculated on: shorter tasks are not worth a copy.
const SPECULATION_MIN_RUNTIME: Duration = Duration::from_secs(1);

/// The same task as `spec`, as its next attempt (numbered on from every attempt the job made of
/// it, so that no two share a number).
fn next_attempt(
    mut spec: TaskSpec,
    stage_index: usize,
    attempts: &mut HashMap<(usize, u32), u32>,
) -> TaskSpec {
    let next = attempts
        .entry((stage_index, spec.id.partition))
        .or_default();
    spec.id.attempt = (*next).max(spec.id.attempt + 1);
    *next = spec.id.attempt + 1;
    spec
}

/// Counts what a finished task attempt used in its stage's and job's usage, and keeps what it did
/// (and what its guest printed) in the job store: every attempt the job saw end, failed and killed
/// ones too, so that the per-task records add up to the job's usage.
fn account(job: &mut JobRun, stage_index: usize, outcome: &TaskOutcome) {
    let reads_shuffle = !job.status.borrow().stages[stage_index].parents.is_empty();
    record_task(job, reads_shuffle, outcome);
    job.update(false, |s| {
        s.stages[stage_index].usage.add(&outcome.usage);
        s.usage.add(&outcome.usage);
    });
}

/// Keeps what a task attempt did, and what its guest printed, in the job store.
fn record_task(job: &JobRun, reads_shuffle: bool, outcome: &TaskOutcome) {
    let id = &outcome.id;
    let usage = &outcome.usage;
    let record = TaskRecord {
        worker_id: outcome.worker_id.clone(),
        cpu_us: usage.cpu_us,
        wall_us: usage.wall_us,
        peak_memory_bytes: usage.peak_memory_bytes,
        ..TaskRecord::default()
    };
    let record = match &outcome.result {
        Ok(r) => TaskRecord {
            succeeded: true,
            records_in: r.records_in,
            records_out: r.records_out,
            records_skipped: r.records_skipped,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            shuffle_bytes_read: if reads_shuffle { r.bytes_in } else { 0 },
            remote_fetches: r.remote_fetches,
            blocks: r.blocks.iter().map(|b| (b.partition, b.bytes)).collect(),
            worker_address: r
                .blocks
                .first()
                .map(|b| b.worker_address.clone())
                .unwrap_or_default(),
            ..record
        },
        Err(f) => TaskRecord {
            error: Some(f.message.clone()),
            cancelled: f.cancelled,
            ..record
        },
    };
    let output = outcome.output.clone();
    let log = TaskLog {
        stage: id.stage,
        partition: id.partition,
        attempt: id.attempt,
        stdout: output.stdout,
        stderr: output.stderr,
        truncated: output.truncated,
    };
    let succeeded = record.succeeded;
    let stored = job
        .store
        .put_task(&id.job, (id.stage, id.partition, id.attempt), &record)
        .and_then(|()| job.store.put_log(&id.job, &log))
        // Durable at once: a scheduler restarting after a crash does not run it again.
        .and_then(|()| if succeeded { job.store.flush() } else { Ok(()) });
    if let Err(e) = stored {
        tracing::warn!(job = %id.job, error = %weft_task::error_chain(&e));
    }
}

/// Kills every running attempt and waits for them to stop (they check between batches), so that
/// nothing of the job still writes once the caller cleans up. An attempt that does not answer in
/// time gets its slot back anyway; the worker's next heartbeat kills it.
async fn stop_running(
    job: &mut JobRun,
    stage_index: usize,
    running: &mut HashMap<TaskId, (String, TaskSpec)>,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
) {
    let control = job.control.clone();
    for (id, (worker, _)) in running.iter() {
        if let Some(conn) = control.connection(worker)
            && let Err(e) = conn.kill(id).await
        {
            tracing::warn!(task = %id, %worker, error = %weft_task::error_chain(&e),
                "cannot kill the attempt; its worker's next heartbeat will");
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_PATIENCE;
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, outcomes.recv()).await {
            Ok(Some(o)) => {
                if running.remove(&o.id).is_some() {
                    account(job, stage_index, &o);
                }
            }
            _ => break,
        }
    }
    for (id, (worker, _)) in running.drain() {
        control.release(&worker, &id);
    }
}
