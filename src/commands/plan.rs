//! `weft plan JOB.toml`: reads a job file, resolves its steps against the local registry and its
//! input against the file system, and prints the stages it would run — without running anything.
//!
//! It prepares the job exactly as every submission is prepared (`weft_scheduler::job::prepare`,
//! which `weft run` and `weft job submit` reach through the scheduler): whatever `weft plan`
//! refuses, they refuse with the same message.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use weft_scheduler::Tenant;
use weft_scheduler::client::JobsClient;
use weft_scheduler::job::{
    self, AutoSplit, InputFormat, Plan, ResolvedStep, SplitSource, Stage, StageInput, StageOutput,
    Submission,
};

use super::{client_link, cluster_registry, cpus, print_json, read_registry, runtime};
use crate::Globals;

/// The job file and the command-line overrides of its paths, shared by `weft plan` and `weft run`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job file (TOML): a name, an [input], [[step]]s and an [output]. Relative paths in it are
    /// relative to its directory.
    #[arg(value_name = "JOB.toml")]
    pub job: PathBuf,

    /// Read this file, directory or glob instead of the job file's input.path (relative to the
    /// working directory).
    #[arg(long, value_name = "PATH")]
    pub input: Option<PathBuf>,

    /// Write the output directory here instead of at the job file's output.path (relative to the
    /// working directory).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

impl JobArgs {
    /// The job file and the overrides as a submission: read, with every path made absolute.
    pub fn submission(&self, overwrite: bool) -> Result<Submission> {
        Ok(Submission::from_file(
            &self.job,
            self.input.as_deref(),
            self.output.as_deref(),
            overwrite,
        )?)
    }
}

/// Shows the stages a job would run: their fused steps, tasks and partitions.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub job: JobArgs,

    /// Plan for N task slots: the split size of a job file that sets none is chosen for them,
    /// and splits that would leave slots idle are warned of. Default: with --scheduler, the
    /// slots of the cluster's workers; else this machine's CPUs, as `weft run` uses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub slots: Option<u32>,
}

pub fn run(globals: &Globals, args: PlanArgs) -> Result<()> {
    let submission = args.job.submission(false)?;
    let tenant = Tenant::default();
    // The registry the job would run against: the cluster's with --scheduler, else the data
    // directory's (read only; nothing is created).
    let registry = match &globals.scheduler {
        Some(url) => cluster_registry(globals, url, &tenant)?,
        None => read_registry(globals)?,
    };
    let slots = match (args.slots, &globals.scheduler) {
        (Some(slots), _) => slots,
        (None, Some(url)) => cluster_slots(globals, url),
        // `weft run` runs one single-slot worker per CPU.
        (None, None) => u32::try_from(cpus()).unwrap_or(u32::MAX),
    };
    let plan = job::prepare(&registry, &tenant, &submission, AutoSplit::Slots(slots))?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    if globals.json {
        print_json(&PlanJson::from(&plan))
    } else {
        outln!("{plan}")?;
        Ok(())
    }
}

/// The task slots of the workers registered with the scheduler at `url`, as it counts them when
/// a job is submitted (1 when there are none). Listing workers is for operators: another client
/// is told so and planned for this machine's CPUs.
fn cluster_slots(globals: &Globals, url: &str) -> u32 {
    let listed = runtime().and_then(|runtime| {
        runtime.block_on(async {
            let link = client_link(globals)?;
            let mut client = JobsClient::connect_with(url, Tenant::default(), &link).await?;
            anyhow::Ok(client.workers().await?)
        })
    });
    match listed {
        Ok(workers) => workers
            .iter()
            .fold(0u32, |n, w| n.saturating_add(w.slots))
            .max(1),
        Err(e) => {
            let cpus = u32::try_from(cpus()).unwrap_or(u32::MAX);
            eprintln!(
                "note: cannot count the task slots of the cluster at {url} ({e:#}); planning for \
                 {cpus}, this machine's CPUs (--slots N sets them)"
            );
            cpus
        }
    }
}

// `weft --json plan`: the plan as data. Stages are listed parents first; `input` and `output`
// carry a `type` saying which kind they are.

#[derive(Debug, Serialize)]
struct PlanJson<'a> {
    job: &'a str,
    input: InputJson<'a>,
    stages: Vec<StageJson<'a>>,
    /// What `weft plan` warns of on stderr, as the same sentences.
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct InputJson<'a> {
    path: &'a Path,
    #[serde(flatten)]
    format: FormatJson,
    /// Bytes per split, as planned.
    split_size: u64,
    /// `job_file`, or `automatic` (then `slots` says for how many task slots).
    split_size_from: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    slots: Option<u32>,
}

#[derive(Debug, Serialize)]
struct FormatJson {
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<String>,
}

impl From<InputFormat> for FormatJson {
    fn from(format: InputFormat) -> FormatJson {
        let (header, delimiter) = match format {
            InputFormat::Csv { header, delimiter } => {
                (Some(header), Some(char::from(delimiter).to_string()))
            }
            InputFormat::Text | InputFormat::Jsonl => (None, None),
        };
        FormatJson {
            format: format.name(),
            header,
            delimiter,
        }
    }
}

#[derive(Debug, Serialize)]
struct StageJson<'a> {
    id: u32,
    parents: &'a [u32],
    tasks: u32,
    input: StageInputJson<'a>,
    /// The fused narrow steps, in the order they run (after the input's wide step, if any).
    steps: Vec<StepJson<'a>>,
    output: StageOutputJson<'a>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StageInputJson<'a> {
    /// One task per split of the input files.
    Splits {
        #[serde(flatten)]
        format: FormatJson,
        /// `fail`, `skip` or `quarantine`.
        on_error: &'static str,
        splits: Vec<SplitJson<'a>>,
    },
    /// One task per partition of the parent's shuffle, each starting with `wide_step`.
    Shuffle {
        parent: u32,
        partitions: u32,
        wide_step: StepJson<'a>,
    },
}

#[derive(Debug, Serialize)]
struct SplitJson<'a> {
    path: &'a Path,
    start: u64,
    length: u64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StageOutputJson<'a> {
    Shuffle {
        partitions: u32,
        combiner: Option<StepJson<'a>>,
        /// `none`, `lz4` or `zstd`.
        compression: &'static str,
    },
    Output {
        path: &'a Path,
        format: &'static str,
        partitions: u32,
    },
}

#[derive(Debug, Serialize)]
struct StepJson<'a> {
    /// 1-based position in the job file.
    step: usize,
    kind: &'static str,
    module: &'a str,
    version: u32,
    /// The content id the step is pinned to.
    id: String,
    function: &'a str,
}

impl<'a> From<&'a ResolvedStep> for StepJson<'a> {
    fn from(step: &'a ResolvedStep) -> StepJson<'a> {
        StepJson {
            step: step.number,
            kind: step.kind.as_str(),
            module: &step.module_name,
            version: step.module_version,
            id: step.module.to_string(),
            function: &step.function,
        }
    }
}

impl<'a> From<&'a Plan> for PlanJson<'a> {
    fn from(plan: &'a Plan) -> PlanJson<'a> {
        PlanJson {
            job: &plan.job_name,
            input: InputJson {
                path: &plan.input.path,
                format: plan.input.format.into(),
                split_size: plan.split_size,
                split_size_from: match plan.split_source {
                    SplitSource::JobFile => "job_file",
                    SplitSource::Slots(_) | SplitSource::Kept => "automatic",
                },
                slots: match plan.split_source {
                    SplitSource::Slots(slots) => Some(slots),
                    SplitSource::JobFile | SplitSource::Kept => None,
                },
            },
            stages: plan.stages.iter().map(StageJson::from).collect(),
            warnings: plan.warnings.iter().map(ToString::to_string).collect(),
        }
    }
}

impl<'a> From<&'a Stage> for StageJson<'a> {
    fn from(stage: &'a Stage) -> StageJson<'a> {
        let input = match &stage.input {
            StageInput::Splits {
                format,
                splits,
                on_error,
            } => StageInputJson::Splits {
                format: (*format).into(),
                on_error: on_error.name(),
                splits: splits
                    .iter()
                    .map(|s| SplitJson {
                        path: &s.path,
                        start: s.start,
                        length: s.length,
                    })
                    .collect(),
            },
            StageInput::Shuffle {
                parent,
                partitions,
                wide_step,
            } => StageInputJson::Shuffle {
                parent: *parent,
                partitions: *partitions,
                wide_step: wide_step.into(),
            },
        };
        let output = match &stage.output {
            StageOutput::Shuffle {
                partitions,
                combiner,
                compression,
            } => StageOutputJson::Shuffle {
                partitions: *partitions,
                combiner: combiner.as_ref().map(StepJson::from),
                compression: compression.name(),
            },
            StageOutput::Output {
                path,
                format,
                partitions,
            } => StageOutputJson::Output {
                path,
                format: format.name(),
                partitions: *partitions,
            },
        };
        StageJson {
            id: stage.id,
            parents: &stage.parents,
            tasks: stage.tasks,
            input,
            steps: stage.steps.iter().map(StepJson::from).collect(),
            output,
        }
    }
}
