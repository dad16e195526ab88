//! One way to prepare a job, for every command that takes one: parse the job file, apply the
//! command line's overrides, resolve every step in the registry, list the input files and plan —
//! and, for a job that is to run, check that its output may be written.
//!
//! `weft plan` stops at the plan ([`prepare`]); `Scheduler::submit` — behind `weft run`,
//! `weft job submit` and a cluster's Jobs service alike — goes on to [`check_output`] and to
//! asking the workers about the input. Whatever one of them refuses, all refuse, with the same
//! message.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AutoSplit, JobFileError, JobSpec, Plan, PlanError};
use crate::{Registry, Tenant};

/// A job as a client submits it, and as it is kept with the job: the job file's text and path and
/// the command line's overrides.
///
/// Paths are absolute: a scheduler may run on another machine, where the client's working
/// directory means nothing, so the client resolves them ([`Submission::from_file`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub job_toml: String,
    /// The job file's absolute path: errors name it, and relative paths in it start at its
    /// directory.
    pub job_file: String,
    /// `--input` (absolute), empty when not given.
    pub input: String,
    /// `--output` (absolute), empty when not given.
    pub output: String,
    /// Replace an existing output directory once the job succeeds.
    pub overwrite: bool,
}

impl Submission {
    /// Reads `job_file` and makes every path absolute against the working directory, without `.`
    /// or `..` ([`weft_io::normalize`]).
    pub fn from_file(
        job_file: &Path,
        input: Option<&Path>,
        output: Option<&Path>,
        overwrite: bool,
    ) -> Result<Submission, PrepareError> {
        let absolute = |p: &Path| {
            weft_io::normalize(p)
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|source| PrepareError::Read {
                    path: p.to_owned(),
                    source,
                })
        };
        let job_toml = std::fs::read_to_string(job_file).map_err(|source| PrepareError::Read {
            path: job_file.to_owned(),
            source,
        })?;
        Ok(Submission {
            job_toml,
            job_file: absolute(job_file)?,
            input: input.map(absolute).transpose()?.unwrap_or_default(),
            output: output.map(absolute).transpose()?.unwrap_or_default(),
            overwrite,
        })
    }

    /// Where the input pattern came from, so a missing input points at what to fix.
    pub(crate) fn input_field(&self) -> String {
        if self.input.is_empty() {
            format!("{}: input.path", self.job_file)
        } else {
            "--input".to_owned()
        }
    }

    pub(crate) fn output_field(&self) -> String {
        if self.output.is_empty() {
            format!("{}: output.path", self.job_file)
        } else {
            "--output".to_owned()
        }
    }
}

/// Why a job cannot be prepared. Each names what to fix: the job file and line, the field, or the
/// command-line option.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path the client should have made absolute is not.
    #[error("{what} {path:?} must be absolute (the client resolves it)")]
    Relative { what: &'static str, path: String },
    #[error(transparent)]
    JobFile(#[from] JobFileError),
    /// The input pattern names no readable file; `field` is where the pattern came from.
    #[error("{field}")]
    Input {
        field: String,
        #[source]
        source: weft_io::Error,
    },
    #[error("{job_file}: cannot plan the job")]
    Plan {
        job_file: String,
        #[source]
        source: PlanError,
    },
    /// The output exists and may not be replaced; `field` is where the path came from.
    #[error("{field}")]
    Output {
        field: String,
        #[source]
        source: weft_io::Error,
    },
}

/// Parses, resolves and plans `submission` for `tenant`: everything a job can be refused for
/// without looking at its output or asking a worker. `auto` sizes the splits if the job file does
/// not: the task slots of the cluster that runs the job, or the size chosen at its submission.
pub fn prepare(
    registry: &Registry,
    tenant: &Tenant,
    submission: &Submission,
    auto: AutoSplit,
) -> Result<Plan, PrepareError> {
    for (what, path) in [
        ("the job file path", &submission.job_file),
        ("--input", &submission.input),
        ("--output", &submission.output),
    ] {
        if !path.is_empty() && !Path::new(path).is_absolute() {
            return Err(PrepareError::Relative {
                what,
                path: path.clone(),
            });
        }
    }
    let mut spec = JobSpec::parse(&submission.job_toml, Path::new(&submission.job_file))?;
    if !submission.input.is_empty() {
        spec = spec.with_input(&submission.input);
    }
    if !submission.output.is_empty() {
        spec = spec.with_output(&submission.output);
    }
    // Paths from the job file are joined to its directory and may hold `..`.
    let normalize = |path: &Path| weft_io::normalize(path).unwrap_or_else(|_| path.to_owned());
    let (input, output) = (normalize(&spec.input.path), normalize(&spec.output.path));
    spec = spec.with_input(input).with_output(output);
    let resolved = spec.resolve(registry, tenant)?;
    let input_error = |source| PrepareError::Input {
        field: submission.input_field(),
        source,
    };
    // UTF-8 throughout: the submission's paths are strings, and so is the job file.
    let pattern = resolved.spec.input.path.to_string_lossy();
    let files = weft_io::resolve_inputs(&pattern).map_err(input_error)?;
    // The output may be neither an input nor around or inside one: the pattern's directory, if it
    // names one, counts as an input.
    let pattern_dir = Path::new(pattern.as_ref());
    let inputs = files
        .iter()
        .map(|f| f.path.as_path())
        .chain(pattern_dir.is_dir().then_some(pattern_dir));
    weft_io::check_apart(&resolved.spec.output.path, inputs).map_err(|source| {
        PrepareError::Output {
            field: submission.output_field(),
            source,
        }
    })?;
    resolved
        .plan(&files, auto)
        .map_err(|source| PrepareError::Plan {
            job_file: submission.job_file.clone(),
            source,
        })
}

/// Refuses, before anything runs, an output that exists (unless `submission.overwrite`) or that is
/// not a directory (always: only a directory is ever replaced).
pub fn check_output(plan: &Plan, submission: &Submission) -> Result<(), PrepareError> {
    let output = |source| PrepareError::Output {
        field: submission.output_field(),
        source,
    };
    let path = plan.output_dir().ok_or_else(|| {
        output(weft_io::Error::BadOutputPath {
            path: PathBuf::new(),
        })
    })?;
    weft_io::check_output(path, submission.overwrite).map_err(output)
}
