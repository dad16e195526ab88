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
    InputFormat, InputSpec, MAX_TASKS_PER_STAGE, OnError, OutputFormat, RequestedLimit,
    ShuffleCompression,
};

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
    /// Plans the job over `files` (the expansion of `input.path`, with sizes).
    pub fn plan(&self, files: &[InputFile]) -> Result<Plan, PlanError> {
        let spec = &self.spec;
        let splits = compute_splits(files, spec.input.split_size, spec.input.format)?;
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
                        weft_io::format_size(self.input.split_size)
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
        Ok(())
    }
}
