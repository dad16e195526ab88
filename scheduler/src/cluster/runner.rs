//! Runs one job's [`Plan`] on the registered workers: it waits (queued) until a worker is there,
//! checks which workers can read the input, then runs stage after stage — each task on a free slot
//! taken from the cluster-wide pool, preferring the worker that holds most of a reduce task's input
//! and workers that already hold the step's modules compiled — and commits the output at the end.
//! Progress goes to the job's status (watched by clients) and, at every task end, to the job store.
//! The first failed task, a lost worker or a cancel stops the job: running tasks are killed and
//! waited for, the output is aborted, and the job's shuffle files are released either way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use weft_host::SandboxLimits;
use weft_io::OutputCommitter;
use weft_proto::v1 as pb;
use weft_worker::StepRef;
use weft_worker::service::convert::TaskOutcome;
use weft_worker::task::{BlockLocation, TaskId, TaskInput, TaskOutput, TaskResult, TaskSpec};

use super::control::{ControlState, WorkerEntry};
use super::{JobError, JobReport, StageReport};
use crate::Tenant;
use crate::job::{InputFormat, OutputFormat, Plan, ResolvedStep, StageInput, StageOutput};
use crate::jobs::store::{JobRecord, TaskRecord};
use crate::jobs::{JobState, JobStatus, JobStore, StageStatus, TaskLog, now_ms};

pub(crate) fn step_ref(step: &ResolvedStep) -> StepRef {
    StepRef {
        kind: step.kind,
        module: step.module.to_string(),
        function: step.function.clone(),
        label: format!("{}@{}", step.module_name, step.module_version),
    }
}

fn input_format(format: InputFormat) -> weft_io::InputFormat {
    match format {
        InputFormat::Text => weft_io::InputFormat::Text,
        InputFormat::Csv { header, .. } => weft_io::InputFormat::Csv { header },
        InputFormat::Jsonl => weft_io::InputFormat::Jsonl,
    }
}

fn output_format(format: OutputFormat) -> weft_io::OutputFormat {
    match format {
        OutputFormat::Text => weft_io::OutputFormat::Text,
        OutputFormat::Jsonl => weft_io::OutputFormat::Jsonl,
    }
}

/// The output directory of a plan (its last stage's).
pub(crate) fn output_dir(plan: &Plan) -> Option<PathBuf> {
    plan.stages.iter().find_map(|s| match &s.output {
        StageOutput::Output { path, .. } => Some(path.clone()),
        StageOutput::Shuffle { .. } => None,
    })
}

/// The input files a plan reads (each once).
pub(crate) fn input_paths(plan: &Plan) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    for stage in &plan.stages {
        if let StageInput::Splits { splits, .. } = &stage.input {
            for s in splits {
                let p = s.path.to_string_lossy().into_owned();
                if seen.insert(p.clone()) {
                    paths.push(p);
                }
            }
        }
    }
    paths
}

/// The fresh status of a planned job.
pub(crate) fn initial_status(job_id: &str, tenant: &Tenant, plan: &Plan) -> JobStatus {
    JobStatus {
        job_id: job_id.to_owned(),
        tenant: tenant.to_string(),
        name: plan.job_name.clone(),
        state: JobState::Queued,
        error: None,
        output: output_dir(plan)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        submitted_ms: now_ms(),
        started_ms: None,
        finished_ms: None,
        stages: plan
            .stages
            .iter()
            .map(|s| {
                let mut steps = Vec::new();
                if let StageInput::Shuffle { wide_step, .. } = &s.input {
                    steps.push(step_name(wide_step));
                }
                steps.extend(s.steps.iter().map(step_name));
                StageStatus {
                    stage: s.id,
                    parents: s.parents.clone(),
                    steps,
                    tasks_total: s.tasks,
                    ..StageStatus::default()
                }
            })
            .collect(),
    }
}

fn step_name(s: &ResolvedStep) -> String {
    format!("{}@{}/{}", s.module_name, s.module_version, s.function)
}

/// Everything one job's run needs.
pub(crate) struct JobRun {
    pub control: Arc<ControlState>,
    pub store: JobStore,
    pub record: JobRecord,
    pub status: watch::Sender<JobStatus>,
    pub cancel: watch::Receiver<bool>,
    pub tenant: Tenant,
    pub plan: Plan,
    pub overwrite: bool,
    pub limits: SandboxLimits,
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
                tracing::warn!(job = %self.record.status.job_id, "{e}");
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
    let (state, error) = match &result {
        Ok(_) => (JobState::Succeeded, None),
        Err(JobError::Cancelled) => (JobState::Cancelled, Some("cancelled".to_owned())),
        Err(e) => (JobState::Failed, Some(e.to_string())),
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
        output: output_dir(&job.plan).unwrap_or_default(),
        stages,
        elapsed: started.elapsed(),
    })
}

async fn run_inner(job: &mut JobRun) -> Result<Vec<StageReport>, JobError> {
    let output_dir = output_dir(&job.plan)
        .ok_or_else(|| JobError::Cluster("the plan has no output stage".into()))?;
    // Queued until some worker is there.
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
        s.started_ms = Some(now_ms());
    });
    let readers = input_readers(&job.control, &input_paths(&job.plan)).await?;
    let committer = OutputCommitter::begin(&output_dir, job.overwrite).map_err(JobError::Output)?;
    let job_id = job.job_id();
    let mut outcomes = job.control.subscribe(&job_id);
    let result = run_stages(
        job,
        &readers,
        committer.staging_dir().to_owned(),
        &mut outcomes,
    )
    .await;
    job.control.unsubscribe(&job_id);
    // Shuffle files are released on every worker, whatever happened.
    for w in job.control.workers() {
        let _ = w
            .client
            .clone()
            .release_job(pb::ReleaseJobRequest {
                job_id: job_id.clone(),
            })
            .await;
    }
    match result {
        Ok(stages) => {
            committer.commit().map_err(JobError::Output)?;
            Ok(stages)
        }
        Err(e) => {
            let _ = committer.abort();
            Err(e)
        }
    }
}

/// The workers that can read every input path; an error naming what each worker said when none can.
pub(crate) async fn input_readers(
    control: &ControlState,
    paths: &[String],
) -> Result<HashSet<String>, JobError> {
    let mut readers = HashSet::new();
    let mut refusals = Vec::new();
    for w in control.workers() {
        let reply = w
            .client
            .clone()
            .check_paths(pb::CheckPathsRequest {
                paths: paths.to_vec(),
            })
            .await;
        match reply {
            Ok(reply) => {
                let errors = reply.into_inner().errors;
                match paths.iter().zip(&errors).find(|(_, e)| !e.is_empty()) {
                    None if errors.len() == paths.len() => {
                        readers.insert(w.id.clone());
                    }
                    None => refusals.push(format!("{}: malformed reply", w.id)),
                    Some((path, e)) => refusals.push(format!("{} cannot read {path}: {e}", w.id)),
                }
            }
            Err(status) => refusals.push(format!("{}: {}", w.id, status.message())),
        }
    }
    if readers.is_empty() {
        return Err(JobError::Input(format!(
            "no worker can read the job's input ({}); inputs must be on a file system every \
             worker can read, at the same path",
            if refusals.is_empty() {
                "no worker is registered".to_owned()
            } else {
                refusals.join("; ")
            }
        )));
    }
    Ok(readers)
}

async fn run_stages(
    job: &mut JobRun,
    readers: &HashSet<String>,
    staging: PathBuf,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
) -> Result<Vec<StageReport>, JobError> {
    let mut finished: HashMap<u32, Vec<TaskResult>> = HashMap::new();
    let mut reports = Vec::new();
    let plan = job.plan.clone();
    for (index, stage) in plan.stages.iter().enumerate() {
        let steps: Vec<StepRef> = stage.steps.iter().map(step_ref).collect();
        let output = match &stage.output {
            StageOutput::Shuffle {
                partitions,
                combiner,
                compression,
            } => TaskOutput::Shuffle {
                partitions: *partitions,
                combiner: combiner.as_ref().map(step_ref),
                compression: *compression,
            },
            StageOutput::Output { format, .. } => TaskOutput::Part {
                staging_dir: staging.clone(),
                part: 0,
                format: output_format(*format),
            },
        };
        let mut specs: Vec<TaskSpec> = Vec::new();
        let make = |partition: u32, input: TaskInput| {
            let mut output = output.clone();
            if let TaskOutput::Part { part, .. } = &mut output {
                *part = partition;
            }
            TaskSpec {
                id: TaskId {
                    job: job.record.status.job_id.clone(),
                    stage: stage.id,
                    partition,
                    attempt: 0,
                },
                tenant: job.tenant.to_string(),
                job_name: plan.job_name.clone(),
                steps: steps.clone(),
                input,
                output,
                limits: job.limits.clone(),
            }
        };
        let mut eligible = None;
        match &stage.input {
            StageInput::Splits { format, splits } => {
                eligible = Some(readers);
                for (i, s) in splits.iter().enumerate() {
                    specs.push(make(
                        i as u32,
                        TaskInput::Split {
                            split: weft_io::InputSplit {
                                path: s.path.clone(),
                                start: s.start,
                                length: s.length,
                            },
                            format: input_format(*format),
                        },
                    ));
                }
            }
            StageInput::Shuffle {
                parent,
                partitions,
                wide_step,
            } => {
                let blocks: Vec<&BlockLocation> = finished
                    .get(parent)
                    .map(|r| r.iter().flat_map(|t| t.blocks.iter()).collect())
                    .unwrap_or_default();
                for p in 0..*partitions {
                    let mine = blocks
                        .iter()
                        .filter(|b| b.partition == p)
                        .map(|b| (*b).clone())
                        .collect();
                    specs.push(make(
                        p,
                        TaskInput::Shuffle {
                            wide: step_ref(wide_step),
                            blocks: mine,
                        },
                    ));
                }
            }
        }

        let results = run_tasks(job, index, specs, eligible, outcomes).await?;
        reports.push(StageReport {
            stage: stage.id,
            tasks: results.len() as u32,
            records_in: results.iter().map(|r| r.records_in).sum(),
            records_out: results.iter().map(|r| r.records_out).sum(),
            bytes_in: results.iter().map(|r| r.bytes_in).sum(),
            bytes_out: results.iter().map(|r| r.bytes_out).sum(),
            remote_fetches: results.iter().map(|r| r.remote_fetches).sum(),
        });
        finished.insert(stage.id, results);
    }
    Ok(reports)
}

/// How much `worker` suits `spec`: `None` when it cannot run it (it cannot read the input);
/// otherwise higher for the worker holding most of a shuffle read's bytes (a local read), and for
/// one that has the task's modules compiled already.
fn score(worker: &WorkerEntry, spec: &TaskSpec, eligible: Option<&HashSet<String>>) -> Option<i64> {
    if let Some(eligible) = eligible
        && !eligible.contains(&worker.id)
    {
        return None;
    }
    let mut score = 0i64;
    if let TaskInput::Shuffle { blocks, .. } = &spec.input {
        let total: u64 = blocks.iter().map(|b| b.bytes).sum();
        let local: u64 = blocks
            .iter()
            .filter(|b| b.worker_id == worker.id)
            .map(|b| b.bytes)
            .sum();
        // Local bytes dominate: moving data costs more than compiling once.
        if let Some(share) = (local * 1000).checked_div(total) {
            score += i64::try_from(share).unwrap_or(0) * 10;
        }
    }
    let modules = spec.all_steps();
    if modules.iter().all(|s| worker.has_compiled(&s.module)) {
        score += 1000;
    }
    Some(score)
}

/// Runs one stage's tasks to completion, or fails on the first failed task after stopping the
/// rest.
async fn run_tasks(
    job: &mut JobRun,
    stage_index: usize,
    specs: Vec<TaskSpec>,
    eligible: Option<&HashSet<String>>,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
) -> Result<Vec<TaskResult>, JobError> {
    let total = specs.len();
    let mut results: Vec<Option<TaskResult>> = vec![None; total];
    let mut pending: VecDeque<TaskSpec> = specs.into();
    let mut running: HashMap<TaskId, String> = HashMap::new();
    let mut done = 0;
    let control = job.control.clone();
    // Since when tasks have waited with none running and no worker able to take them.
    let mut stranded: Option<Instant> = None;

    while done < total {
        if job.cancelled() {
            stop_running(&control, &mut running, outcomes).await;
            return Err(JobError::Cancelled);
        }
        // Armed before trying, so a slot freed while we launch is not missed.
        let changed = control.changed().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();

        while let Some(spec) = pending.front() {
            let Some((worker, client)) = control.acquire(&spec.id, |w| score(w, spec, eligible))
            else {
                break;
            };
            let spec = pending.pop_front().expect("front exists");
            let reply = client
                .clone()
                .launch_task(pb::TaskDefinition::from(&spec))
                .await;
            match reply {
                Ok(reply) if reply.get_ref().accepted => {
                    running.insert(spec.id.clone(), worker);
                    job.update(false, |s| s.stages[stage_index].tasks_running += 1);
                }
                Ok(_) => {
                    // The worker is busier than the scheduler thought (e.g. it still finishes a
                    // killed attempt): try again when something changes.
                    control.release(&worker, &spec.id);
                    pending.push_front(spec);
                    break;
                }
                Err(status) => {
                    control.release(&worker, &spec.id);
                    stop_running(&control, &mut running, outcomes).await;
                    return Err(JobError::Cluster(format!(
                        "launching {} on {worker}: {}",
                        spec.id,
                        status.message()
                    )));
                }
            }
        }

        // Tasks that no worker can take, with nothing running, wait for a worker to (re)join, but
        // not forever: a job must end rather than hang on a cluster that lost its workers.
        if running.is_empty() && !pending.is_empty() {
            let able = control
                .workers()
                .iter()
                .any(|w| score(w, &pending[0], eligible).is_some());
            if able {
                stranded = None;
            } else {
                let since = *stranded.get_or_insert_with(Instant::now);
                if since.elapsed() > control.worker_timeout() {
                    return Err(JobError::Cluster(format!(
                        "no registered worker could take stage {}'s tasks for {} s ({} worker(s) \
                         registered; a map task needs one that can read the input)",
                        pending[0].id.stage,
                        control.worker_timeout().as_secs(),
                        control.worker_count()
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
            // A launch refused for a busy worker is retried at least this often.
            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
        };
        if running.remove(&outcome.id).is_none() {
            continue; // not ours (a superseded attempt)
        }
        record_task(job, &outcome);
        match outcome.result {
            Ok(result) => {
                job.update(true, |s| {
                    let st = &mut s.stages[stage_index];
                    st.tasks_running -= 1;
                    st.tasks_done += 1;
                    st.records_in += result.records_in;
                    st.records_out += result.records_out;
                    st.bytes_in += result.bytes_in;
                    st.bytes_out += result.bytes_out;
                    st.remote_fetches += result.remote_fetches;
                });
                results[outcome.id.partition as usize] = Some(result);
                done += 1;
            }
            Err(failure) => {
                job.update(true, |s| {
                    let st = &mut s.stages[stage_index];
                    st.tasks_running -= 1;
                    st.tasks_failed += 1;
                });
                stop_running(&control, &mut running, outcomes).await;
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
    Ok(results.into_iter().map(Option::unwrap_or_default).collect())
}

/// Keeps what a task attempt did, and what its guest printed, in the job store.
fn record_task(job: &JobRun, outcome: &TaskOutcome) {
    let id = &outcome.id;
    let record = match &outcome.result {
        Ok(r) => TaskRecord {
            worker_id: outcome.worker_id.clone(),
            succeeded: true,
            error: None,
            records_in: r.records_in,
            records_out: r.records_out,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            blocks: r.blocks.iter().map(|b| (b.partition, b.bytes)).collect(),
        },
        Err(f) => TaskRecord {
            worker_id: outcome.worker_id.clone(),
            error: Some(f.message.clone()),
            ..TaskRecord::default()
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
    let stored = job
        .store
        .put_task(&id.job, id.stage, id.partition, id.attempt, &record)
        .and_then(|()| job.store.put_log(&id.job, &log));
    if let Err(e) = stored {
        tracing::warn!(job = %id.job, "{e}");
    }
}

/// Kills every running attempt and waits for them to stop (they check between batches), so that
/// nothing of the job still writes once the caller cleans up. An attempt that does not answer in
/// time gets its slot back anyway; the worker's next heartbeat kills it.
async fn stop_running(
    control: &ControlState,
    running: &mut HashMap<TaskId, String>,
    outcomes: &mut mpsc::UnboundedReceiver<TaskOutcome>,
) {
    for (id, worker) in running.iter() {
        if let Some(mut client) = control.client(worker) {
            let _ = client.kill_task(pb::TaskAttemptId::from(id)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, outcomes.recv()).await {
            Ok(Some(o)) => {
                running.remove(&o.id);
            }
            _ => break,
        }
    }
    for (id, worker) in running.drain() {
        control.release(&worker, &id);
    }
}
