//! A local data directory that several `weft` processes use at once: two `weft run`s, a `job list`
//! or `module list` beside them.
//!
//! sled admits one process per database, so no process keeps one open for longer than a command's
//! bookkeeping takes:
//!
//! - The **registry** is opened to prepare a job and let go at once: the run keeps a copy of its
//!   tenant's index in memory ([`Registry::snapshot`]) and reads module bytes from the blob files.
//! - **Jobs** live in the shared store (`jobs/`, sled) once they are over. While a job runs, its
//!   process keeps it in memory ([`RunStore`]) and mirrors its record to `runs/<job id>.json`
//!   (with its pid and start time), where `job list` and `job status` see it; when it ends, the
//!   record, its task attempts and its logs move into the shared store. Job numbers come from
//!   the shared store's counter, one short open each.
//! - Each run shuffles under its own `work/run-<pid>-<start>/`, removed when it ends.
//!
//! A run killed outright (SIGKILL, a crash) leaves its `runs/` record, its work directory and its
//! output's staging directory. [`DataDir::sweep`], called by every local job command, removes
//! them once the process that made them is gone — known by its pid *and* its start time, so a
//! reused pid never passes for the dead run, and a live run's files are never touched — and
//! records the job as interrupted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use weft_scheduler::jobs::store::AttemptKey;
use weft_scheduler::jobs::{
    JobRecord, JobState, JobStatus, JobStore, MemoryJobStore, SledJobStore, StoreError, TaskLog,
    TaskRecord, TaskReport,
};

/// Why the data directory's jobs could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot use {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a run record", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The local data directory: `registry/`, `jobs/`, `runs/`, `work/`, `cache/`.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What `runs/<job id>.json` holds: the running job and the process that runs it.
#[derive(Debug, Serialize, Deserialize)]
struct RunFile {
    pid: u32,
    /// The process's start time (Linux: clock ticks since boot), 0 where unknown.
    started: u64,
    work_dir: PathBuf,
    record: JobRecord,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    fn work_root(&self) -> PathBuf {
        self.root.join("work")
    }

    /// The shared job store, open for one command's bookkeeping. `None` when the data directory
    /// has none yet: reading creates nothing.
    fn shared(&self) -> Result<Option<SledJobStore>, DataDirError> {
        if !self.jobs_dir().exists() {
            return Ok(None);
        }
        Ok(Some(SledJobStore::open(&self.jobs_dir())?))
    }

    fn shared_or_create(&self) -> Result<SledJobStore, DataDirError> {
        Ok(SledJobStore::open(&self.jobs_dir())?)
    }

    /// Every job: those over (from the shared store) and those running now, oldest first.
    pub fn list(&self) -> Result<Vec<JobStatus>, DataDirError> {
        let mut jobs: Vec<JobStatus> = match self.shared()? {
            Some(store) => store.all()?.into_iter().map(|r| r.status).collect(),
            None => Vec::new(),
        };
        for (_, run) in self.runs()? {
            if !jobs.iter().any(|j| j.job_id == run.record.status.job_id) {
                jobs.push(run.record.status);
            }
        }
        jobs.sort_by(|a, b| (a.submitted_ms, &a.job_id).cmp(&(b.submitted_ms, &b.job_id)));
        Ok(jobs)
    }

    /// One job's status, running or over; `None` if there is no such job.
    pub fn status(&self, job: &str) -> Result<Option<JobStatus>, DataDirError> {
        if let Some(run) = self.run(job)? {
            return Ok(Some(run.record.status));
        }
        match self.shared()? {
            Some(store) => Ok(store.get(job)?.map(|r| r.status)),
            None => Ok(None),
        }
    }

    /// The guest output of a job that is over (a running job's is kept by its process until it
    /// ends: empty here).
    pub fn logs(&self, job: &str) -> Result<Vec<TaskLog>, DataDirError> {
        match self.shared()? {
            Some(store) => Ok(store.logs(job)?),
            None => Ok(Vec::new()),
        }
    }

    /// Every recorded attempt of a job that is over (a running job's are kept by its process
    /// until it ends: empty here).
    pub fn tasks(&self, job: &str) -> Result<Vec<TaskReport>, DataDirError> {
        match self.shared()? {
            Some(store) => Ok(store
                .tasks(job)?
                .into_iter()
                .map(|(key, record)| TaskReport::new(key, &record))
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// The pid of the live process running `job`, if it is running.
    pub fn running_pid(&self, job: &str) -> Result<Option<u32>, DataDirError> {
        Ok(self
            .run(job)?
            .filter(|run| is_alive(run.pid, run.started))
            .map(|run| run.pid))
    }

    fn run(&self, job: &str) -> Result<Option<RunFile>, DataDirError> {
        Ok(self
            .runs()?
            .into_iter()
            .find(|(_, run)| run.record.status.job_id == job)
            .map(|(_, run)| run))
    }

    /// The records under `runs/`. One that cannot be read is skipped (it may be mid-rename).
    fn runs(&self) -> Result<Vec<(PathBuf, RunFile)>, DataDirError> {
        let dir = self.runs_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(DataDirError::Io { path: dir, source }),
        };
        let mut runs = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Ok(text) = fs::read(&path)
                && let Ok(run) = serde_json::from_slice::<RunFile>(&text)
            {
                runs.push((path, run));
            }
        }
        Ok(runs)
    }

    /// Cleans up after runs whose process is gone: each job still recorded as running is stored
    /// as failed ("interrupted"), and its output's staging directory, its work directory and its
    /// record under `runs/` are removed; so are work directories of dead runs that never got to
    /// submit. Returns the ids of the jobs so recorded. Nothing of a live process is touched.
    pub fn sweep(&self) -> Result<Vec<String>, DataDirError> {
        let mut swept = Vec::new();
        let mut store = None;
        for (path, run) in self.runs()? {
            if is_alive(run.pid, run.started) {
                continue;
            }
            let mut record = run.record;
            let status = &mut record.status;
            if !status.state.is_final() {
                status.state = JobState::Failed;
                status.error = Some(format!(
                    "interrupted: the weft process running it (pid {}) ended without finishing \
                     it (killed?); submit it again",
                    run.pid
                ));
                status.finished_ms = Some(now_ms());
                for stage in &mut status.stages {
                    stage.tasks_running = 0;
                }
            }
            weft_io::remove_abandoned_staging(Path::new(&status.output), run.pid);
            let _ = fs::remove_dir_all(&run.work_dir);
            let store = match &mut store {
                Some(store) => store,
                None => store.insert(self.shared_or_create()?),
            };
            // Kept if the job is already there (the process died after moving it).
            if store.get(&status.job_id)?.is_none() {
                store.put(&record)?;
            }
            store.flush()?;
            let _ = fs::remove_file(&path);
            swept.push(record.status.job_id);
        }
        // Half-written records of dead runs: `<job>.json.<pid>-<start>.tmp`.
        if let Ok(entries) = fs::read_dir(self.runs_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if let Some(owner) = name.strip_suffix(".tmp").and_then(|n| n.rsplit('.').next())
                    && let Some((pid, started)) = parse_run_dir(&format!("run-{owner}"))
                    && !is_alive(pid, started)
                {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let _ = fs::remove_dir(self.runs_dir());
        // Work directories of runs that died before they submitted (or whose record is gone).
        if let Ok(entries) = fs::read_dir(self.work_root()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if let Some((pid, started)) = parse_run_dir(&name.to_string_lossy())
                    && !is_alive(pid, started)
                {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let _ = fs::remove_dir(self.work_root());
        Ok(swept)
    }

    /// Starts a run of this process: its job store and its work directory.
    pub fn begin_run(&self) -> Result<RunStore, DataDirError> {
        let pid = std::process::id();
        let started = process_start(pid).unwrap_or(0);
        let work_dir = self.work_root().join(format!("run-{pid}-{started}"));
        fs::create_dir_all(&work_dir).map_err(|source| DataDirError::Io {
            path: work_dir.clone(),
            source,
        })?;
        let runs = self.runs_dir();
        fs::create_dir_all(&runs).map_err(|source| DataDirError::Io {
            path: runs.clone(),
            source,
        })?;
        Ok(RunStore {
            data: self.clone(),
            memory: MemoryJobStore::new(),
            pid,
            started,
            work_dir,
            notes: Mutex::new(Vec::new()),
        })
    }
}

/// The job store of one local run: in memory, mirrored to `runs/`, moved into the shared store by
/// [`RunStore::finish`].
#[derive(Debug)]
pub struct RunStore {
    data: DataDir,
    memory: MemoryJobStore,
    pid: u32,
    started: u64,
    work_dir: PathBuf,
    /// Replacements of a job's error message, applied when it is moved (see [`RunStore::note`]).
    notes: Mutex<Vec<(String, String)>>,
}

impl RunStore {
    /// Where this run's workers keep their shuffle files.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Says why `job` ended, in place of the scheduler's words, e.g. that the user interrupted
    /// it.
    pub fn note(&self, job: &str, error: String) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((job.to_owned(), error));
    }

    /// Shows `status`, the job's live status (which moves with every task report, between the
    /// scheduler's writes), to other processes' `job list` and `job status`.
    pub fn publish(&self, status: &JobStatus) -> Result<(), StoreError> {
        let Some(mut record) = self.memory.get(&status.job_id)? else {
            return Ok(());
        };
        record.status = status.clone();
        self.write_run_file(&record)
    }

    fn write_run_file(&self, record: &JobRecord) -> Result<(), StoreError> {
        let run = RunFile {
            pid: self.pid,
            started: self.started,
            work_dir: self.work_dir.clone(),
            record: record.clone(),
        };
        let path = self.run_file(&record.status.job_id);
        let text = serde_json::to_vec(&run).map_err(|source| StoreError::Corrupt {
            key: record.status.job_id.clone(),
            source,
        })?;
        // A live view for other processes: written whole (renamed into place), not fsynced —
        // after a crash, the sweep goes by what is there.
        let temp = path.with_extension(format!("json.{}-{}.tmp", self.pid, self.started));
        // `runs/` is made again each time, and once more should it vanish in between: a run ending
        // in another process removes it when it is empty.
        let write = || {
            fs::create_dir_all(self.data.runs_dir())
                .and_then(|()| fs::write(&temp, &text))
                .and_then(|()| fs::rename(&temp, &path))
        };
        write()
            .or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => write(),
                _ => Err(e),
            })
            .map_err(|e| StoreError::Malformed {
                key: path.display().to_string(),
                detail: format!("cannot write the run record: {e}"),
            })
    }

    fn run_file(&self, job: &str) -> PathBuf {
        self.data.runs_dir().join(format!("{job}.json"))
    }

    /// Moves every job of this run into the shared store and removes the run's files: its
    /// records under `runs/` and its work directory. Jobs still running are stored as they are;
    /// call this once they are over.
    pub fn finish(&self) -> Result<(), DataDirError> {
        let notes = std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()));
        let records = self.memory.all()?;
        if !records.is_empty() {
            let shared = self.data.shared_or_create()?;
            for mut record in records {
                let job = record.status.job_id.clone();
                if let Some((_, error)) = notes.iter().rev().find(|(j, _)| *j == job) {
                    record.status.error = Some(error.clone());
                }
                for (attempt, task) in self.memory.tasks(&job)? {
                    shared.put_task(&job, attempt, &task)?;
                }
                for log in self.memory.logs(&job)? {
                    shared.put_log(&job, &log)?;
                }
                shared.put(&record)?;
                shared.flush()?;
                let _ = fs::remove_file(self.run_file(&job));
            }
        }
        let _ = fs::remove_dir_all(&self.work_dir);
        // Left only if another run uses them (`remove_dir` keeps a non-empty directory).
        let _ = fs::remove_dir(self.data.work_root());
        let _ = fs::remove_dir(self.data.runs_dir());
        Ok(())
    }
}

impl JobStore for RunStore {
    fn new_job_id(&self, name: &str) -> Result<String, StoreError> {
        let shared = self.data.shared_or_create().map_err(|e| match e {
            DataDirError::Store(e) => e,
            other => StoreError::Malformed {
                key: "jobs".into(),
                detail: other.to_string(),
            },
        })?;
        shared.new_job_id(name)
    }

    fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        self.memory.put(record)?;
        self.write_run_file(record)
    }

    fn get(&self, job: &str) -> Result<Option<JobRecord>, StoreError> {
        self.memory.get(job)
    }

    fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.memory.all()
    }

    fn put_task(
        &self,
        job: &str,
        attempt: AttemptKey,
        record: &TaskRecord,
    ) -> Result<(), StoreError> {
        self.memory.put_task(job, attempt, record)
    }

    fn tasks(&self, job: &str) -> Result<Vec<(AttemptKey, TaskRecord)>, StoreError> {
        self.memory.tasks(job)
    }

    fn put_log(&self, job: &str, log: &TaskLog) -> Result<(), StoreError> {
        self.memory.put_log(job, log)
    }

    fn logs(&self, job: &str) -> Result<Vec<TaskLog>, StoreError> {
        self.memory.logs(job)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// `run-<pid>-<start>` → `(pid, start)`.
fn parse_run_dir(name: &str) -> Option<(u32, u64)> {
    let (pid, started) = name.strip_prefix("run-")?.split_once('-')?;
    Some((pid.parse().ok()?, started.parse().ok()?))
}

/// Whether the process `pid`, started at `started` (0: unknown), still runs. A pid now used by
/// another process (a different start time) counts as gone.
fn is_alive(pid: u32, started: u64) -> bool {
    #[cfg(unix)]
    {
        let Ok(raw) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let exists = unsafe { libc::kill(raw, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !exists {
            return false;
        }
        match (started, process_start(pid)) {
            (0, _) | (_, None) => true,
            (started, Some(now)) => started == now,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, started);
        true
    }
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`); `None`
/// where that cannot be read.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let pid = std::process::id();
        let started = process_start(pid).expect("/proc is readable here");
        assert!(is_alive(pid, started));
        assert!(is_alive(pid, 0));
        assert!(!is_alive(pid, started + 1), "same pid, another start");
        assert!(!is_alive(u32::MAX, 0));
    }

    #[test]
    fn run_dir_names() {
        assert_eq!(parse_run_dir("run-12-345"), Some((12, 345)));
        assert_eq!(parse_run_dir("worker-0"), None);
        assert_eq!(parse_run_dir("run-x-1"), None);
    }
}
