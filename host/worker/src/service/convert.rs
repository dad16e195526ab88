//! Conversions between the worker's domain types and the protobuf messages, done once at the
//! service edge. A missing or malformed field is an error naming it, never an `unwrap()`.

use std::path::PathBuf;
use std::time::Duration;

use weft_host::{SandboxLimits, UdfKind};
use weft_io::{InputFormat, InputSplit, OutputFormat};
use weft_proto::v1 as pb;

use crate::StepRef;
use crate::task::{
    BlockLocation, GuestOutput, ShuffleCompression, TaskId, TaskInput, TaskOutput, TaskResult,
    TaskSpec,
};

/// A message that cannot be turned into a domain value (here, and in the scheduler's conversions).
#[derive(Debug, thiserror::Error)]
#[error("invalid {field}: {detail}")]
pub struct ConvertError {
    /// The message, or the message and field, e.g. `Step` or `Udf.kind`.
    pub field: &'static str,
    pub detail: String,
}

/// The error for `field`.
pub fn bad(field: &'static str, detail: impl Into<String>) -> ConvertError {
    ConvertError {
        field,
        detail: detail.into(),
    }
}

pub fn kind_to_pb(kind: UdfKind) -> pb::UdfKind {
    match kind {
        UdfKind::Map => pb::UdfKind::Map,
        UdfKind::Filter => pb::UdfKind::Filter,
        UdfKind::FlatMap => pb::UdfKind::FlatMap,
        UdfKind::Reduce => pb::UdfKind::Reduce,
        UdfKind::GroupReduce => pb::UdfKind::GroupReduce,
    }
}

/// The kind a message's `field` holds; `UNSPECIFIED` or a number no kind has is an error naming
/// the field.
pub fn kind_from_pb(field: &'static str, kind: i32) -> Result<UdfKind, ConvertError> {
    match pb::UdfKind::try_from(kind) {
        Ok(pb::UdfKind::Map) => Ok(UdfKind::Map),
        Ok(pb::UdfKind::Filter) => Ok(UdfKind::Filter),
        Ok(pb::UdfKind::FlatMap) => Ok(UdfKind::FlatMap),
        Ok(pb::UdfKind::Reduce) => Ok(UdfKind::Reduce),
        Ok(pb::UdfKind::GroupReduce) => Ok(UdfKind::GroupReduce),
        Ok(pb::UdfKind::Unspecified) | Err(_) => {
            Err(bad(field, format!("unknown UDF kind {kind}")))
        }
    }
}

impl From<ShuffleCompression> for pb::ShuffleCompression {
    fn from(c: ShuffleCompression) -> pb::ShuffleCompression {
        match c {
            ShuffleCompression::None => pb::ShuffleCompression::None,
            ShuffleCompression::Lz4 => pb::ShuffleCompression::Lz4,
            ShuffleCompression::Zstd => pb::ShuffleCompression::Zstd,
        }
    }
}

/// `UNSPECIFIED` is what a scheduler that predates the field sends; it expects plain files.
fn compression_from_pb(compression: i32) -> Result<ShuffleCompression, ConvertError> {
    match pb::ShuffleCompression::try_from(compression) {
        Ok(pb::ShuffleCompression::Unspecified | pb::ShuffleCompression::None) => {
            Ok(ShuffleCompression::None)
        }
        Ok(pb::ShuffleCompression::Lz4) => Ok(ShuffleCompression::Lz4),
        Ok(pb::ShuffleCompression::Zstd) => Ok(ShuffleCompression::Zstd),
        Err(_) => Err(bad(
            "ShuffleWrite",
            format!("unknown shuffle compression {compression}"),
        )),
    }
}

impl From<&StepRef> for pb::Step {
    fn from(s: &StepRef) -> pb::Step {
        pb::Step {
            kind: kind_to_pb(s.kind) as i32,
            module_id: s.module.clone(),
            function: s.function.clone(),
            module_label: s.label.clone(),
        }
    }
}

impl TryFrom<pb::Step> for StepRef {
    type Error = ConvertError;
    fn try_from(s: pb::Step) -> Result<StepRef, ConvertError> {
        Ok(StepRef {
            kind: kind_from_pb("Step", s.kind)?,
            module: s.module_id,
            function: s.function,
            label: s.module_label,
        })
    }
}

/// Job ids become directory names on workers: only a safe alphabet is accepted.
fn check_job_id(job: &str) -> Result<(), ConvertError> {
    let ok = !job.is_empty()
        && job.len() <= 128
        && job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !job.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(bad("TaskAttemptId", format!("unsafe job id {job:?}")))
    }
}

impl From<&TaskId> for pb::TaskAttemptId {
    fn from(t: &TaskId) -> pb::TaskAttemptId {
        pb::TaskAttemptId {
            job_id: t.job.clone(),
            stage_id: t.stage,
            partition: t.partition,
            attempt: t.attempt,
        }
    }
}

impl TryFrom<pb::TaskAttemptId> for TaskId {
    type Error = ConvertError;
    fn try_from(t: pb::TaskAttemptId) -> Result<TaskId, ConvertError> {
        check_job_id(&t.job_id)?;
        Ok(TaskId {
            job: t.job_id,
            stage: t.stage_id,
            partition: t.partition,
            attempt: t.attempt,
        })
    }
}

fn required<T>(field: Option<T>, message: &'static str, name: &str) -> Result<T, ConvertError> {
    field.ok_or_else(|| bad(message, format!("missing field `{name}`")))
}

impl From<&BlockLocation> for pb::ShuffleBlock {
    fn from(b: &BlockLocation) -> pb::ShuffleBlock {
        pb::ShuffleBlock {
            worker_id: b.worker_id.clone(),
            worker_address: b.worker_address.clone(),
            map_task: Some((&b.map_task).into()),
            reduce_partition: b.partition,
            bytes: b.bytes,
            records: b.records,
        }
    }
}

impl TryFrom<pb::ShuffleBlock> for BlockLocation {
    type Error = ConvertError;
    fn try_from(b: pb::ShuffleBlock) -> Result<BlockLocation, ConvertError> {
        Ok(BlockLocation {
            worker_id: b.worker_id,
            worker_address: b.worker_address,
            map_task: required(b.map_task, "ShuffleBlock", "map_task")?.try_into()?,
            partition: b.reduce_partition,
            bytes: b.bytes,
            records: b.records,
        })
    }
}

impl From<&TaskSpec> for pb::TaskDefinition {
    fn from(t: &TaskSpec) -> pb::TaskDefinition {
        let input = match &t.input {
            TaskInput::Split { split, format } => {
                let (format, header) = match format {
                    InputFormat::Text => (pb::InputFormat::Text, false),
                    InputFormat::Csv { header } => (pb::InputFormat::Csv, *header),
                    InputFormat::Jsonl => (pb::InputFormat::Jsonl, false),
                };
                pb::partition_descriptor::Source::Split(pb::InputSplit {
                    path: split.path.to_string_lossy().into_owned(),
                    start: split.start,
                    length: split.length,
                    format: format as i32,
                    csv_header: header,
                    csv_delimiter: String::new(),
                })
            }
            TaskInput::Shuffle { wide, blocks } => {
                pb::partition_descriptor::Source::Shuffle(pb::ShuffleRead {
                    blocks: blocks.iter().map(Into::into).collect(),
                    wide_step: Some(wide.into()),
                })
            }
        };
        let output = match &t.output {
            TaskOutput::Shuffle {
                partitions,
                combiner,
                compression,
            } => pb::task_output::Sink::Shuffle(pb::ShuffleWrite {
                partitions: *partitions,
                combine: combiner.as_ref().map(Into::into),
                compression: pb::ShuffleCompression::from(*compression) as i32,
            }),
            TaskOutput::Part {
                staging_dir,
                part,
                format,
            } => pb::task_output::Sink::Part(pb::OutputPart {
                staging_dir: staging_dir.to_string_lossy().into_owned(),
                part: *part,
                format: match format {
                    OutputFormat::Text => pb::OutputFormat::Text,
                    OutputFormat::Jsonl => pb::OutputFormat::Jsonl,
                } as i32,
            }),
        };
        pb::TaskDefinition {
            id: Some((&t.id).into()),
            tenant: t.tenant.clone(),
            steps: t.steps.iter().map(Into::into).collect(),
            input: Some(pb::PartitionDescriptor {
                source: Some(input),
            }),
            output: Some(pb::TaskOutput { sink: Some(output) }),
            limits: Some(pb::SandboxLimits {
                max_memory_bytes: t.limits.max_memory_bytes as u64,
                max_call_millis: t.limits.max_call_time.as_millis() as u64,
            }),
            job_name: t.job_name.clone(),
        }
    }
}

impl TryFrom<pb::TaskDefinition> for TaskSpec {
    type Error = ConvertError;
    fn try_from(t: pb::TaskDefinition) -> Result<TaskSpec, ConvertError> {
        const M: &str = "TaskDefinition";
        let source = required(required(t.input, M, "input")?.source, M, "input.source")?;
        let input = match source {
            pb::partition_descriptor::Source::Split(s) => {
                let format = match pb::InputFormat::try_from(s.format) {
                    Ok(pb::InputFormat::Text) => InputFormat::Text,
                    Ok(pb::InputFormat::Csv) => InputFormat::Csv {
                        header: s.csv_header,
                    },
                    Ok(pb::InputFormat::Jsonl) => InputFormat::Jsonl,
                    _ => return Err(bad(M, format!("unknown input format {}", s.format))),
                };
                TaskInput::Split {
                    split: InputSplit {
                        path: PathBuf::from(s.path),
                        start: s.start,
                        length: s.length,
                    },
                    format,
                }
            }
            pb::partition_descriptor::Source::Shuffle(r) => TaskInput::Shuffle {
                wide: required(r.wide_step, M, "input.shuffle.wide_step")?.try_into()?,
                blocks: r
                    .blocks
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<Result<_, _>>()?,
            },
        };
        let sink = required(required(t.output, M, "output")?.sink, M, "output.sink")?;
        let output = match sink {
            pb::task_output::Sink::Shuffle(s) => TaskOutput::Shuffle {
                partitions: s.partitions.max(1),
                combiner: s.combine.map(TryInto::try_into).transpose()?,
                compression: compression_from_pb(s.compression)?,
            },
            pb::task_output::Sink::Part(p) => TaskOutput::Part {
                staging_dir: PathBuf::from(p.staging_dir),
                part: p.part,
                format: match pb::OutputFormat::try_from(p.format) {
                    Ok(pb::OutputFormat::Text) => OutputFormat::Text,
                    Ok(pb::OutputFormat::Jsonl) => OutputFormat::Jsonl,
                    _ => return Err(bad(M, format!("unknown output format {}", p.format))),
                },
            },
        };
        let defaults = SandboxLimits::default();
        let limits = match t.limits {
            Some(l) => SandboxLimits {
                max_memory_bytes: usize::try_from(l.max_memory_bytes)
                    .unwrap_or(defaults.max_memory_bytes),
                max_call_time: Duration::from_millis(l.max_call_millis),
                ..defaults
            },
            None => defaults,
        };
        Ok(TaskSpec {
            id: required(t.id, M, "id")?.try_into()?,
            tenant: t.tenant,
            job_name: t.job_name,
            steps: t
                .steps
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            input,
            output,
            limits,
        })
    }
}

/// How a task attempt ended, as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub id: TaskId,
    pub worker_id: String,
    pub result: Result<TaskResult, TaskFailure>,
    /// What the task's guests wrote, whether it succeeded or failed (for `weft job logs`).
    pub output: GuestOutput,
}

/// A failed task: the message (naming the step, module and function) and whose fault it was.
#[derive(Debug, Clone)]
pub struct TaskFailure {
    pub message: String,
    pub guest_fault: bool,
    pub cancelled: bool,
}

impl From<&TaskOutcome> for pb::TaskStatus {
    fn from(o: &TaskOutcome) -> pb::TaskStatus {
        let mut status = pb::TaskStatus {
            id: Some((&o.id).into()),
            worker_id: o.worker_id.clone(),
            stdout: o.output.stdout.clone(),
            stderr: o.output.stderr.clone(),
            output_truncated: o.output.truncated,
            ..Default::default()
        };
        match &o.result {
            Ok(r) => {
                status.state = pb::TaskState::Succeeded as i32;
                status.records_in = r.records_in;
                status.records_out = r.records_out;
                status.bytes_in = r.bytes_in;
                status.bytes_out = r.bytes_out;
                status.blocks = r.blocks.iter().map(Into::into).collect();
                status.remote_fetches = r.remote_fetches;
            }
            Err(f) => {
                status.state = if f.cancelled {
                    pb::TaskState::Killed
                } else {
                    pb::TaskState::Failed
                } as i32;
                status.error = f.message.clone();
                status.guest_fault = f.guest_fault;
            }
        }
        status
    }
}

impl TryFrom<pb::TaskStatus> for TaskOutcome {
    type Error = ConvertError;
    fn try_from(s: pb::TaskStatus) -> Result<TaskOutcome, ConvertError> {
        const M: &str = "TaskStatus";
        let id = required(s.id, M, "id")?.try_into()?;
        let result = match pb::TaskState::try_from(s.state) {
            Ok(pb::TaskState::Succeeded) => Ok(TaskResult {
                records_in: s.records_in,
                records_out: s.records_out,
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                blocks: s
                    .blocks
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<Result<_, _>>()?,
                remote_fetches: s.remote_fetches,
            }),
            Ok(pb::TaskState::Failed) | Ok(pb::TaskState::Killed) => Err(TaskFailure {
                message: s.error,
                guest_fault: s.guest_fault,
                cancelled: s.state == pb::TaskState::Killed as i32,
            }),
            _ => return Err(bad(M, format!("not a final state: {}", s.state))),
        };
        Ok(TaskOutcome {
            id,
            worker_id: s.worker_id,
            result,
            // Capped again on receipt: the sender is a peer, and the receiver stores what it gets.
            output: GuestOutput::capped(s.stdout, s.stderr, s.output_truncated),
        })
    }
}
