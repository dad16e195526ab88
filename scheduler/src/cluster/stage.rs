//! One stage's run ([`run_tasks`]): its tasks placed on free slots, launched, retried, speculated
//! on and their outcomes taken in, each task's attempts kept in the job store — the part of a
//! job's run that deals with workers task by task. The job's run ([`runner`](super::runner))
//! calls it once per stage (again after shuffle output was lost).
//!
//! A task lost to the infrastructure (its worker lost or stopped, a fetch or a disk failing, a
//! launch not reaching the worker) runs again as its next attempt, after a pause, up to
//! [`MAX_INFRA_ATTEMPTS`]; a worker a launch failed on, or on which attempts kept failing, is left
//! aside; a task failing by its own code runs again only up to the job's `max_attempts`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use weft_task::{Launch, TaskFailure, TaskId, TaskInput, TaskOutcome, TaskResult, TaskSpec};

use super::JobError;
use super::control::ControlState;
use super::placement;
use super::runner::{JobRun, Output, Readers, uncount};
use crate::jobs::TaskLog;
use crate::jobs::store::TaskRecord;

/// How long stopping a job waits for its killed attempts to report.
const STOP_PATIENCE: Duration = Duration::from_secs(30);
/// Attempts of one task lost to the infrastructure (its worker lost, a fetch or launch failing)
/// before the job gives up; a user's failure (a trap, a limit) is not retried.
const MAX_INFRA_ATTEMPTS: u32 = 6;
/// Attempts of a stage failing on one worker for the infrastructure's reasons (not a peer's, and
/// not its loss) after which the stage leaves that worker aside ([`EXCLUDED_FOR`]).
const EXCLUDE_AFTER_FAILURES: u32 = 2;
/// How long a worker whose attempts kept failing is left aside by the stage.
const EXCLUDED_FOR: Duration = Duration::from_secs(600);
/// How long a worker a peer could not reach has to answer before it is taken as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The least time a task runs before it may be speculated on: shorter tasks are not worth a copy.
const SPECULATION_MIN_RUNTIME: Duration = Duration::from_secs(1);

/// The next attempt number of each task of the job, by `(stage index, partition)`.
pub(super) type Attempts = HashMap<(usize, u32), u32>;

/// Runs the stage's tasks of `specs` to completion, each result into `results` (by partition).
/// A task lost to the infrastructure runs again as its next attempt; a task that could not read
/// the shuffle output of a worker that is gone ends the stage with [`JobError::InputLost`]; a
/// user's failure past `max_attempts`, or a cancel, fails the job after stopping the rest.
pub(super) async fn run_tasks(
    job: &mut JobRun,
    stage_index: usize,
    specs: Vec<TaskSpec>,
    mut readers: Option<&mut Readers>,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    results: &mut [Option<Output>],
    attempts: &mut Attempts,
) -> Result<(), JobError> {
    let mut stage = StageRun::new(job, stage_index, specs);
    let control = stage.control.clone();
    while stage.done < stage.total {
        stage.show_progress(job);
        if job.cancelled() {
            stage.stop(job, outcomes).await;
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
        stage.requeue_lost(job, results, attempts);
        stage
            .launch_pending(job, eligible, attempts, outcomes)
            .await?;
        if job.speculation {
            stage.speculate(attempts);
        }
        stage.check_stranded(eligible)?;
        let outcome = tokio::select! {
            outcome = outcomes.recv() => {
                outcome.ok_or_else(|| JobError::Cluster("the scheduler stopped".into()))?
            }
            _ = &mut changed => continue,
            _ = job.cancel.changed() => continue,
            // A launch refused for a busy worker, or a retry's pause, is looked at this often.
            _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        stage
            .take_outcome(job, outcome, results, attempts, outcomes)
            .await?;
    }
    Ok(())
}

/// What one run of a stage keeps track of.
struct StageRun {
    index: usize,
    /// The stage's id (as task ids and the status name it).
    id: u32,
    job_id: String,
    control: Arc<ControlState>,
    total: usize,
    done: usize,
    /// Each task waiting for a slot, with when it may be launched (a retry waits a little).
    pending: VecDeque<(TaskSpec, Instant)>,
    /// Launched attempts not yet heard the end of, with their worker.
    running: HashMap<TaskId, (String, TaskSpec)>,
    /// The first attempt of each task this run was given, by partition: what a task whose output
    /// was lost runs again from.
    specs: HashMap<u32, TaskSpec>,
    /// [`ControlState::losses`] when this run last looked for lost output.
    seen_losses: u64,
    /// Since when tasks have waited with none running and no worker able to take them.
    stranded: Option<Instant>,
    /// Attempts of each task lost to the infrastructure, and failed by the user's code, so far.
    lost_attempts: HashMap<u32, u32>,
    failed_attempts: HashMap<u32, u32>,
    /// Workers set aside, not tried again by this stage until then: one a launch failed on, or
    /// one whose attempts kept failing for reasons of its own (Spark's excludeOnFailure); and what
    /// set the last one aside.
    excluded: HashMap<String, Instant>,
    set_aside: Option<String>,
    /// The last attempt lost to the infrastructure, and why (`ID on WORKER: MESSAGE`).
    last_lost: Option<String>,
    /// Attempts that failed on each worker for the infrastructure's reasons, the worker still
    /// there.
    failed_on: HashMap<String, u32>,
    /// Speculation: when each running attempt started, how long the stage's finished ones took,
    /// the tasks given a second attempt, and the worker each second attempt must avoid.
    started: HashMap<TaskId, Instant>,
    took: Vec<Duration>,
    speculated: HashSet<u32>,
    avoid: HashMap<TaskId, String>,
}

impl StageRun {
    fn new(job: &JobRun, index: usize, specs: Vec<TaskSpec>) -> StageRun {
        StageRun {
            index,
            id: job.status.borrow().stages[index].stage,
            job_id: job.job_id(),
            control: job.control.clone(),
            total: specs.len(),
            done: 0,
            specs: specs.iter().map(|s| (s.id.partition, s.clone())).collect(),
            seen_losses: job.control.losses(),
            pending: specs.into_iter().map(|s| (s, Instant::now())).collect(),
            running: HashMap::new(),
            stranded: None,
            lost_attempts: HashMap::new(),
            failed_attempts: HashMap::new(),
            excluded: HashMap::new(),
            set_aside: None,
            last_lost: None,
            failed_on: HashMap::new(),
            started: HashMap::new(),
            took: Vec::new(),
            speculated: HashSet::new(),
            avoid: HashMap::new(),
        }
    }

    /// Shows what running tasks have read so far, as heartbeats report it: live progress.
    fn show_progress(&self, job: &mut JobRun) {
        let in_flight = self.control.stage_progress(&self.job_id, self.id);
        let shown = {
            let status = job.status.borrow();
            let st = &status.stages[self.index];
            (st.records_in_running, st.bytes_in_running)
        };
        if in_flight != shown {
            job.update(false, |s| {
                let st = &mut s.stages[self.index];
                (st.records_in_running, st.bytes_in_running) = in_flight;
            });
        }
    }

    /// Runs again, at once, the tasks of this stage that finished on a worker lost since (their
    /// shuffle output went with it), as Spark resubmits a lost executor's map tasks: the stage
    /// ends with all its output there, rather than finding it missing when the next one starts.
    fn requeue_lost(
        &mut self,
        job: &mut JobRun,
        results: &mut [Option<Output>],
        attempts: &mut Attempts,
    ) {
        let gone = |o: &Output, live: &HashSet<String>| {
            o.result.blocks.iter().any(|b| !live.contains(&b.worker_id))
        };
        // Looked at only when a worker was dropped since the last look, not at every turn.
        let losses = self.control.losses();
        if losses == self.seen_losses {
            return;
        }
        self.seen_losses = losses;
        let live = self.control.live_workers();
        for (partition, spec) in &self.specs {
            let slot = &mut results[*partition as usize];
            if !slot.as_ref().is_some_and(|o| gone(o, &live)) {
                continue;
            }
            let Some(lost) = slot.take() else { continue };
            tracing::info!(job = %self.job_id, stage = self.id, partition,
                "output lost with its worker; running the task again");
            job.update(true, |s| uncount(&mut s.stages[self.index], &lost.result));
            self.done -= 1;
            let again = next_attempt(spec.clone(), self.index, attempts);
            self.pending.push_back((again, Instant::now()));
        }
    }

    /// Launches pending tasks, in order, on free slots of workers that suit them; one waiting out
    /// its retry pause lets those behind it go first. Fails the job when a task's launches have
    /// failed [`MAX_INFRA_ATTEMPTS`] times.
    async fn launch_pending(
        &mut self,
        job: &mut JobRun,
        eligible: Option<&HashSet<String>>,
        attempts: &mut Attempts,
        outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    ) -> Result<(), JobError> {
        let now = Instant::now();
        self.excluded.retain(|_, until| *until > now);
        let mut waiting = VecDeque::new();
        while let Some((spec, not_before)) = self.pending.pop_front() {
            if not_before > now {
                waiting.push_back((spec, not_before));
                continue;
            }
            let shunned = self.avoid.get(&spec.id);
            let Some((worker, conn)) = self.control.acquire(&spec.id, |w| {
                usable(w, &spec, eligible, &self.excluded).filter(|_| shunned != Some(&w.id))
            }) else {
                waiting.push_back((spec, not_before));
                break;
            };
            match conn.launch(&spec).await {
                Ok(Launch::Accepted) => {
                    self.started.insert(spec.id.clone(), Instant::now());
                    self.running.insert(spec.id.clone(), (worker, spec));
                    job.update(false, |s| s.stages[self.index].tasks_running += 1);
                }
                Ok(Launch::Refused(reason)) => {
                    // The worker is busier than the scheduler thought (e.g. it still finishes a
                    // killed attempt): try again when something changes.
                    tracing::debug!(task = %spec.id, %worker, %reason, "launch refused");
                    self.control.release(&worker, &spec.id);
                    waiting.push_back((spec, not_before));
                    break;
                }
                Err(e) => {
                    // The worker cannot be reached (stopped, partitioned away): another may take
                    // the task, as a new attempt; this one is left alone for a while.
                    self.control.release(&worker, &spec.id);
                    let why = format!(
                        "launching {} on {worker}: {}",
                        spec.id,
                        weft_task::error_chain(&e)
                    );
                    tracing::warn!(job = %self.job_id, "{why}");
                    self.excluded
                        .insert(worker, now + self.control.worker_timeout());
                    let tries = self.lost_attempts.entry(spec.id.partition).or_default();
                    *tries += 1;
                    if *tries >= MAX_INFRA_ATTEMPTS {
                        self.stop(job, outcomes).await;
                        return Err(JobError::Cluster(why));
                    }
                    self.set_aside = Some(why);
                    waiting.push_back((next_attempt(spec, self.index, attempts), now));
                }
            }
        }
        waiting.extend(self.pending.drain(..));
        self.pending = waiting;
        Ok(())
    }

    /// Gives a straggler — running far longer than most of the stage's tasks took, once three
    /// quarters of them are done — a second attempt on another worker, as Spark's speculation
    /// does; the first of the two to finish wins.
    fn speculate(&mut self, attempts: &mut Attempts) {
        if self.done * 4 < self.total * 3 || self.took.is_empty() {
            return;
        }
        let mut sorted = self.took.clone();
        sorted.sort();
        let slow = (sorted[sorted.len() / 2] * 3 / 2).max(SPECULATION_MIN_RUNTIME);
        let stragglers: Vec<(TaskId, String, TaskSpec)> = self
            .running
            .iter()
            .filter(|(id, _)| !self.speculated.contains(&id.partition))
            .filter(|(id, _)| self.started.get(*id).is_some_and(|t| t.elapsed() > slow))
            .map(|(id, (worker, spec))| (id.clone(), worker.clone(), spec.clone()))
            .collect();
        for (id, worker, spec) in stragglers {
            self.speculated.insert(id.partition);
            let copy = next_attempt(spec, self.index, attempts);
            tracing::info!(task = %id, copy = %copy.id, %worker,
                "a straggler: a second attempt starts on another worker");
            self.avoid.insert(copy.id.clone(), worker);
            self.pending.push_front((copy, Instant::now()));
        }
    }

    /// Fails the job when tasks have waited, with nothing running, for a worker able to take
    /// them for a worker timeout: a job must end rather than hang on a cluster that lost its
    /// workers.
    fn check_stranded(&mut self, eligible: Option<&HashSet<String>>) -> Result<(), JobError> {
        if !self.running.is_empty() || self.pending.is_empty() {
            return Ok(());
        }
        let able = self
            .control
            .workers()
            .iter()
            .any(|w| usable(w, &self.pending[0].0, eligible, &self.excluded).is_some());
        if able {
            self.stranded = None;
            return Ok(());
        }
        let since = *self.stranded.get_or_insert_with(Instant::now);
        if since.elapsed() <= self.control.worker_timeout() {
            return Ok(());
        }
        Err(JobError::Cluster(format!(
            "no registered worker could take stage {}'s tasks for {} s ({} worker(s) registered; a \
             map task needs one that can read the input){}{}",
            self.pending[0].0.id.stage,
            self.control.worker_timeout().as_secs(),
            self.control.worker_count(),
            self.set_aside
                .as_deref()
                .map(|e| format!("; the last worker set aside: {e}"))
                .unwrap_or_default(),
            self.last_lost
                .as_deref()
                .map(|e| format!("; the last attempt lost: {e}"))
                .unwrap_or_default()
        )))
    }

    /// Takes in how an attempt ended.
    async fn take_outcome(
        &mut self,
        job: &mut JobRun,
        outcome: TaskOutcome,
        results: &mut [Option<Output>],
        attempts: &mut Attempts,
        outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    ) -> Result<(), JobError> {
        let Some((_, spec)) = self.running.remove(&outcome.id) else {
            // An attempt another one beat: recorded, nothing more. Anything else is not ours (an
            // attempt given up).
            if let Some((index, _)) = job.superseded.remove(&outcome.id) {
                account(job, index, &outcome);
            }
            return Ok(());
        };
        account(job, self.index, &outcome);
        let partition = outcome.id.partition;
        // Another attempt of the same task won already, or still runs (speculation): this one's
        // end decides nothing.
        let twin_running = self.running.keys().any(|id| id.partition == partition);
        if results[partition as usize].is_some() || (outcome.result.is_err() && twin_running) {
            job.update(true, |s| {
                let st = &mut s.stages[self.index];
                st.tasks_running -= 1;
                if outcome.result.is_err() {
                    st.tasks_failed += 1;
                }
            });
            return Ok(());
        }
        let TaskOutcome {
            id,
            worker_id,
            result,
            ..
        } = outcome;
        match result {
            Ok(result) => {
                self.succeeded(job, id, result, results).await;
                Ok(())
            }
            Err(failure) => {
                self.failed(job, spec, &worker_id, failure, attempts, outcomes)
                    .await
            }
        }
    }

    /// The first attempt of its task to succeed: its result counts, any other attempt of the task
    /// (a speculative twin) is stopped, or dropped if it has not started.
    async fn succeeded(
        &mut self,
        job: &mut JobRun,
        id: TaskId,
        result: TaskResult,
        results: &mut [Option<Output>],
    ) {
        let partition = id.partition;
        if let Some(at) = self.started.remove(&id) {
            self.took.push(at.elapsed());
        }
        self.pending
            .retain(|(spec, _)| spec.id.partition != partition);
        let losers: Vec<(TaskId, String)> = self
            .running
            .iter()
            .filter(|(other, _)| other.partition == partition)
            .map(|(other, (worker, _))| (other.clone(), worker.clone()))
            .collect();
        for (loser, worker) in losers {
            self.running.remove(&loser);
            job.superseded
                .insert(loser.clone(), (self.index, worker.clone()));
            job.update(false, |s| s.stages[self.index].tasks_running -= 1);
            if let Some(conn) = self.control.connection(&worker)
                && let Err(e) = conn.kill(&loser).await
            {
                tracing::warn!(task = %loser, %worker, error = %weft_task::error_chain(&e),
                    "cannot kill the slower attempt; its worker's next heartbeat will");
            }
        }
        let in_flight = self.control.stage_progress(&self.job_id, self.id);
        job.update(true, |s| {
            let st = &mut s.stages[self.index];
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
            attempt: id.attempt,
            result,
        });
        self.done += 1;
    }

    /// An attempt that failed, with no other attempt of its task running: run the task again
    /// (`Ok`) or fail the job. A task whose shuffle input was on a worker that is gone ends the
    /// stage with [`JobError::InputLost`].
    async fn failed(
        &mut self,
        job: &mut JobRun,
        spec: TaskSpec,
        worker: &str,
        failure: TaskFailure,
        attempts: &mut Attempts,
        outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    ) -> Result<(), JobError> {
        job.update(true, |s| {
            let st = &mut s.stages[self.index];
            st.tasks_running -= 1;
            st.tasks_failed += 1;
        });
        let partition = spec.id.partition;
        if failure.guest_fault {
            let failed = self.failed_attempts.entry(partition).or_default();
            *failed += 1;
            if *failed < job.max_attempts {
                tracing::info!(task = %spec.id, error = %failure.message,
                    "attempt failed; running the task again ([retry] max_attempts)");
                let retry = next_attempt(spec, self.index, attempts);
                self.pending.push_back((retry, Instant::now()));
                return Ok(());
            }
        } else {
            // A peer it could not fetch from may be gone: asked at once, one that does not answer
            // is lost now rather than after its heartbeat timeout.
            if let Some(address) = &failure.unreachable {
                probe_peer(&self.control, address).await;
            }
            // Its input was on a worker that is gone: what wrote it must run again first.
            let live = self.control.live_workers();
            if let TaskInput::Shuffle { blocks, .. } = &spec.input
                && blocks.iter().any(|b| !live.contains(&b.worker_id))
            {
                self.stop(job, outcomes).await;
                // None of the stage's attempts runs now; the stage goes on after the lost output
                // is written again.
                job.update(false, |s| s.stages[self.index].tasks_running = 0);
                return Err(JobError::InputLost);
            }
            // A worker, still there, whose attempts keep failing (its disk, its memory, its
            // network) is left aside for the rest of the stage's retries.
            if failure.unreachable.is_none() && live.contains(worker) {
                let failures = self.failed_on.entry(worker.to_owned()).or_default();
                *failures += 1;
                if *failures >= EXCLUDE_AFTER_FAILURES {
                    let why = format!(
                        "{worker} failed {failures} attempts of stage {}, the last: {}",
                        self.id, failure.message
                    );
                    tracing::warn!(job = %self.job_id, "setting aside worker {why}");
                    self.excluded
                        .insert(worker.to_owned(), Instant::now() + EXCLUDED_FOR);
                    self.set_aside = Some(why);
                }
            }
            self.last_lost = Some(format!("{} on {worker}: {}", spec.id, failure.message));
            let tries = self.lost_attempts.entry(partition).or_default();
            *tries += 1;
            if *tries < MAX_INFRA_ATTEMPTS {
                tracing::info!(task = %spec.id, %worker, error = %failure.message,
                    "attempt lost; running the task again");
                // Lost with its worker: again at once, elsewhere. Otherwise a pause that grows,
                // so that a worker about to be found lost (a fetch from it failing) is, before the
                // task's attempts run out: together they last several worker timeouts.
                let pause = if live.contains(worker) {
                    self.control.worker_timeout() * *tries / 4
                } else {
                    Duration::ZERO
                };
                let retry = next_attempt(spec, self.index, attempts);
                self.pending.push_back((retry, Instant::now() + pause));
                return Ok(());
            }
        }
        self.stop(job, outcomes).await;
        // A kill this job did not ask for: the worker stopped (or another scheduler told it to);
        // say where, since the task's own message only says it was cancelled.
        let message = if failure.cancelled {
            format!(
                "killed on worker {worker}: {} (the worker is shutting down?)",
                failure.message
            )
        } else {
            failure.message
        };
        Err(JobError::Task {
            job: job.plan.job_name.clone(),
            stage: spec.id.stage,
            partition,
            message,
            guest_fault: failure.guest_fault,
        })
    }

    /// Kills every running attempt and waits for them to stop (they check between batches), so
    /// that nothing of the job still writes once the caller cleans up. An attempt that does not
    /// answer in time gets its slot back anyway; the worker's next heartbeat kills it.
    async fn stop(
        &mut self,
        job: &mut JobRun,
        outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
    ) {
        for (id, (worker, _)) in &self.running {
            if let Some(conn) = self.control.connection(worker)
                && let Err(e) = conn.kill(id).await
            {
                tracing::warn!(task = %id, %worker, error = %weft_task::error_chain(&e),
                    "cannot kill the attempt; its worker's next heartbeat will");
            }
        }
        let deadline = tokio::time::Instant::now() + STOP_PATIENCE;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, outcomes.recv()).await {
                Ok(Some(o)) => {
                    if self.running.remove(&o.id).is_some() {
                        account(job, self.index, &o);
                    } else if let Some((index, _)) = job.superseded.remove(&o.id) {
                        account(job, index, &o);
                    }
                }
                _ => break,
            }
        }
        for (id, (worker, _)) in self.running.drain() {
            self.control.release(&worker, &id);
        }
    }
}

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

/// The same task as `spec`, as its next attempt (numbered on from every attempt the job made of
/// it, so that no two share a number).
fn next_attempt(mut spec: TaskSpec, stage_index: usize, attempts: &mut Attempts) -> TaskSpec {
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
pub(super) fn account(job: &mut JobRun, stage_index: usize, outcome: &TaskOutcome) {
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
