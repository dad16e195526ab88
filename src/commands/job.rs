//! `weft job …`: submit, status, watch, list, cancel and logs.
//!
//! With `--scheduler URL` (or `WEFT_SCHEDULER`) each talks to that cluster. Without, it starts a
//! scheduler in this process over the local data directory (the same one `weft run` records its
//! jobs in): `submit` then runs the job here with one worker per CPU and waits for it, and the other
//! verbs see the jobs run so far. Either way it is the same gRPC client; only the server differs.
//!
//! `--json job status` prints [`JobStatus`] as documented in the README ("Job status as JSON").

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use weft_local::LocalCluster;
use weft_scheduler::Tenant;
use weft_scheduler::client::JobsClient;
use weft_scheduler::jobs::{JobState, JobStatus, TaskRef};

use super::plan::JobArgs;
use super::{cpus, local_cluster_config, open_registry, print_json, runtime};
use crate::Globals;

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job file; prints the job id (with --wait, waits and prints how it ended).
    Submit {
        #[command(flatten)]
        job: JobArgs,
        /// Replace the output directory if it exists (only once the job has succeeded).
        #[arg(long)]
        overwrite: bool,
        /// Wait for the job to end; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Show a job's state and its stages' progress.
    Status { job_id: String },
    /// Follow a job's progress until it ends; exit 0 if it succeeded, 1 otherwise.
    Watch { job_id: String },
    /// List jobs, oldest first.
    List,
    /// Cancel a job: its tasks are killed and its output is not written.
    Cancel { job_id: String },
    /// Print what the job's guest code wrote to stdout and stderr.
    Logs {
        job_id: String,
        /// Only this task: STAGE.PARTITION, e.g. 0.3.
        #[arg(long, value_name = "STAGE.PARTITION")]
        task: Option<TaskRef>,
    },
}

pub fn run(globals: &Globals, command: JobCommand) -> Result<()> {
    runtime()?.block_on(async {
        let (mut client, mut local) = connect(globals).await?;
        let result = dispatch(globals, &mut client, local.as_mut(), command).await;
        if let Some(cluster) = local {
            cluster.shutdown().await;
        }
        result
    })
}

/// A client of the scheduler at `--scheduler`, or of one started here on the data directory (its
/// workers start when a job is submitted and accepted).
async fn connect(globals: &Globals) -> Result<(JobsClient, Option<LocalCluster>)> {
    let tenant = Tenant::default();
    if let Some(url) = &globals.scheduler {
        return Ok((JobsClient::connect(url, tenant).await?, None));
    }
    let registry = Arc::new(open_registry(globals)?);
    let cluster = LocalCluster::start_scheduler(registry, local_cluster_config(globals, cpus()))
        .await
        .context("cannot start the local scheduler")?;
    let client = JobsClient::connect(&cluster.url(), tenant).await?;
    Ok((client, Some(cluster)))
}

async fn dispatch(
    globals: &Globals,
    client: &mut JobsClient,
    local: Option<&mut LocalCluster>,
    command: JobCommand,
) -> Result<()> {
    match command {
        JobCommand::Submit {
            job,
            overwrite,
            wait,
        } => {
            let id = client.submit(job.submission(overwrite)?).await?;
            let local = match local {
                Some(cluster) => {
                    // Accepted: now the local workers are needed.
                    cluster
                        .start_workers()
                        .await
                        .context("cannot start the local workers")?;
                    true
                }
                None => false,
            };
            if !wait && !local {
                if globals.json {
                    print_json(&serde_json::json!({ "job_id": id }))?;
                } else {
                    outln!("{id}")?;
                }
                return Ok(());
            }
            if !wait {
                eprintln!("no --scheduler: job {id} runs in this process; waiting for it");
            }
            let status = client.watch(&id, |_| {}).await?;
            print_status(globals, &status)?;
            outcome(&status)
        }
        JobCommand::Status { job_id } => {
            let status = client.status(&job_id).await?;
            print_status(globals, &status)
        }
        JobCommand::Watch { job_id } => {
            let status = if globals.json {
                client.watch(&job_id, |_| {}).await?
            } else {
                let mut progress = Progress::new();
                let status = client.watch(&job_id, |s| progress.show(s)).await?;
                progress.finish()?;
                status
            };
            if globals.json {
                print_json(&status)?;
            } else {
                outln!("{}", outcome_line(&status))?;
            }
            outcome(&status)
        }
        JobCommand::List => {
            let jobs = client.list().await?;
            if globals.json {
                return print_json(&jobs);
            }
            if jobs.is_empty() {
                eprintln!("no jobs");
                return Ok(());
            }
            outln!(
                "{:<28} {:<10} {:<20} {:>9}  OUTPUT",
                "JOB",
                "STATE",
                "SUBMITTED",
                "ELAPSED"
            )?;
            for j in &jobs {
                outln!(
                    "{:<28} {:<10} {:<20} {:>9}  {}",
                    j.job_id,
                    j.state,
                    time(j.submitted_ms),
                    elapsed(j).map_or("-".into(), seconds),
                    j.output
                )?;
            }
            Ok(())
        }
        JobCommand::Cancel { job_id } => {
            let status = client.cancel(&job_id).await?;
            if status.state != JobState::Cancelled && !globals.json {
                eprintln!("job {job_id} had already ended ({})", status.state);
            }
            print_status(globals, &status)
        }
        JobCommand::Logs { job_id, task } => {
            let logs = client.logs(&job_id, task).await?;
            if globals.json {
                let logs: Vec<_> = logs
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "stage": l.stage,
                            "partition": l.partition,
                            "attempt": l.attempt,
                            "stdout": String::from_utf8_lossy(&l.stdout),
                            "stderr": String::from_utf8_lossy(&l.stderr),
                            "truncated": l.truncated,
                        })
                    })
                    .collect();
                return print_json(&logs);
            }
            if logs.is_empty() {
                eprintln!("job {job_id}: no task wrote to stdout or stderr");
            }
            for l in &logs {
                for (name, data) in [("stdout", &l.stdout), ("stderr", &l.stderr)] {
                    if data.is_empty() {
                        continue;
                    }
                    outln!(
                        "== stage {} partition {} attempt {} {name}{} ==",
                        l.stage,
                        l.partition,
                        l.attempt,
                        if l.truncated { " (truncated)" } else { "" }
                    )?;
                    let text = String::from_utf8_lossy(data);
                    out!("{text}")?;
                    if !text.ends_with('\n') {
                        outln!()?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Ok for a job that succeeded; otherwise an error that only sets the exit status, since how the
/// job ended has just been printed (and `--json` output must stay one document).
fn outcome(status: &JobStatus) -> Result<()> {
    match status.state {
        JobState::Succeeded => Ok(()),
        _ => Err(crate::Reported.into()),
    }
}

fn outcome_line(s: &JobStatus) -> String {
    let took = elapsed(s).map_or(String::new(), |d| format!(" in {}", seconds(d)));
    match s.state {
        JobState::Succeeded => format!("job {} succeeded{took}; output {}", s.job_id, s.output),
        state => format!(
            "job {} {state}{took}: {}",
            s.job_id,
            s.error.as_deref().unwrap_or("-")
        ),
    }
}

fn print_status(globals: &Globals, s: &JobStatus) -> Result<()> {
    if globals.json {
        return print_json(s);
    }
    outln!("job:     {} ({})", s.job_id, s.name)?;
    outln!("state:   {}", s.state)?;
    if let Some(error) = &s.error {
        outln!("error:   {error}")?;
    }
    outln!("output:  {}", s.output)?;
    outln!(
        "submitted {}{}",
        time(s.submitted_ms),
        elapsed(s).map_or(String::new(), |d| format!(", ran {}", seconds(d)))
    )?;
    outln!(
        "{:<6} {:>5} {:>5} {:>5} {:>6} {:>12} {:>12} {:>10} {:>10} {:>7}  STEPS",
        "STAGE",
        "DONE",
        "RUN",
        "FAIL",
        "TOTAL",
        "RECORDS IN",
        "RECORDS OUT",
        "BYTES IN",
        "BYTES OUT",
        "REMOTE"
    )?;
    for st in &s.stages {
        outln!(
            "{:<6} {:>5} {:>5} {:>5} {:>6} {:>12} {:>12} {:>10} {:>10} {:>7}  {}",
            st.stage,
            st.tasks_done,
            st.tasks_running,
            st.tasks_failed,
            st.tasks_total,
            st.records_in,
            st.records_out,
            super::run::bytes(st.bytes_in),
            super::run::bytes(st.bytes_out),
            st.remote_fetches,
            st.steps.join(" -> ")
        )?;
    }
    Ok(())
}

/// Live progress of `weft job watch`: a bar per stage on a terminal, a line per change otherwise.
struct Progress {
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    last: Vec<String>,
    /// The first failure to print (stdout closed), returned by `finish`.
    failed: Option<anyhow::Error>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bars: std::io::stderr()
                .is_terminal()
                .then(|| (MultiProgress::new(), Vec::new())),
            last: Vec::new(),
            failed: None,
        }
    }

    fn show(&mut self, s: &JobStatus) {
        let lines: Vec<String> = s
            .stages
            .iter()
            .map(|st| {
                format!(
                    "stage {}: {}/{} tasks done, {} running, {} failed; {} records in, {} in, {} out",
                    st.stage,
                    st.tasks_done,
                    st.tasks_total,
                    st.tasks_running,
                    st.tasks_failed,
                    st.records_in,
                    super::run::bytes(st.bytes_in),
                    super::run::bytes(st.bytes_out)
                )
            })
            .collect();
        match &mut self.bars {
            Some((multi, bars)) => {
                let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                for (i, st) in s.stages.iter().enumerate() {
                    if bars.len() <= i {
                        let bar = multi.add(ProgressBar::new(u64::from(st.tasks_total)));
                        bar.set_style(style.clone());
                        bar.set_prefix(format!("stage {}", st.stage));
                        bars.push(bar);
                    }
                    let bar = &bars[i];
                    bar.set_position(u64::from(st.tasks_done));
                    bar.set_message(format!(
                        "{} running, {} failed, {} records, {} in",
                        st.tasks_running,
                        st.tasks_failed,
                        st.records_in,
                        super::run::bytes(st.bytes_in)
                    ));
                }
            }
            None => {
                for (i, line) in lines.iter().enumerate() {
                    if self.last.get(i) != Some(line) && self.failed.is_none() {
                        self.failed = outln!("{line}").err();
                    }
                }
            }
        }
        self.last = lines;
    }

    fn finish(&mut self) -> Result<()> {
        if let Some((_, bars)) = &self.bars {
            for bar in bars {
                bar.finish();
            }
        }
        self.failed.take().map_or(Ok(()), Err)
    }
}

fn elapsed(s: &JobStatus) -> Option<Duration> {
    let start = s.started_ms?;
    let end = s.finished_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(start, |d| d.as_millis() as u64)
    });
    Some(Duration::from_millis(end.saturating_sub(start)))
}

fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
