//! `weft run JOB.toml`: runs a job in embedded mode — a scheduler and N workers in this process
//! (`weft-local`), talking the same gRPC protocol a cluster uses, over loopback.
//!
//! The job is submitted to the scheduler before any worker starts, and checked there exactly as
//! `weft job submit` is checked (one preparation path): the job file, every step's module and
//! function and kind, the input, and whether the output may be written. Only then do the workers
//! start. The output directory appears complete (part files and `_SUCCESS`) or not at all.
//!
//! It runs here even when `--scheduler` is set (`weft job submit --wait` runs on a cluster), and
//! says so. SIGINT and SIGTERM cancel the job and clean up (see `local.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use weft_scheduler::JobReport;

use super::local::{self, Ended};
use super::plan::JobArgs;
use super::progress::{Lines, Progress};
use super::{cpus, local_memory, print_json};
use crate::Globals;

/// Runs a job on this machine: a scheduler and N sandboxed workers in one process.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub job: JobArgs,

    /// Worker count (each runs one task at a time). Default: the number of CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// Memory the job's tasks may use for grouping, shared by the workers (e.g. 8GiB, 512MB, or
    /// bytes): a reduce holding more keys than its share spills sorted runs to disk. Default: half
    /// of this machine's memory.
    #[arg(long, value_name = "SIZE", value_parser = weft_io::parse_size)]
    pub memory: Option<u64>,

    /// Replace the output directory if it exists (only once the job has succeeded).
    #[arg(long)]
    pub overwrite: bool,

    /// Show no progress while the job runs (by default: bars on a terminal, lines on stderr
    /// otherwise).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(globals: &Globals, args: RunArgs) -> Result<()> {
    let submission = args.job.submission(args.overwrite)?;
    let workers = args.workers.map_or_else(cpus, |n| n as usize);
    if let Some(url) = &globals.scheduler {
        eprintln!(
            "note: weft run runs the job in this process, not on the scheduler at {url}; \
             `weft job submit --wait` runs it there"
        );
    }
    let progress = (!args.quiet).then(|| Progress::new(Lines::Stderr));
    let memory = local_memory(args.memory);
    let report = match local::run(globals, workers, memory, submission, |_| {}, progress)? {
        Ended::Ran { outcome, .. } => outcome?,
        Ended::Interrupted { job_id, signal } => {
            anyhow::bail!("job {job_id} cancelled by the user ({signal}); nothing was written")
        }
    };
    if globals.json {
        print_json(&ReportJson::new(&report))
    } else {
        print_summary(&report)?;
        outln!(
            "ran locally on {workers} worker{}; data directory {}",
            if workers == 1 { "" } else { "s" },
            globals.data_dir.display()
        )
    }
}

fn print_summary(report: &JobReport) -> Result<()> {
    let parts = part_files(&report.output);
    outln!(
        "job {} ({}) finished in {}",
        report.job_name,
        report.job_id,
        seconds(report.elapsed)
    )?;
    outln!(
        "output: {} ({parts} part file{})",
        report.output.display(),
        if parts == 1 { "" } else { "s" }
    )?;
    outln!(
        "{:<6} {:>6} {:>12} {:>12} {:>11} {:>11} {:>8}",
        "STAGE",
        "TASKS",
        "RECORDS IN",
        "RECORDS OUT",
        "BYTES IN",
        "BYTES OUT",
        "REMOTE"
    )?;
    for s in &report.stages {
        outln!(
            "{:<6} {:>6} {:>12} {:>12} {:>11} {:>11} {:>8}",
            s.stage,
            s.tasks,
            s.records_in,
            s.records_out,
            bytes(s.bytes_in),
            bytes(s.bytes_out),
            s.remote_fetches
        )?;
    }
    let skipped: u64 = report.stages.iter().map(|s| s.records_skipped).sum();
    if skipped > 0 {
        let quarantine = report.output.join(weft_io::BAD_RECORDS_DIR);
        let kept = if quarantine.is_dir() {
            format!(", kept in {}", quarantine.display())
        } else {
            String::new()
        };
        outln!(
            "skipped {skipped} malformed input record{}{kept}",
            if skipped == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

/// The `part-NNNNN` files of a committed output (0 if it cannot be listed).
fn part_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
            .count()
    })
}

fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// `812 B`, `20.0 MB`: decimal units, one decimal, for a table people read.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

// `weft --json run`: the report as data.

#[derive(Debug, Serialize)]
struct ReportJson<'a> {
    job: &'a str,
    job_id: &'a str,
    output: &'a PathBuf,
    elapsed_ms: u64,
    stages: Vec<StageJson>,
}

#[derive(Debug, Serialize)]
struct StageJson {
    stage: u32,
    tasks: u32,
    records_in: u64,
    records_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// Shuffle blocks this stage fetched from another worker (the rest were read locally).
    remote_fetches: u64,
    /// Malformed input records dropped (`on_error` skip or quarantine).
    records_skipped: u64,
}

impl<'a> ReportJson<'a> {
    fn new(report: &'a JobReport) -> ReportJson<'a> {
        ReportJson {
            job: &report.job_name,
            job_id: &report.job_id,
            output: &report.output,
            elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            stages: report
                .stages
                .iter()
                .map(|s| StageJson {
                    stage: s.stage,
                    tasks: s.tasks,
                    records_in: s.records_in,
                    records_out: s.records_out,
                    bytes_in: s.bytes_in,
                    bytes_out: s.bytes_out,
                    remote_fetches: s.remote_fetches,
                    records_skipped: s.records_skipped,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn byte_counts_for_people() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(20_000_000), "20.0 MB");
        assert_eq!(bytes(1_500_000_000), "1.5 GB");
    }
}
