//! Conversions between the contract's domain types and the protobuf messages, one per type and
//! direction, used by the gRPC edges of both sides. A missing or malformed field is an error naming
//! it, never an `unwrap()`.

use std::path::PathBuf;

use weft_abi::UdfKind;
use weft_io::{DataRoots, InputFormat, InputSplit, OnError, OutputFormat};
use weft_proto::v1 as pb;

use crate::limits::{Limit, TaskLimits};
use crate::task::{
    BlockLocation, GuestOutput, ShuffleCompression, StepRef, TaskFailure, TaskId, TaskInput,
    TaskOutcome, TaskOutput, TaskResult, TaskSpec, TaskUsage,
};

/// A message that cannot be turned into a domain value (here, and in the scheduler's registry and
/// job conversions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// An input split and its format, as `InputSplit` carries them.
fn split_to_pb(split: &InputSplit, format: InputFormat) -> pb::InputSplit {
    let (format, csv_header, csv_delimiter) = match format {
        InputFormat::Text => (pb::InputFormat::Text, false, String::new()),
        InputFormat::Csv { header, delimiter } => (
            pb::InputFormat::Csv,
            header,
            char::from(delimiter).to_string(),
        ),
        InputFormat::Jsonl => (pb::InputFormat::Jsonl, false, String::new()),
    };
    pb::InputSplit {
        path: split.path.to_string_lossy().into_owned(),
        start: split.start,
        length: split.length,
        format: format as i32,
        csv_header,
        csv_delimiter,
        ..Default::default()
    }
}

fn split_from_pb(s: pb::InputSplit) -> Result<(InputSplit, InputFormat), ConvertError> {
    const M: &str = "InputSplit";
    let format = match pb::InputFormat::try_from(s.format) {
        Ok(pb::InputFormat::Text) => InputFormat::Text,
        Ok(pb::InputFormat::Csv) => InputFormat::Csv {
            header: s.csv_header,
            delimiter: csv_delimiter_from_pb(&s.csv_delimiter)?,
        },
        Ok(pb::InputFormat::Jsonl) => InputFormat::Jsonl,
        _ => return Err(bad(M, format!("unknown input format {}", s.format))),
    };
    let split = InputSplit {
        path: PathBuf::from(s.path),
        start: s.start,
        length: s.length,
    };
    Ok((split, format))
}

/// One ASCII character, or empty for a comma.
fn csv_delimiter_from_pb(text: &str) -> Result<u8, ConvertError> {
    let invalid = |detail: String| bad("InputSplit.csv_delimiter", detail);
    match text.as_bytes() {
        [] => Ok(b','),
        [byte] => InputFormat::check_delimiter(*byte).map_err(|e| invalid(e.to_string())),
        _ => Err(invalid(format!("{text:?} is not one ASCII character"))),
    }
}

fn output_format_to_pb(format: OutputFormat) -> pb::OutputFormat {
    match format {
        OutputFormat::Text => pb::OutputFormat::Text,
        OutputFormat::Jsonl => pb::OutputFormat::Jsonl,
        OutputFormat::Csv => pb::OutputFormat::Csv,
    }
}

fn output_format_from_pb(format: i32) -> Result<OutputFormat, ConvertError> {
    match pb::OutputFormat::try_from(format) {
        Ok(pb::OutputFormat::Text) => Ok(OutputFormat::Text),
        Ok(pb::OutputFormat::Jsonl) => Ok(OutputFormat::Jsonl),
        Ok(pb::OutputFormat::Csv) => Ok(OutputFormat::Csv),
        _ => Err(bad("OutputPart", format!("unknown output format {format}"))),
    }
}

impl From<TaskLimits> for pb::SandboxLimits {
    fn from(l: TaskLimits) -> pb::SandboxLimits {
        pb::SandboxLimits {
            max_memory_bytes: l.get(Limit::Memory),
            max_call_millis: l.get(Limit::CallTime),
            max_task_millis: Some(l.get(Limit::TaskTime)),
            max_batch_output_bytes: Some(l.get(Limit::BatchOutput)),
            max_task_output_bytes: Some(l.get(Limit::TaskOutput)),
            max_log_bytes: Some(l.get(Limit::Log)),
            max_stack_bytes: Some(l.get(Limit::Stack)),
        }
    }
}

/// Limits a message leaves out are the defaults.
impl From<Option<pb::SandboxLimits>> for TaskLimits {
    fn from(l: Option<pb::SandboxLimits>) -> TaskLimits {
        let mut limits = TaskLimits::default();
        if let Some(l) = l {
            for (limit, value) in [
                (Limit::Memory, Some(l.max_memory_bytes)),
                (Limit::CallTime, Some(l.max_call_millis)),
                (Limit::TaskTime, l.max_task_millis),
                (Limit::BatchOutput, l.max_batch_output_bytes),
                (Limit::TaskOutput, l.max_task_output_bytes),
                (Limit::Log, l.max_log_bytes),
                (Limit::Stack, l.max_stack_bytes),
            ] {
                if let Some(value) = value {
                    limits.set(limit, value);
                }
            }
        }
        limits
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

/// Checks a job id from a peer. Job ids become directory names on workers: only a safe alphabet is
/// accepted.
pub fn check_job_id(job: &str) -> Result<(), ConvertError> {
    let ok = !job.is_empty()
        && job.len() <= 128
        && job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !job.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(bad("job_id", format!("unsafe job id {job:?}")))
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

pub(crate) fn required<T>(
    field: Option<T>,
    message: &'static str,
    name: &str,
) -> Result<T, ConvertError> {
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
            TaskInput::Split {
                split,
                format,
                on_error,
                quarantine_dir,
                keys_unused,
            } => {
                let mut pb = split_to_pb(split, *format);
                pb.keys_unused = *keys_unused;
                pb.on_error = match on_error {
                    OnError::Fail => pb::OnError::Fail,
                    OnError::Skip => pb::OnError::Skip,
                    OnError::Quarantine => pb::OnError::Quarantine,
                } as i32;
                pb.quarantine_dir = quarantine_dir
                    .as_ref()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default();
                pb::partition_descriptor::Source::Split(pb)
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
                format: output_format_to_pb(*format) as i32,
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
            limits: Some(t.limits.into()),
            job_name: t.job_name.clone(),
            roots: t.roots.as_ref().map(|r| pb::DataRoots {
                read: r
                    .read
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
                write: r
                    .write
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
            }),
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
                let on_error = match pb::OnError::try_from(s.on_error) {
                    Ok(pb::OnError::Fail) => OnError::Fail,
                    Ok(pb::OnError::Skip) => OnError::Skip,
                    Ok(pb::OnError::Quarantine) => OnError::Quarantine,
                    Err(_) => return Err(bad(M, format!("unknown on_error {}", s.on_error))),
                };
                let quarantine_dir = match (on_error, s.quarantine_dir.is_empty()) {
                    (OnError::Quarantine, false) => Some(PathBuf::from(&s.quarantine_dir)),
                    (OnError::Quarantine, true) => {
                        return Err(bad(M, "on_error quarantine without a quarantine_dir"));
                    }
                    _ => None,
                };
                let keys_unused = s.keys_unused;
                let (split, format) = split_from_pb(s)?;
                TaskInput::Split {
                    split,
                    format,
                    on_error,
                    quarantine_dir,
                    keys_unused,
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
                format: output_format_from_pb(p.format)?,
            },
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
            limits: t.limits.into(),
            roots: t.roots.map(|r| DataRoots {
                read: r.read.into_iter().map(PathBuf::from).collect(),
                write: r.write.into_iter().map(PathBuf::from).collect(),
            }),
        })
    }
}

impl From<&TaskOutcome> for pb::TaskStatus {
    fn from(o: &TaskOutcome) -> pb::TaskStatus {
        let mut status = pb::TaskStatus {
            id: Some((&o.id).into()),
            worker_id: o.worker_id.clone(),
            stdout: o.output.stdout.clone(),
            stderr: o.output.stderr.clone(),
            output_truncated: o.output.truncated,
            cpu_us: o.usage.cpu_us,
            wall_us: o.usage.wall_us,
            peak_memory_bytes: o.usage.peak_memory_bytes,
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
                status.records_skipped = r.records_skipped;
            }
            Err(f) => {
                status.state = if f.cancelled {
                    pb::TaskState::Killed
                } else {
                    pb::TaskState::Failed
                } as i32;
                status.error = f.message.clone();
                status.guest_fault = f.guest_fault;
                status.unreachable_peer = f.unreachable.clone().unwrap_or_default();
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
                records_skipped: s.records_skipped,
            }),
            Ok(pb::TaskState::Failed) | Ok(pb::TaskState::Killed) => Err(TaskFailure {
                // Capped on receipt too: the sender is a peer, and the message goes into records.
                message: cap_message(s.error),
                guest_fault: s.guest_fault,
                cancelled: s.state == pb::TaskState::Killed as i32,
                unreachable: (!s.unreachable_peer.is_empty()).then_some(s.unreachable_peer),
            }),
            _ => return Err(bad(M, format!("not a final state: {}", s.state))),
        };
        Ok(TaskOutcome {
            id,
            worker_id: s.worker_id,
            result,
            // Capped again on receipt: the sender is a peer, and the receiver stores what it gets.
            output: GuestOutput::capped(s.stdout, s.stderr, s.output_truncated),
            usage: TaskUsage {
                cpu_us: s.cpu_us,
                wall_us: s.wall_us,
                peak_memory_bytes: s.peak_memory_bytes,
            },
        })
    }
}

/// The most of a task's failure message a receiver keeps: the guest's part is already cut at
/// 16 KiB by the host (`weft_host::MAX_GUEST_MESSAGE_BYTES`); this bounds what a peer may send.
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 64 << 10;

/// `message`, cut at [`MAX_FAILURE_MESSAGE_BYTES`] (on a character boundary) with a note.
fn cap_message(mut message: String) -> String {
    if message.len() <= MAX_FAILURE_MESSAGE_BYTES {
        return message;
    }
    let full = message.len();
    let mut cut = MAX_FAILURE_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(&format!("... ({full} bytes in all)"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_failure_message_is_cut() {
        assert_eq!(cap_message("short".into()), "short");
        // Multi-byte characters across the cut stay whole.
        let long = "é".repeat(MAX_FAILURE_MESSAGE_BYTES);
        let cut = cap_message(long.clone());
        assert!(cut.len() < MAX_FAILURE_MESSAGE_BYTES + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!("... ({} bytes in all)", long.len())));
        let status = pb::TaskStatus {
            id: Some(
                (&TaskId {
                    job: "j-1".into(),
                    stage: 0,
                    partition: 0,
                    attempt: 0,
                })
                    .into(),
            ),
            state: pb::TaskState::Failed as i32,
            error: "x".repeat(10 << 20),
            ..Default::default()
        };
        let outcome = TaskOutcome::try_from(status).unwrap();
        let message = outcome.result.unwrap_err().message;
        assert!(message.len() < MAX_FAILURE_MESSAGE_BYTES + 40);
    }
}
