//! From a plan to the task contract: the [`TaskSpec`]s of a stage, and the fresh [`JobStatus`] of
//! a planned job. Pure functions of the plan, so what a worker is sent is testable without one.

use std::path::Path;

use weft_io::DataRoots;

use weft_io::OnError;
use weft_task::{BlockLocation, StepRef, TaskId, TaskInput, TaskLimits, TaskOutput, TaskSpec};

use crate::Tenant;
use crate::job::{Plan, ResolvedStep, Stage, StageInput, StageOutput};
use crate::jobs::{JobState, JobStatus, StageStatus, now_ms};

/// A resolved step as a worker runs it.
pub(crate) fn step_ref(step: &ResolvedStep) -> StepRef {
    StepRef {
        kind: step.kind,
        module: step.module.to_string(),
        function: step.function.clone(),
        label: format!("{}@{}", step.module_name, step.module_version),
    }
}

/// What every task of a job shares.
#[derive(Debug, Clone)]
pub(crate) struct JobTasks<'a> {
    pub job_id: &'a str,
    pub tenant: &'a Tenant,
    pub job_name: &'a str,
    pub limits: TaskLimits,
    /// The tenant's data roots, when the cluster restricts them.
    pub roots: Option<&'a DataRoots>,
    /// The job's output staging directory (quarantined records go in it).
    pub staging_dir: &'a Path,
    /// Where attempts write their parts, each under its own name, until the commit keeps one per
    /// partition ([`weft_io::OutputCommitter::attempts_dir`]).
    pub parts_dir: &'a Path,
}

impl JobTasks<'_> {
    /// The first attempts of `stage`'s tasks, one per split or partition in order. A shuffle
    /// stage's task for partition `p` reads the blocks of `p` among `parent_blocks` (every block
    /// its parent stage wrote).
    pub fn stage(&self, stage: &Stage, parent_blocks: &[BlockLocation]) -> Vec<TaskSpec> {
        let steps: Vec<StepRef> = stage.steps.iter().map(step_ref).collect();
        let output = |partition: u32| match &stage.output {
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
                staging_dir: self.parts_dir.to_owned(),
                part: partition,
                format: *format,
            },
        };
        let task = |partition: u32, input: TaskInput| TaskSpec {
            id: TaskId {
                job: self.job_id.to_owned(),
                stage: stage.id,
                partition,
                attempt: 0,
            },
            tenant: self.tenant.to_string(),
            job_name: self.job_name.to_owned(),
            steps: steps.clone(),
            input,
            output: output(partition),
            limits: self.limits,
            roots: self.roots.cloned(),
        };
        let keys_unused = !stage.reads_input_keys();
        match &stage.input {
            StageInput::Splits {
                format,
                splits,
                on_error,
            } => splits
                .iter()
                .zip(0..)
                .map(|(split, partition)| {
                    task(
                        partition,
                        TaskInput::Split {
                            split: split.clone(),
                            format: *format,
                            on_error: *on_error,
                            // Committed with the output, beside its parts.
                            quarantine_dir: (*on_error == OnError::Quarantine)
                                .then(|| self.staging_dir.join(weft_io::BAD_RECORDS_DIR)),
                            keys_unused,
                        },
                    )
                })
                .collect(),
            StageInput::Shuffle {
                partitions,
                wide_step,
                ..
            } => (0..*partitions)
                .map(|partition| {
                    let blocks = parent_blocks
                        .iter()
                        .filter(|b| b.partition == partition)
                        .cloned()
                        .collect();
                    task(
                        partition,
                        TaskInput::Shuffle {
                            wide: step_ref(wide_step),
                            blocks,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// The status of a job just accepted: queued, every stage's tasks to do.
pub(crate) fn initial_status(job_id: &str, tenant: &Tenant, plan: &Plan) -> JobStatus {
    JobStatus {
        job_id: job_id.to_owned(),
        tenant: tenant.to_string(),
        name: plan.job_name.clone(),
        state: JobState::Queued,
        error: None,
        output: plan
            .output_dir()
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
        usage: Default::default(),
        waiting: None,
    }
}

/// `module@version/function`.
fn step_name(s: &ResolvedStep) -> String {
    format!("{}@{}/{}", s.module_name, s.module_version, s.function)
}
