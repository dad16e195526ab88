//! `weft job …`: submit, status, watch, list, cancel and logs.
//!
//! With `--scheduler URL` (or `WEFT_SCHEDULER`) each talks to that cluster. Without, they use the
//! local data directory (the one `weft run` records its jobs in): `submit` runs the job here with
//! one worker per CPU and waits for it, as `weft run` does; the other verbs read the directory's
//! jobs — those over and those other processes are running now — without locking it for more than
//! a moment, and `cancel` interrupts the process running the job.
//!
//! `--json job status` prints [`JobStatus`] as documented in the README ("Job status as JSON").

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use weft_local::DataDir;
use weft_scheduler::Tenant;
use weft_scheduler::client::JobsClient;
use weft_scheduler::jobs::{JobState, JobStatus, TaskLog, TaskRef, TaskReport};

use super::plan::JobArgs;
use super::progress::{Lines, Progress};
use super::{cpus, local, local_memory, print_json, runtime};
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
    /// Show a job's state, its stages' progress and what it used; with --json, every task
    /// attempt too (under `tasks`).
    Status {
        job_id: String,
        /// Also list every task attempt: where it ran, how it ended, what it read, wrote and used.
        #[arg(long)]
        tasks: bool,
    },
    /// Follow a job's progress until it ends; exit 0 if it succeeded, 1 otherwise. On a
    /// terminal, a bar per stage (bytes read, records, tasks, elapsed time, time left); otherwise
    /// a line per stage as it changes, at most once a second.
    Watch {
        job_id: String,
        /// Print only how the job ended.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
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
    let mut jobs = match &globals.scheduler {
        Some(url) => {
            let runtime = runtime()?;
            let link = super::client_link(globals)?;
            let client =
                runtime.block_on(JobsClient::connect_with(url, Tenant::default(), &link))?;
            Jobs::Remote {
                runtime,
                client: Box::new(client),
            }
        }
        None => Jobs::Local(local::data_dir(globals)?),
    };
    dispatch(globals, &mut jobs, command)
}

/// Where the job verbs go: a cluster's scheduler, or the local data directory (read directly,
/// so they work while other processes run jobs on it).
enum Jobs {
    Remote {
        runtime: tokio::runtime::Runtime,
        client: Box<JobsClient>,
    },
    Local(DataDir),
}

/// How often local `watch` and `cancel` look at a job run by another process.
const LOCAL_POLL: Duration = Duration::from_millis(200);

impl Jobs {
    fn status(&mut self, job: &str) -> Result<JobStatus> {
        match self {
            Jobs::Remote { runtime, client } => Ok(runtime.block_on(client.status(job))?),
            Jobs::Local(data) => data.status(job)?.ok_or_else(|| no_job(job)),
        }
    }

    fn watch(&mut self, job: &str, mut each: impl FnMut(&JobStatus)) -> Result<JobStatus> {
        match self {
            Jobs::Remote { runtime, client } => Ok(runtime.block_on(client.watch(job, each))?),
            Jobs::Local(data) => loop {
                let status = data.status(job)?.ok_or_else(|| no_job(job))?;
                each(&status);
                if status.state.is_final() {
                    return Ok(status);
                }
                std::thread::sleep(LOCAL_POLL);
                // A run killed meanwhile is recorded as interrupted by the sweep.
                data.sweep()?;
            },
        }
    }

    fn list(&mut self) -> Result<Vec<JobStatus>> {
        match self {
            Jobs::Remote { runtime, client } => Ok(runtime.block_on(client.list())?),
            Jobs::Local(data) => Ok(data.list()?),
        }
    }

    /// Cancels a job; a local one runs in another `weft` process, which is asked to stop it
    /// (SIGINT, as Ctrl-C would) and waited for.
    fn cancel(&mut self, job: &str) -> Result<JobStatus> {
        match self {
            Jobs::Remote { runtime, client } => Ok(runtime.block_on(client.cancel(job))?),
            Jobs::Local(data) => {
                if let Some(pid) = data.running_pid(job)? {
                    interrupt(pid)?;
                }
                self.watch(job, |_| {})
            }
        }
    }

    fn tasks(&mut self, job: &str) -> Result<Vec<TaskReport>> {
        match self {
            Jobs::Remote { runtime, client } => Ok(runtime.block_on(client.tasks(job))?),
            Jobs::Local(data) => Ok(data.tasks(job)?),
        }
    }

    fn logs(&mut self, job: &str, task: Option<TaskRef>) -> Result<Vec<TaskLog>> {
        match self {
            Jobs::Remote { runtime, client } => Ok(runtime.block_on(client.logs(job, task))?),
            Jobs::Local(data) => {
                data.status(job)?.ok_or_else(|| no_job(job))?;
                Ok(data
                    .logs(job)?
                    .into_iter()
                    .filter(|l| {
                        task.is_none_or(|t| t.stage == l.stage && t.partition == l.partition)
                    })
                    .collect())
            }
        }
    }
}

fn no_job(job: &str) -> anyhow::Error {
    anyhow::anyhow!("no job {job} in this data directory")
}

/// Sends SIGINT to the local process `pid` running a job.
fn interrupt(pid: u32) -> Result<()> {
    #[cfg(unix)]
    {
        let raw = i32::try_from(pid).context("pid out of range")?;
        // SAFETY: sends a signal; no memory is involved.
        if unsafe { libc::kill(raw, libc::SIGINT) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot interrupt process {pid}"));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    anyhow::bail!("cannot cancel a job of another process (pid {pid}) here")
}

fn dispatch(globals: &Globals, jobs: &mut Jobs, command: JobCommand) -> Result<()> {
    match command {
        JobCommand::Submit {
            job,
            overwrite,
            wait,
        } => {
            let submission = job.submission(overwrite)?;
            let status = match jobs {
                Jobs::Remote { runtime, client } => {
                    let id = runtime.block_on(client.submit(submission))?;
                    if !wait {
                        if globals.json {
                            print_json(&serde_json::json!({ "job_id": id }))?;
                        } else {
                            outln!("{id}")?;
                        }
                        return Ok(());
                    }
                    jobs.watch(&id, |_| {})?
                }
                Jobs::Local(data) => {
                    let data = data.clone();
                    let ended = local::run(
                        globals,
                        cpus(),
                        local_memory(None),
                        submission,
                        |id| {
                            if !wait {
                                eprintln!(
                                    "no --scheduler: job {id} runs in this process; waiting for it"
                                );
                            }
                        },
                        None,
                    )?;
                    let job_id = match ended {
                        local::Ended::Ran { job_id, .. }
                        | local::Ended::Interrupted { job_id, .. } => job_id,
                    };
                    data.status(&job_id)?.ok_or_else(|| no_job(&job_id))?
                }
            };
            print_status(globals, &status)?;
            outcome(&status)
        }
        JobCommand::Status { job_id, tasks } => {
            let status = jobs.status(&job_id)?;
            if globals.json {
                let tasks = jobs.tasks(&job_id)?;
                return print_json(&StatusWithTasks {
                    status: &status,
                    tasks: &tasks,
                });
            }
            print_status(globals, &status)?;
            if tasks {
                print_tasks(&jobs.tasks(&job_id)?)?;
            }
            Ok(())
        }
        JobCommand::Watch { job_id, quiet } => {
            let status = if globals.json || quiet {
                jobs.watch(&job_id, |_| {})?
            } else {
                let mut progress = Progress::new(Lines::Stdout);
                let status = jobs.watch(&job_id, |s| progress.show(s))?;
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
            let list = jobs.list()?;
            if globals.json {
                return print_json(&list);
            }
            if list.is_empty() {
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
            for j in &list {
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
            let status = jobs.cancel(&job_id)?;
            if status.state != JobState::Cancelled && !globals.json {
                eprintln!("job {job_id} had already ended ({})", status.state);
            }
            print_status(globals, &status)
        }
        JobCommand::Logs { job_id, task } => {
            let logs = jobs.logs(&job_id, task)?;
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
    if let Some(waiting) = &s.waiting {
        outln!("waiting: {waiting}")?;
    }
    if let Some(error) = &s.error {
        outln!("error:   {error}")?;
    }
    outln!("output:  {}", s.output)?;
    let skipped: u64 = s.stages.iter().map(|st| st.records_skipped).sum();
    if skipped > 0 {
        outln!("skipped: {skipped} malformed input records")?;
    }
    outln!(
        "submitted {}{}",
        time(s.submitted_ms),
        elapsed(s).map_or(String::new(), |d| format!(", ran {}", seconds(d)))
    )?;
    if s.usage.attempts > 0 {
        outln!(
            "used:    {} CPU, {} in task attempts ({}), peak guest memory {}",
            seconds(Duration::from_micros(s.usage.cpu_us)),
            seconds(Duration::from_micros(s.usage.wall_us)),
            s.usage.attempts,
            super::run::bytes(s.usage.peak_memory_bytes)
        )?;
    }
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

/// `weft job status --json`: the status, and every task attempt under `tasks`.
#[derive(serde::Serialize)]
struct StatusWithTasks<'a> {
    #[serde(flatten)]
    status: &'a JobStatus,
    tasks: &'a [TaskReport],
}

/// `weft job status --tasks`: a line per task attempt.
fn print_tasks(tasks: &[TaskReport]) -> Result<()> {
    outln!()?;
    if tasks.is_empty() {
        outln!("no task has ended yet")?;
        return Ok(());
    }
    outln!(
        "{:<8} {:>3} {:<10} {:<10} {:>11} {:>11} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "TASK",
        "TRY",
        "STATE",
        "WORKER",
        "RECORDS IN",
        "RECORDS OUT",
        "BYTES IN",
        "BYTES OUT",
        "CPU",
        "WALL",
        "MEMORY"
    )?;
    for t in tasks {
        outln!(
            "{:<8} {:>3} {:<10} {:<10} {:>11} {:>11} {:>10} {:>10} {:>9} {:>9} {:>10}",
            format!("{}.{}", t.stage, t.partition),
            t.attempt,
            t.state,
            t.worker_id,
            t.records_in,
            t.records_out,
            super::run::bytes(t.bytes_in),
            super::run::bytes(t.bytes_out),
            seconds(Duration::from_micros(t.cpu_us)),
            seconds(Duration::from_micros(t.wall_us)),
            super::run::bytes(t.peak_memory_bytes),
        )?;
    }
    Ok(())
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
