//! What a task is: its id, what it reads and writes, the limits it runs under, and how it ended —
//! the domain side of `TaskDefinition` and `TaskStatus`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use weft_abi::UdfKind;
use weft_io::{DataRoots, InputFormat, InputSplit, OnError, OutputFormat};

use crate::TaskLimits;

/// A step as a worker runs it: a kind, the id of the module that holds the function, and the
/// function's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    pub kind: UdfKind,
    /// The module's content id (`blake3:<hex>`): what the worker loads.
    pub module: String,
    pub function: String,
    /// The module as the user named it (`wordcount@1`), for messages.
    pub label: String,
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskInput {
    /// A byte range of an input file.
    Split {
        split: InputSplit,
        format: InputFormat,
        on_error: OnError,
        /// With [`OnError::Quarantine`]: where the task writes its malformed records, as
        /// `bad-records-SSSSS-PPPPP.jsonl` (stage, partition).
        quarantine_dir: Option<PathBuf>,
        /// No step reads the records' keys (the first narrow step, after any filters, states it
        /// never reads them), so the reader leaves every key empty instead of formatting
        /// `PATH:OFFSET`.
        keys_unused: bool,
    },
    /// Every map task's block for this reduce partition; `wide` runs over each key's values.
    Shuffle {
        wide: StepRef,
        blocks: Vec<BlockLocation>,
    },
}

/// How a map task compresses the Arrow IPC files of its shuffle output. Arrow IPC's own buffer
/// compression is used, and each batch records its codec, so a reader needs no option: it decodes
/// whatever it is given.
///
/// The default is `None`, from measuring word count without a combiner (`split_words`' output of a
/// 64 MiB datagen corpus: 11.4 M records, 8 partitions, 4 MiB batches, encoded in memory, rates per
/// byte of corpus, on this 2-core machine under load): `none` writes 157 MB (2.34× the corpus:
/// Binary's offsets dominate) at ~400 MB/s and reads at ~650 MB/s; `lz4` writes 119 MB (0.76 of
/// `none`) at ~125 MB/s and reads at ~400 MB/s; `zstd` writes 79 MB (0.50) at ~90 MB/s and reads at
/// ~290 MB/s. A shuffle within one machine (the page cache, loopback) moves bytes far faster than
/// either codec encodes them, and the encoding's CPU is taken from the guests on the same cores,
/// so compression only slows such jobs down. Across a network slower than ~300 MB/s of shuffle
/// bytes (1 Gb/s Ethernet) `lz4` pays for itself, and `zstd` where bytes are scarcer than CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ShuffleCompression {
    /// Plain Arrow IPC.
    #[default]
    None,
    /// LZ4 frame, per buffer: a quarter fewer bytes for word-count records, cheaply decoded.
    Lz4,
    /// Zstandard (arrow's default level), per buffer: half the bytes, at the most CPU.
    Zstd,
}

impl ShuffleCompression {
    /// Every codec, in the order messages list them.
    pub const ALL: [ShuffleCompression; 3] = [
        ShuffleCompression::None,
        ShuffleCompression::Lz4,
        ShuffleCompression::Zstd,
    ];

    /// The name a job file uses: `none`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            ShuffleCompression::None => "none",
            ShuffleCompression::Lz4 => "lz4",
            ShuffleCompression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for ShuffleCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A shuffle compression name that is not `none`, `lz4` or `zstd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown shuffle compression {0:?} (expected none, lz4 or zstd)")]
pub struct UnknownShuffleCompression(pub String);

impl FromStr for ShuffleCompression {
    type Err = UnknownShuffleCompression;

    /// Exactly the names [`ShuffleCompression::name`] gives: job files spell them one way.
    fn from_str(s: &str) -> Result<ShuffleCompression, UnknownShuffleCompression> {
        ShuffleCompression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownShuffleCompression(s.to_owned()))
    }
}

/// Where a task's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutput {
    /// Hash-partitioned shuffle files, combined with `combiner` first when the consumer reduces,
    /// and compressed with `compression`.
    Shuffle {
        partitions: u32,
        combiner: Option<StepRef>,
        compression: ShuffleCompression,
    },
    /// One part file of the job's output, written into `staging_dir` (the job's directory of
    /// attempts' parts) under a name of its own attempt's, `part-NNNNN.attempt-A`
    /// ([`weft_io::attempt_part_name`]): the commit keeps one attempt's part per partition.
    Part {
        staging_dir: PathBuf,
        part: u32,
        format: OutputFormat,
    },
}

/// Everything a worker needs to run one task attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub id: TaskId,
    pub tenant: String,
    pub job_name: String,
    /// The fused narrow steps, run after the wide step of a shuffle input.
    pub steps: Vec<StepRef>,
    pub input: TaskInput,
    pub output: TaskOutput,
    pub limits: TaskLimits,
    /// The directories the task's files must really lie in (its tenant's data roots); `None`:
    /// anywhere the worker can reach.
    pub roots: Option<DataRoots>,
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
    /// Malformed input records dropped (`on_error` skip or quarantine).
    pub records_skipped: u64,
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

/// How a task attempt ended, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    pub id: TaskId,
    pub worker_id: String,
    pub result: Result<TaskResult, TaskFailure>,
    /// What the task's guests wrote, whether it succeeded or failed (for `weft job logs`).
    pub output: GuestOutput,
    /// What the attempt used, whether it succeeded or not: a tenant pays for failed attempts too.
    pub usage: TaskUsage,
}

/// What one task attempt used, as its worker measured it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskUsage {
    /// CPU time of the thread that ran the task (its guests' calls, reading, writing), in
    /// microseconds. Compiling a module (in a child process) is not counted.
    pub cpu_us: u64,
    /// Wall time from the start of the attempt to its end, in microseconds.
    pub wall_us: u64,
    /// The largest linear memory its guests grew to, added over the task's instances.
    pub peak_memory_bytes: u64,
}

impl TaskUsage {
    /// `self` and `other` together: times add up, the peak is the larger.
    pub fn add(&mut self, other: &TaskUsage) {
        self.cpu_us += other.cpu_us;
        self.wall_us += other.wall_us;
        self.peak_memory_bytes = self.peak_memory_bytes.max(other.peak_memory_bytes);
    }
}

/// A failed task: the message (naming the step, module and function, with the error's causes) and
/// whose fault it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub message: String,
    /// The user's code failed (a trap, a guest error, a limit): retrying will not help.
    pub guest_fault: bool,
    /// The attempt was killed.
    pub cancelled: bool,
    /// The address of a worker the attempt could not reach to fetch shuffle blocks from: a sign
    /// that worker is gone, which the scheduler checks at once rather than after its timeout.
    pub unreachable: Option<String>,
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
