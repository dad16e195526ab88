//! The run loop of one job's [`Plan`]: it waits (queued) until a worker is there, checks which
//! workers can read the input, then runs stage after stage — each task on a free slot taken from
//! the cluster-wide pool ([`placement`](super::placement)) — and commits the output at the end.
//! Progress goes to the job's status (watched by clients) and, at every task end, to the job store.
//! Each stage's tasks are run by [`run_tasks`] (the `stage` module: launches, retries,
//! speculation, outcomes); shuffle output lost with its worker is written again from lineage
//! (`run_stages`, `lost_outputs`); a task failing by its own code past its `max_attempts`, or a
//! cancel, stops the job: running tasks are killed and waited for, the output is aborted, and the
//! job's shuffle files are released either way. The output is committed one attempt's part per
//! partition. A job picked up by a restarted scheduler ([`Resume`]) starts from what the earlier
//! process recorded: the tasks whose output is still there do not run again (`restore`).
//!
//! Workers are reached only through [`WorkerConnection`](super::worker::WorkerConnection)s held by
//! the [`ControlState`]; outcomes come back through it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_io::DataRoots;

use tokio::sync::{mpsc, watch};
use weft_io::OutputCommitter;
use weft_task::{BlockLocation, TaskId, TaskLimits, TaskOutcome, TaskResult, TaskSpec};

use super::control::ControlState;
use super::stage::{Attempts, account, run_tasks};

use super::tasks::JobTasks;
use super::{JobError, JobReport, StageReport};
use crate::Tenant;
use crate::job::{Plan, StageInput, StageOutput};
use crate::jobs::store::{AttemptKey, JobRecord, TaskRecord};
use crate::jobs::{JobState, JobStatus, JobStore, now_ms};

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
    /// Attempts killed because another attempt of their task finished first, not yet heard the
    /// end of, with their stage's index and worker: their reports are still recorded.
    pub superseded: HashMap<TaskId, (usize, String)>,
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
pub(super) struct Output {
    pub(super) attempt: u32,
    pub(super) result: TaskResult,
}

impl JobRun {
    /// Applies `change` to the status, and persists it when `persist`.
    pub(super) fn update(&mut self, persist: bool, change: impl FnOnce(&mut JobStatus)) {
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

    pub(super) fn job_id(&self) -> String {
        self.record.status.job_id.clone()
    }

    pub(super) fn cancelled(&self) -> bool {
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
        Some(resume) => {
            match OutputCommitter::resume(&output_dir, &resume.staging_dir, job.overwrite) {
                Ok(committer) => committer,
                // The scheduler stopped between the commit and recording it: the output is there,
                // whole (a job without --overwrite found nothing at its output when it started).
                Err(_) if !job.overwrite && committed(&output_dir) => {
                    tracing::info!(job = %job.job_id(), "the job's output was committed before \
                        the scheduler stopped");
                    for w in job.control.workers() {
                        let _ = w.conn.release_job(&job.job_id()).await;
                    }
                    return Ok(Vec::new());
                }
                Err(e) => return Err(JobError::Output(e)),
            }
        }
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
    settle_superseded(job, &mut outcomes).await;
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

/// Whether `dir` holds a committed Weft output (its two markers).
fn committed(dir: &Path) -> bool {
    dir.join(weft_io::SUCCESS_MARKER).is_file() && dir.join(weft_io::WEFT_MARKER).is_file()
}

/// How long the end of a job waits for the reports of attempts a faster one superseded.
const SUPERSEDED_PATIENCE: Duration = Duration::from_secs(2);

/// Records the end of every attempt killed because another attempt of its task won: as its
/// report arrives (killed attempts stop within milliseconds), or, past [`SUPERSEDED_PATIENCE`]
/// (its worker frozen, say), as killed with nothing known of what it used. Every attempt a job
/// launched is then among its records.
async fn settle_superseded(job: &mut JobRun, outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>) {
    let deadline = tokio::time::Instant::now() + SUPERSEDED_PATIENCE;
    while !job.superseded.is_empty() {
        match tokio::time::timeout_at(deadline, outcomes.recv()).await {
            Ok(Some(outcome)) => {
                if let Some((index, _)) = job.superseded.remove(&outcome.id) {
                    account(job, index, &outcome);
                }
            }
            _ => break,
        }
    }
    let unheard: Vec<(TaskId, (usize, String))> = job.superseded.drain().collect();
    for (id, (index, worker_id)) in unheard {
        let outcome = TaskOutcome {
            id,
            worker_id,
            result: Err(weft_task::TaskFailure {
                message: "killed: another attempt of the task finished first (its worker did not \
                          report this one's end)"
                    .into(),
                guest_fault: false,
                cancelled: true,
                unreachable: None,
            }),
            output: Default::default(),
            usage: Default::default(),
        };
        account(job, index, &outcome);
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
    let mut attempts: Attempts = HashMap::new();
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
    attempts: &mut Attempts,
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
            uncount(&mut s.stages[*stage], result);
        }
    });
    Some(earliest)
}

/// Takes a finished task's result out of its stage's status (its output was lost).
pub(super) fn uncount(st: &mut crate::jobs::StageStatus, result: &TaskResult) {
    st.tasks_done -= 1;
    st.records_in -= result.records_in;
    st.records_out -= result.records_out;
    st.bytes_in -= result.bytes_in;
    st.bytes_out -= result.bytes_out;
    st.remote_fetches -= result.remote_fetches;
    st.records_skipped -= result.records_skipped;
}
