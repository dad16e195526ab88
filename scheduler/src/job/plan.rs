//! Planning: a resolved job becomes stages cut at every shuffle, and its input files become splits.
//!
//! Spark's rule: narrow steps (map, filter, flat_map) need only the record at hand, so consecutive
//! ones fuse into a single pass over the data; a wide step (reduce, group_reduce) needs every
//! record of a key, wherever it was produced, so it starts a new stage that reads a shuffle. The
//! planner works on plain data (files and sizes), so expanding globs and listing directories stays
//! with the I/O layer.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use weft_abi::UdfKind;
use weft_io::{InputFile, InputSplit};

use super::error::PlanError;
use super::resolve::{ResolvedJob, ResolvedStep};
use super::spec::{
    InputFormat, InputSpec, MAX_SPLIT_SIZE, MAX_TASKS_PER_STAGE, OnError, OutputFormat,
    RequestedLimit, SPLIT_OPEN_COST, ShuffleCompression,
};

/// The split size of a job file that sets none: Spark's rule (`FilePartition.maxSplitBytes`), which
/// shares the input, with [`SPLIT_OPEN_COST`] added per file, evenly among the `slots` task slots
/// that will read it, within [`SPLIT_OPEN_COST`] and [`MAX_SPLIT_SIZE`] — and, where Spark would
/// stop at `MAX_SPLIT_SIZE`, in whole waves:
///
/// - `max(SPLIT_OPEN_COST, bytes / slots)`, where `bytes` is the input plus `files ×
///   SPLIT_OPEN_COST`, when that is at most `MAX_SPLIT_SIZE`: one task per slot;
/// - else `min(MAX_SPLIT_SIZE, bytes / (waves × slots))`, rounded up, with the fewest `waves` that
///   cut the input (without open costs) into splits within `MAX_SPLIT_SIZE`: every slot reads the
///   same number of equal splits.
///
/// Spark's cap alone leaves the last wave short: a 1 GB file on 2 slots in 128 MiB splits is 7
/// full tasks and a 61 MB one, so one slot reads 537 MB while the other idles after 463; 890 MB is
/// 7 tasks, one slot's fourth left alone. Equal waves give both 500 MB (8 splits of 125.5 MB) and
/// 445 MB (8 of 111.9 MB). A 20 MB input gets about 12 MB splits (2 tasks, one per slot); a 3 MB
/// one a single 4 MiB split, not two tasks that would cost more to start than to read; 100 files
/// of 10 kB are not cut at all. The open cost added is what makes a file of `slots × split`
/// bytes, less a little, still `slots` splits and not one more. `slots` of 0 counts as 1.
pub fn automatic_split_size(files: &[InputFile], slots: u32) -> u64 {
    let input = files.iter().fold(0u64, |n, f| n.saturating_add(f.size));
    let bytes = input.saturating_add((files.len() as u64).saturating_mul(SPLIT_OPEN_COST));
    let slots = u64::from(slots.max(1));
    let per_slot = bytes / slots;
    if per_slot <= MAX_SPLIT_SIZE {
        return per_slot.max(SPLIT_OPEN_COST);
    }
    // The waves the input itself needs in splits of at most `MAX_SPLIT_SIZE`: counting the open
    // cost here too would make a file of exactly `slots × MAX_SPLIT_SIZE` two waves of half splits.
    let waves = input.div_ceil(MAX_SPLIT_SIZE.saturating_mul(slots)).max(1);
    bytes
        .div_ceil(waves.saturating_mul(slots))
        .min(MAX_SPLIT_SIZE)
}

/// A split size as plans show it: exact when it is a whole number of KiB (`128 MiB`, `1 KiB`, as a
/// job file gives it), else at a glance (`12.1 MB`, an automatic size; `--json` has the bytes).
fn show_split_size(bytes: u64) -> String {
    if bytes < 1024 || bytes.is_multiple_of(1024) {
        weft_io::format_size(bytes)
    } else {
        approximate_size(bytes)
    }
}

/// What decides the split size of a job whose file sets no `input.split_size`, and what the plan's
/// [`SplitWarning`]s are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoSplit {
    /// The job runs on this many task slots: [`automatic_split_size`] for them.
    Slots(u32),
    /// This size, chosen when the job was submitted. A job picked up after a restart is planned
    /// with the splits it started with, whatever workers the scheduler has by then; no warnings.
    Kept(u64),
}

/// Where a plan's split size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitSource {
    /// The job file's `input.split_size`.
    JobFile,
    /// [`automatic_split_size`] for this many task slots.
    Slots(u32),
    /// Chosen when the job was submitted ([`AutoSplit::Kept`]).
    Kept,
}

impl fmt::Display for SplitSource {
    /// Why the split size is what it is, after the size in `weft plan`'s last line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitSource::JobFile => f.write_str("the job file's input.split_size"),
            SplitSource::Slots(slots) => write!(
                f,
                "automatic for {} (the job file sets no input.split_size)",
                count(*slots, "task slot")
            ),
            SplitSource::Kept => f.write_str("automatic, chosen when the job was submitted"),
        }
    }
}

/// More map tasks than this are "thousands of tiny tasks" whatever their size: scheduling and
/// tracking each costs the scheduler, and the plan itself grows.
pub const MANY_TASKS: u32 = 10_000;

/// What `weft plan` warns of about a plan's splits: a shape that wastes the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitWarning {
    /// Fewer map tasks than slots for an input of at least [`SPLIT_OPEN_COST`] per slot: some
    /// slots sit idle while the input is read.
    IdleSlots {
        tasks: u32,
        slots: u32,
        bytes: u64,
        /// A split size that gives every slot a task.
        at_most: u64,
        source: SplitSource,
    },
    /// More than [`MANY_TASKS`] map tasks, or more tasks than slots averaging under
    /// [`SPLIT_OPEN_COST`]: starting tasks costs more than reading their splits.
    TinyTasks {
        tasks: u32,
        bytes: u64,
        /// Input files with at least one byte.
        files: usize,
        /// Whether every split is a whole file: small files, not a small split size, make the
        /// tasks.
        whole_files: bool,
        split_size: u64,
        source: SplitSource,
        /// What [`automatic_split_size`] would choose for the plan's slots.
        automatic: u64,
    },
}

impl fmt::Display for SplitWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SplitWarning::IdleSlots {
                tasks,
                slots,
                bytes,
                at_most,
                source,
            } => {
                write!(
                    f,
                    "{} for {}: {} will sit idle while the input ({}) is read; ",
                    count(tasks, "map task"),
                    count(slots, "task slot"),
                    count(slots - tasks, "slot"),
                    approximate_size(bytes)
                )?;
                match source {
                    SplitSource::JobFile => write!(
                        f,
                        "set input.split_size to at most {} (or remove it, and Weft sizes the \
                         splits for the slots)",
                        approximate_size(at_most)
                    ),
                    SplitSource::Slots(_) | SplitSource::Kept => write!(
                        f,
                        "set input.split_size to at most {}",
                        approximate_size(at_most)
                    ),
                }
            }
            SplitWarning::TinyTasks {
                tasks,
                bytes,
                files,
                whole_files,
                split_size,
                source,
                automatic,
            } => {
                let average = bytes / u64::from(tasks.max(1));
                write!(
                    f,
                    "{} averaging {}: a task costs about as much to start as reading {}, so \
                     starting tasks would take much of the time; ",
                    count(tasks, "map task"),
                    approximate_size(average),
                    weft_io::format_size(SPLIT_OPEN_COST)
                )?;
                if whole_files {
                    write!(
                        f,
                        "the input is {} and each is read by a task of its own (Weft does not \
                         yet pack several files into one task): merge them into fewer, larger \
                         files",
                        count(files as u64, "file")
                    )
                } else if source == SplitSource::JobFile && automatic > split_size {
                    write!(
                        f,
                        "remove input.split_size (now {}), and Weft chooses {} for these slots",
                        show_split_size(split_size),
                        show_split_size(automatic)
                    )
                } else {
                    write!(
                        f,
                        "raise input.split_size (now {})",
                        show_split_size(split_size)
                    )
                }
            }
        }
    }
}

/// `12.1 MB`, `3.0 kB`, `812 B`: a size people read at a glance, in decimal units.
fn approximate_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What a plan's splits warn of, against `slots` task slots.
fn split_warnings(
    files: &[InputFile],
    splits: &[InputSplit],
    split_size: u64,
    source: SplitSource,
    slots: u32,
) -> Vec<SplitWarning> {
    let slots = slots.max(1);
    let tasks = u32::try_from(splits.len()).unwrap_or(u32::MAX);
    let bytes = splits.iter().fold(0u64, |n, s| n.saturating_add(s.length));
    let files_read = files.iter().filter(|f| f.size > 0).count();
    let mut warnings = Vec::new();
    if tasks < slots && bytes >= u64::from(slots) * SPLIT_OPEN_COST {
        warnings.push(SplitWarning::IdleSlots {
            tasks,
            slots,
            bytes,
            at_most: bytes / u64::from(slots),
            source,
        });
    }
    let average = bytes / u64::from(tasks.max(1));
    if tasks > MANY_TASKS || (tasks > slots && average < SPLIT_OPEN_COST) {
        warnings.push(SplitWarning::TinyTasks {
            tasks,
            bytes,
            files: files_read,
            whole_files: splits.len() == files_read,
            split_size,
            source,
            automatic: automatic_split_size(files, slots),
        });
    }
    warnings
}

/// Cuts each file into `ceil(size / split_size)` consecutive ranges of `split_size` bytes, the last
/// one shorter; an empty file gives none. Files keep their order. A `split_size` of 0 is taken as 1
/// (a job file cannot give 0; this keeps a direct caller from dividing by zero).
pub fn compute_splits(
    files: &[InputFile],
    split_size: u64,
    format: InputFormat,
) -> Result<Vec<InputSplit>, PlanError> {
    let split_size = split_size.max(1);
    // Count before allocating: a tiny split size over a large input must fail, not exhaust memory.
    let count = files
        .iter()
        .fold(0u64, |n, f| n.saturating_add(f.size.div_ceil(split_size)));
    if count > u64::from(MAX_TASKS_PER_STAGE) {
        return Err(PlanError::TooManySplits {
            files: files.len(),
            bytes: files.iter().fold(0u64, |n, f| n.saturating_add(f.size)),
            splits: count,
            split_size,
            limit: MAX_TASKS_PER_STAGE,
        });
    }
    // `split_size` is at least 1 here, the one case weft-io refuses.
    Ok(weft_io::plan_splits(files, split_size, format)?)
}

/// What a stage's tasks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageInput {
    /// Input files: one task per split (a byte range; the reader takes every record that starts
    /// in it, so a record cut by a split boundary is read exactly once).
    Splits {
        format: InputFormat,
        splits: Vec<InputSplit>,
        /// What the tasks do with a malformed record.
        on_error: OnError,
    },
    /// The shuffle written by stage `parent`: one task per partition, which merges its partition's
    /// blocks and applies `wide_step` before the stage's narrow steps.
    Shuffle {
        parent: u32,
        partitions: u32,
        wide_step: ResolvedStep,
    },
}

/// Where a stage's tasks write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageOutput {
    /// Hash-partitioned by key for the next stage. `combiner`, set when that stage starts with a
    /// `reduce`, is applied to each task's output before writing: the reduce is associative and
    /// commutative, so reducing early is correct and shrinks the shuffle. A `group_reduce` sees all
    /// values of a key at once, so it has no combiner. `compression` is the job's
    /// `shuffle.compression`.
    Shuffle {
        partitions: u32,
        combiner: Option<ResolvedStep>,
        compression: ShuffleCompression,
    },
    /// The job's output: one part file per task.
    Output {
        path: PathBuf,
        format: OutputFormat,
        partitions: u32,
    },
}

/// One stage: tasks that all run the same fused steps, each over its own split or partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub id: u32,
    /// Stages whose output this one reads. A list, not an option, because a join will have two.
    pub parents: Vec<u32>,
    pub input: StageInput,
    /// The narrow steps run in one pass after the input (and after the wide step of a shuffle
    /// input).
    pub steps: Vec<ResolvedStep>,
    pub output: StageOutput,
    /// Tasks of the stage: the number of splits or of shuffle partitions read.
    pub tasks: u32,
}

/// The stages of a job, parents before children; the last stage writes the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub job_name: String,
    /// The job's input as the job file gave it, for display.
    pub input: InputSpec,
    pub stages: Vec<Stage>,
    /// The job file's `[limits]`, granted or refused at submission.
    pub limits: Vec<RequestedLimit>,
    /// The job file's `[retry] max_attempts`, if it sets one.
    pub max_attempts: Option<u32>,
    /// The job file's `[retry] speculation`, if it sets it.
    pub speculation: Option<bool>,
    /// The bytes per split of the input: the job file's `input.split_size`, or chosen.
    pub split_size: u64,
    pub split_source: SplitSource,
    /// What the splits waste of the slots the job was planned for (none for
    /// [`AutoSplit::Kept`]).
    pub warnings: Vec<SplitWarning>,
}

impl Stage {
    /// Whether the records this stage reads from its input files need their keys: false when its
    /// first `map` or `flat_map`, and every `filter` before it, state that they never read them
    /// (a filter passes its input keys on). Keys after such a step are the UDF's own output.
    pub fn reads_input_keys(&self) -> bool {
        if !matches!(self.input, StageInput::Splits { .. }) {
            return true;
        }
        for step in &self.steps {
            if !step.key_unused {
                return true;
            }
            match step.kind {
                UdfKind::Filter => {}
                UdfKind::Map | UdfKind::FlatMap => return false,
                UdfKind::Reduce | UdfKind::GroupReduce => return true,
            }
        }
        // No step, or only filters: the records go to a shuffle or the output, keys and all.
        true
    }
}

impl Plan {
    /// The output directory (the last stage's).
    pub fn output_dir(&self) -> Option<&Path> {
        self.stages.iter().find_map(|s| match &s.output {
            StageOutput::Output { path, .. } => Some(path.as_path()),
            StageOutput::Shuffle { .. } => None,
        })
    }

    /// The input files the plan reads, each once, in the order its splits read them.
    pub fn input_paths(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut paths = Vec::new();
        for stage in &self.stages {
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
}

/// The steps between two cuts: an optional wide step (with its shuffle's partitions), then the
/// narrow steps after it.
struct Segment {
    wide: Option<(ResolvedStep, u32)>,
    narrow: Vec<ResolvedStep>,
}

impl ResolvedJob {
    /// Plans the job over `files` (the expansion of `input.path`, with sizes), with splits of the
    /// job file's `input.split_size`, or else of the size `auto` decides.
    pub fn plan(&self, files: &[InputFile], auto: AutoSplit) -> Result<Plan, PlanError> {
        let spec = &self.spec;
        let (split_size, split_source) = match (spec.input.split_size, auto) {
            (Some(size), _) => (size, SplitSource::JobFile),
            (None, AutoSplit::Slots(slots)) => (
                automatic_split_size(files, slots),
                SplitSource::Slots(slots),
            ),
            (None, AutoSplit::Kept(size)) => (size, SplitSource::Kept),
        };
        let splits = compute_splits(files, split_size, spec.input.format)?;
        let warnings = match auto {
            AutoSplit::Slots(slots) => {
                split_warnings(files, &splits, split_size, split_source, slots)
            }
            AutoSplit::Kept(_) => Vec::new(),
        };
        // `compute_splits` bounds the count by MAX_TASKS_PER_STAGE, a u32.
        let split_tasks = u32::try_from(splits.len()).unwrap_or(MAX_TASKS_PER_STAGE);

        let mut segments = vec![Segment {
            wide: None,
            narrow: Vec::new(),
        }];
        for (step, step_spec) in self.steps.iter().zip(&spec.steps) {
            if step.kind.is_grouped() {
                let partitions = step_spec.partitions.unwrap_or(spec.output.partitions);
                segments.push(Segment {
                    wide: Some((step.clone(), partitions)),
                    narrow: Vec::new(),
                });
            } else if let Some(segment) = segments.last_mut() {
                segment.narrow.push(step.clone());
            }
        }

        let mut stages = Vec::with_capacity(segments.len());
        let mut splits = Some(splits);
        for (index, segment) in segments.iter().enumerate() {
            let id = index as u32;
            let (input, tasks, parents) = match &segment.wide {
                None => (
                    StageInput::Splits {
                        format: spec.input.format,
                        splits: splits.take().unwrap_or_default(),
                        on_error: spec.input.on_error,
                    },
                    split_tasks,
                    Vec::new(),
                ),
                // Only segment 0 lacks a wide step, so `id - 1` is the previous stage.
                Some((wide_step, partitions)) => (
                    StageInput::Shuffle {
                        parent: id - 1,
                        partitions: *partitions,
                        wide_step: wide_step.clone(),
                    },
                    *partitions,
                    vec![id - 1],
                ),
            };
            let output = match segments.get(index + 1).and_then(|next| next.wide.as_ref()) {
                Some((next_step, partitions)) => StageOutput::Shuffle {
                    partitions: *partitions,
                    combiner: (next_step.kind == UdfKind::Reduce).then(|| next_step.clone()),
                    compression: spec.shuffle.compression,
                },
                None => StageOutput::Output {
                    path: spec.output.path.clone(),
                    format: spec.output.format,
                    partitions: tasks,
                },
            };
            stages.push(Stage {
                id,
                parents,
                input,
                steps: segment.narrow.clone(),
                output,
                tasks,
            });
        }
        Ok(Plan {
            job_name: spec.name.clone(),
            input: spec.input.clone(),
            stages,
            limits: spec.limits.clone(),
            max_attempts: spec.max_attempts,
            speculation: spec.speculation,
            split_size,
            split_source,
            warnings,
        })
    }
}

/// `1 task`, `3 tasks`.
fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl fmt::Display for Plan {
    /// What `weft plan` prints: a header line, then per stage its tasks and input, its steps, and
    /// where its output goes. No trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {}: {}",
            self.job_name,
            count(self.stages.len() as u64, "stage")
        )?;
        for stage in &self.stages {
            write!(
                f,
                "\nstage {}: {}  input: ",
                stage.id,
                count(stage.tasks, "task")
            )?;
            match &stage.input {
                StageInput::Splits {
                    format,
                    splits,
                    on_error,
                } => {
                    write!(
                        f,
                        "{} of {} ({format}, {}",
                        count(splits.len() as u64, "split"),
                        self.input.path.display(),
                        show_split_size(self.split_size)
                    )?;
                    if *on_error != OnError::Fail {
                        write!(f, ", on_error {on_error}")?;
                    }
                    f.write_str(")")?
                }
                StageInput::Shuffle { wide_step, .. } => {
                    let parents: Vec<String> = stage.parents.iter().map(u32::to_string).collect();
                    let noun = if parents.len() == 1 {
                        "stage"
                    } else {
                        "stages"
                    };
                    write!(f, "shuffle of {noun} {}\n  {wide_step}", parents.join(", "))?;
                }
            }
            for step in &stage.steps {
                write!(f, "\n  {step}")?;
            }
            match &stage.output {
                StageOutput::Shuffle {
                    partitions,
                    combiner,
                    compression,
                } => {
                    write!(
                        f,
                        "\n  → shuffle: {}, compression {compression}",
                        count(*partitions, "partition")
                    )?;
                    if let Some(combiner) = combiner {
                        write!(f, ", combine with {combiner}")?;
                    }
                }
                StageOutput::Output {
                    path,
                    format,
                    partitions,
                } => write!(
                    f,
                    "\n  → output: {} ({format}, {})",
                    path.display(),
                    count(*partitions, "part")
                )?,
            }
        }
        write!(
            f,
            "\nsplit size: {}, {}",
            show_split_size(self.split_size),
            self.split_source
        )
    }
}
