//! Runs a [`Plan`] on the registered workers: stage by stage, each task on a free slot (a reduce
//! task preferably on the worker that holds most of its input), the job's output staged and
//! committed at the end, its shuffle files released either way.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use weft_host::SandboxLimits;
use weft_io::OutputCommitter;
use weft_proto::v1 as pb;
use weft_worker::StepRef;
use weft_worker::task::{BlockLocation, TaskId, TaskInput, TaskOutput, TaskResult, TaskSpec};

use super::control::{ControlState, WorkerEntry};
use super::{JobError, JobReport, StageReport};
use crate::Tenant;
use crate::job::{InputFormat, OutputFormat, Plan, ResolvedStep, StageInput, StageOutput};

fn step_ref(step: &ResolvedStep) -> StepRef {
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

/// Runs `plan` as job `job_id`.
pub(crate) async fn run(
    control: &ControlState,
    tenant: &Tenant,
    plan: &Plan,
    job_id: &str,
    overwrite: bool,
    limits: &SandboxLimits,
) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let output_dir = plan
        .stages
        .iter()
        .find_map(|s| match &s.output {
            StageOutput::Output { path, .. } => Some(path.clone()),
            StageOutput::Shuffle { .. } => None,
        })
        .ok_or_else(|| JobError::Cluster("the plan has no output stage".into()))?;
    let workers = control.workers();
    if workers.is_empty() {
        return Err(JobError::Cluster("no worker is registered".into()));
    }
    let committer = OutputCommitter::begin(&output_dir, overwrite).map_err(JobError::Output)?;
    let mut outcomes = control.subscribe(job_id);
    let result = run_stages(
        &workers,
        tenant,
        plan,
        job_id,
        committer.staging_dir().to_owned(),
        limits,
        &mut outcomes,
    )
    .await;
    control.unsubscribe(job_id);
    for w in &workers {
        let _ = w
            .client
            .clone()
            .release_job(pb::ReleaseJobRequest {
                job_id: job_id.to_owned(),
            })
            .await;
    }
    match result {
        Ok(stages) => {
            committer.commit().map_err(JobError::Output)?;
            Ok(JobReport {
                job_id: job_id.to_owned(),
                output: output_dir,
                stages,
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            let _ = committer.abort();
            Err(e)
        }
    }
}

async fn run_stages(
    workers: &[WorkerEntry],
    tenant: &Tenant,
    plan: &Plan,
    job_id: &str,
    staging: PathBuf,
    limits: &SandboxLimits,
    outcomes: &mut tokio::sync::mpsc::UnboundedReceiver<weft_worker::service::convert::TaskOutcome>,
) -> Result<Vec<StageReport>, JobError> {
    let mut finished: HashMap<u32, Vec<TaskResult>> = HashMap::new();
    let mut reports = Vec::new();
    for stage in &plan.stages {
        let steps: Vec<StepRef> = stage.steps.iter().map(step_ref).collect();
        let output = match &stage.output {
            StageOutput::Shuffle {
                partitions,
                combiner,
            } => TaskOutput::Shuffle {
                partitions: *partitions,
                combiner: combiner.as_ref().map(step_ref),
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
                    job: job_id.to_owned(),
                    stage: stage.id,
                    partition,
                    attempt: 0,
                },
                tenant: tenant.to_string(),
                job_name: plan.job_name.clone(),
                steps: steps.clone(),
                input,
                output,
                limits: limits.clone(),
            }
        };
        match &stage.input {
            StageInput::Splits { format, splits } => {
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

        let results = run_tasks(workers, plan, specs, outcomes).await?;
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

/// Runs one stage's tasks to completion, or fails on the first failed task after killing the rest.
async fn run_tasks(
    workers: &[WorkerEntry],
    plan: &Plan,
    specs: Vec<TaskSpec>,
    outcomes: &mut tokio::sync::mpsc::UnboundedReceiver<weft_worker::service::convert::TaskOutcome>,
) -> Result<Vec<TaskResult>, JobError> {
    let total = specs.len();
    let mut results: Vec<Option<TaskResult>> = vec![None; total];
    let mut pending: VecDeque<TaskSpec> = specs.into();
    let mut free: Vec<u32> = workers.iter().map(|w| w.slots).collect();
    let mut running: HashMap<TaskId, usize> = HashMap::new();
    let mut done = 0;
    let mut next = 0usize;

    while done < total {
        // Launch while there are tasks and free slots.
        while let Some(spec) = pending.front() {
            let Some(w) = pick_worker(workers, &free, spec, &mut next) else {
                break;
            };
            let spec = pending.pop_front().expect("front exists");
            let reply = match workers[w]
                .client
                .clone()
                .launch_task(pb::TaskDefinition::from(&spec))
                .await
            {
                Ok(reply) => reply.into_inner(),
                Err(status) => {
                    stop_running(workers, &mut running, outcomes).await;
                    return Err(JobError::Cluster(format!(
                        "launching {} on {}: {}",
                        spec.id,
                        workers[w].id,
                        status.message()
                    )));
                }
            };
            if reply.accepted {
                free[w] -= 1;
                running.insert(spec.id.clone(), w);
            } else {
                // The worker is busier than we thought: treat it as full until a task ends there.
                free[w] = 0;
                pending.push_front(spec);
            }
        }

        let outcome = outcomes
            .recv()
            .await
            .ok_or_else(|| JobError::Cluster("the scheduler stopped".into()))?;
        let Some(w) = running.remove(&outcome.id) else {
            continue; // not ours (a superseded attempt)
        };
        free[w] += 1;
        match outcome.result {
            Ok(result) => {
                results[outcome.id.partition as usize] = Some(result);
                done += 1;
            }
            Err(failure) => {
                stop_running(workers, &mut running, outcomes).await;
                return Err(JobError::Task {
                    job: plan.job_name.clone(),
                    stage: outcome.id.stage,
                    partition: outcome.id.partition,
                    message: failure.message,
                    guest_fault: failure.guest_fault,
                });
            }
        }
    }
    Ok(results.into_iter().map(Option::unwrap_or_default).collect())
}

/// Kills every running attempt and waits for them to stop (they check between batches), so that
/// nothing of the job still writes once the caller cleans up.
async fn stop_running(
    workers: &[WorkerEntry],
    running: &mut HashMap<TaskId, usize>,
    outcomes: &mut tokio::sync::mpsc::UnboundedReceiver<weft_worker::service::convert::TaskOutcome>,
) {
    for (id, w) in running.iter() {
        let _ = workers[*w]
            .client
            .clone()
            .kill_task(pb::TaskAttemptId::from(id))
            .await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, outcomes.recv()).await {
            Ok(Some(o)) => {
                running.remove(&o.id);
            }
            _ => break,
        }
    }
}

/// A worker with a free slot for `spec`: for a shuffle read, the one holding most of its bytes if
/// it is free; otherwise the next free one in turn.
fn pick_worker(
    workers: &[WorkerEntry],
    free: &[u32],
    spec: &TaskSpec,
    next: &mut usize,
) -> Option<usize> {
    if let TaskInput::Shuffle { blocks, .. } = &spec.input {
        let mut bytes: HashMap<&str, u64> = HashMap::new();
        for b in blocks {
            *bytes.entry(b.worker_id.as_str()).or_default() += b.bytes;
        }
        if let Some((best, _)) = bytes.iter().max_by_key(|(_, b)| **b)
            && let Some(w) = workers.iter().position(|w| w.id == *best)
            && free[w] > 0
        {
            return Some(w);
        }
    }
    for i in 0..workers.len() {
        let w = (*next + i) % workers.len();
        if free[w] > 0 {
            *next = w + 1;
            return Some(w);
        }
    }
    None
}
