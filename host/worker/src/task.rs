//! What a task is, in the worker's own terms: the domain side of `TaskDefinition`/`TaskStatus`.

use std::fmt;
use std::path::PathBuf;

use weft_host::SandboxLimits;
use weft_io::{InputFormat, InputSplit, OutputFormat};

use crate::StepRef;

/// One attempt of one task. Every retry gets a new attempt number, so a late report or the shuffle
/// files of a superseded attempt are never mistaken for the current one's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskId {
    pub job: String,
    pub stage: u32,
    pub partition: u32,
    pub attempt: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stage {} partition {} attempt {}",
            self.job, self.stage, self.partition, self.attempt
        )
    }
}

/// Where a shuffle block lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLocation {
    pub worker_id: String,
    pub worker_address: String,
    pub map_task: TaskId,
    pub partition: u32,
    pub bytes: u64,
    pub records: u64,
}

/// What a task reads.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskInput {
    /// A byte range of an input file.
    Split {
        split: InputSplit,
        format: InputFormat,
    },
    /// Every map task's block for this reduce partition; `wide` runs over each key's values.
    Shuffle {
        wide: StepRef,
        blocks: Vec<BlockLocation>,
    },
}

/// Where a task's output goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutput {
    /// Hash-partitioned shuffle files, combined with `combiner` first when the consumer reduces.
    Shuffle {
        partitions: u32,
        combiner: Option<StepRef>,
    },
    /// One part file of the job's output, in the job's staging directory.
    Part {
        staging_dir: PathBuf,
        part: u32,
        format: OutputFormat,
    },
}

/// Everything a worker needs to run one task attempt.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub id: TaskId,
    pub tenant: String,
    pub job_name: String,
    /// The fused narrow steps, run after the wide step of a shuffle input.
    pub steps: Vec<StepRef>,
    pub input: TaskInput,
    pub output: TaskOutput,
    pub limits: SandboxLimits,
}

impl TaskSpec {
    /// Every step the task runs a guest for: the wide step, the narrow ones, the combiner.
    pub fn all_steps(&self) -> Vec<&StepRef> {
        let mut all = Vec::new();
        if let TaskInput::Shuffle { wide, .. } = &self.input {
            all.push(wide);
        }
        all.extend(self.steps.iter());
        if let TaskOutput::Shuffle {
            combiner: Some(c), ..
        } = &self.output
        {
            all.push(c);
        }
        all
    }
}

/// What a finished task reports. Counts are taken where data crosses a task's boundary, so one
/// stage's output equals the next stage's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskResult {
    /// Records read: input lines, or shuffle records fetched.
    pub records_in: u64,
    /// Records written: shuffle records after the map-side combine, or output records.
    pub records_out: u64,
    /// Bytes read: the split's length, or the shuffle blocks' size (Arrow IPC).
    pub bytes_in: u64,
    /// Bytes written: shuffle files (Arrow IPC), or the part file.
    pub bytes_out: u64,
    /// Shuffle output: one block per non-empty reduce partition.
    pub blocks: Vec<BlockLocation>,
    /// Shuffle input: blocks fetched from other workers.
    pub remote_fetches: u64,
}

/// Bytes of guest stdout, and of guest stderr, a task reports: enough for a panic message and a
/// page of logging, small enough that a chatty guest cannot bloat every task report.
pub const MAX_TASK_OUTPUT: usize = 64 << 10;

/// What a task's guests wrote to stdout and stderr, for `weft job logs`. Each stream keeps its first
/// [`MAX_TASK_OUTPUT`] bytes (the head, as the sandbox's own capture does: what is kept is always a
/// prefix of what the guest wrote); `truncated` says that something was cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

impl GuestOutput {
    /// Both streams, each cut to [`MAX_TASK_OUTPUT`] bytes. `truncated` is set if either was cut, or
    /// if the caller already knows something was (e.g. a peer said so).
    pub fn capped(mut stdout: Vec<u8>, mut stderr: Vec<u8>, truncated: bool) -> GuestOutput {
        let cut = stdout.len() > MAX_TASK_OUTPUT || stderr.len() > MAX_TASK_OUTPUT;
        stdout.truncate(MAX_TASK_OUTPUT);
        stderr.truncate(MAX_TASK_OUTPUT);
        GuestOutput {
            stdout,
            stderr,
            truncated: truncated || cut,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}
