//! [`JobStore`]: where the scheduler keeps jobs, task attempts and guest logs, so that a restarted
//! scheduler still knows every job it was given. A small trait, so a later store (a shared
//! database for several schedulers, say) can be added without touching its callers; two
//! implementations:
//!
//! - [`SledJobStore`], on disk under the scheduler's data directory, in three sled trees:
//!   - `jobs`: job id → JSON `{status, submission}`, rewritten at every state change and task end;
//!   - `tasks`: `job \0 stage partition attempt` (big-endian u32s) → JSON [`TaskRecord`], so a
//!     restarted scheduler knows which attempts ran where and which shuffle blocks they left;
//!   - `logs`: the same key → a task's captured stdout and stderr.
//!
//!   Job ids come from sled's monotonic id generator, so they stay unique across restarts.
//! - [`MemoryJobStore`], for a scheduler that need not outlive its process (tests, throwaway
//!   clusters).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{JobStatus, TaskLog};
use crate::job::Submission;

/// Why the job store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store")]
    Db(#[from] sled::Error),
    #[error("job store: corrupt record {key}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("job store: corrupt record {key}: {detail}")]
    Malformed { key: String, detail: String },
}

/// What is stored for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub status: JobStatus,
    pub submission: Submission,
    /// The staging directory of the job's output, once made: a restarted scheduler picks the job
    /// up with the parts written there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<String>,
    /// The split size chosen for the job at submission, when its job file sets none: it depends
    /// on the slots live then, so a restarted scheduler, whose workers may differ, plans the job
    /// with this size rather than choosing again. `None` for a job file's own size, and in
    /// records of schedulers that planned every such job with 128 MiB splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_size: Option<u64>,
}

/// One task attempt as the scheduler saw it end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub worker_id: String,
    pub succeeded: bool,
    pub error: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Shuffle blocks written: `(reduce partition, bytes)` on `worker_id`.
    pub blocks: Vec<(u32, u64)>,
    /// The attempt was killed (the job was cancelled or failed elsewhere, or its worker stopped).
    #[serde(default)]
    pub cancelled: bool,
    #[serde(default)]
    pub records_skipped: u64,
    /// Of `bytes_in`, what was read from a shuffle (all of it, in a stage that reads one).
    #[serde(default)]
    pub shuffle_bytes_read: u64,
    #[serde(default)]
    pub remote_fetches: u64,
    /// What the attempt used (see [`weft_task::TaskUsage`]), whether it succeeded or not.
    #[serde(default)]
    pub cpu_us: u64,
    /// Where `worker_id` served the blocks from (its address when it ran the attempt).
    #[serde(default)]
    pub worker_address: String,
    #[serde(default)]
    pub wall_us: u64,
    #[serde(default)]
    pub peak_memory_bytes: u64,
}

/// A task attempt's `(stage, partition, attempt)`.
pub type AttemptKey = (u32, u32, u32);

/// The scheduler's durable job state.
pub trait JobStore: Send + Sync + fmt::Debug {
    /// A new id for a job called `name`: `NAME-N`, N never reused by this store.
    fn new_job_id(&self, name: &str) -> Result<String, StoreError>;

    /// Stores (or replaces) a job's record.
    fn put(&self, record: &JobRecord) -> Result<(), StoreError>;

    fn get(&self, job: &str) -> Result<Option<JobRecord>, StoreError>;

    /// Every job, oldest first.
    fn all(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Stores what one task attempt did.
    fn put_task(
        &self,
        job: &str,
        attempt: AttemptKey,
        record: &TaskRecord,
    ) -> Result<(), StoreError>;

    /// Every recorded attempt of `job`, in stage, partition and attempt order.
    fn tasks(&self, job: &str) -> Result<Vec<(AttemptKey, TaskRecord)>, StoreError>;

    /// Stores a task attempt's guest output (nothing when it wrote nothing).
    fn put_log(&self, job: &str, log: &TaskLog) -> Result<(), StoreError>;

    /// The guest output of `job`'s tasks, in stage, partition and attempt order.
    fn logs(&self, job: &str) -> Result<Vec<TaskLog>, StoreError>;

    /// Makes everything stored so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// The key (in the default tree) of the last job number handed out, big-endian.
const NEXT_JOB_KEY: &[u8] = b"next-job-number";

/// Jobs in sled, on disk.
#[derive(Debug, Clone)]
pub struct SledJobStore {
    db: sled::Db,
    jobs: sled::Tree,
    tasks: sled::Tree,
    logs: sled::Tree,
}

fn task_key(job: &str, (stage, partition, attempt): AttemptKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(job.len() + 13);
    key.extend_from_slice(job.as_bytes());
    key.push(0);
    key.extend_from_slice(&stage.to_be_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&attempt.to_be_bytes());
    key
}

fn job_prefix(job: &str) -> Vec<u8> {
    let mut key = job.as_bytes().to_vec();
    key.push(0);
    key
}

impl SledJobStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SledJobStore, StoreError> {
        let db = crate::sled_db::open(dir)?;
        Ok(SledJobStore {
            jobs: db.open_tree("jobs")?,
            tasks: db.open_tree("tasks")?,
            logs: db.open_tree("logs")?,
            db,
        })
    }
}

impl JobStore for SledJobStore {
    /// `NAME-N`, N counting the jobs of this store from 1. The counter is flushed before the id
    /// is handed out, so a crash never gives an id twice.
    fn new_job_id(&self, name: &str) -> Result<String, StoreError> {
        let next = self.db.update_and_fetch(NEXT_JOB_KEY, |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        self.db.flush()?;
        let n = next
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        Ok(format!("{name}-{n}"))
    }

    fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        let value = encode(&record.status.job_id, record)?;
        self.jobs.insert(record.status.job_id.as_bytes(), value)?;
        Ok(())
    }

    fn get(&self, job: &str) -> Result<Option<JobRecord>, StoreError> {
        self.jobs
            .get(job.as_bytes())?
            .map(|v| decode(job, &v))
            .transpose()
    }

    fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut records = Vec::new();
        for item in self.jobs.iter() {
            let (key, value) = item?;
            records.push(decode(&String::from_utf8_lossy(&key), &value)?);
        }
        records.sort_by_key(|r: &JobRecord| r.status.submitted_ms);
        Ok(records)
    }

    fn put_task(
        &self,
        job: &str,
        attempt: AttemptKey,
        record: &TaskRecord,
    ) -> Result<(), StoreError> {
        let (stage, partition, n) = attempt;
        let value = encode(&format!("{job}/{stage}.{partition}.{n}"), record)?;
        self.tasks.insert(task_key(job, attempt), value)?;
        Ok(())
    }

    fn tasks(&self, job: &str) -> Result<Vec<(AttemptKey, TaskRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tasks.scan_prefix(job_prefix(job)) {
            let (key, value) = item?;
            let id = parse_ids(job, &key)?;
            out.push((id, decode(&format!("{job}/task"), &value)?));
        }
        Ok(out)
    }

    fn put_log(&self, job: &str, log: &TaskLog) -> Result<(), StoreError> {
        if log.stdout.is_empty() && log.stderr.is_empty() {
            return Ok(());
        }
        let mut value = Vec::with_capacity(5 + log.stdout.len() + log.stderr.len());
        value.push(u8::from(log.truncated));
        value.extend_from_slice(&(log.stdout.len() as u32).to_be_bytes());
        value.extend_from_slice(&log.stdout);
        value.extend_from_slice(&log.stderr);
        self.logs.insert(
            task_key(job, (log.stage, log.partition, log.attempt)),
            value,
        )?;
        Ok(())
    }

    fn logs(&self, job: &str) -> Result<Vec<TaskLog>, StoreError> {
        let mut out = Vec::new();
        for item in self.logs.scan_prefix(job_prefix(job)) {
            let (key, value) = item?;
            let (stage, partition, attempt) = parse_ids(job, &key)?;
            let corrupt = || StoreError::Malformed {
                key: format!("{job}/log {stage}.{partition}.{attempt}"),
                detail: "truncated value".into(),
            };
            let len_bytes: [u8; 4] = value
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(corrupt)?;
            let len = u32::from_be_bytes(len_bytes) as usize;
            let stdout = value.get(5..5 + len).ok_or_else(corrupt)?.to_vec();
            let stderr = value[5 + len..].to_vec();
            out.push(TaskLog {
                stage,
                partition,
                attempt,
                stdout,
                stderr,
                truncated: value[0] != 0,
            });
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn parse_ids(job: &str, key: &[u8]) -> Result<AttemptKey, StoreError> {
    let tail = &key[job.len() + 1..];
    let word = |i: usize| {
        tail.get(i * 4..i * 4 + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    };
    match (word(0), word(1), word(2), tail.len()) {
        (Some(s), Some(p), Some(a), 12) => Ok((s, p, a)),
        _ => Err(StoreError::Malformed {
            key: format!("{job}/task key"),
            detail: format!("{} bytes after the job id, expected 12", tail.len()),
        }),
    }
}

/// Jobs in memory, gone with the process.
#[derive(Debug, Default)]
pub struct MemoryJobStore {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    next_id: u64,
    jobs: BTreeMap<String, JobRecord>,
    tasks: BTreeMap<(String, AttemptKey), TaskRecord>,
    logs: BTreeMap<(String, AttemptKey), TaskLog>,
}

impl MemoryJobStore {
    pub fn new() -> MemoryJobStore {
        MemoryJobStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The entries of `job` in a map keyed by `(job, attempt)`, in attempt order.
fn of_job<'a, T>(
    map: &'a BTreeMap<(String, AttemptKey), T>,
    job: &str,
) -> impl Iterator<Item = (&'a AttemptKey, &'a T)> {
    let start = (job.to_owned(), (0, 0, 0));
    map.range(start..)
        .take_while(move |((j, _), _)| j == job)
        .map(|((_, key), value)| (key, value))
}

impl JobStore for MemoryJobStore {
    fn new_job_id(&self, name: &str) -> Result<String, StoreError> {
        let mut inner = self.lock();
        inner.next_id += 1;
        Ok(format!("{name}-{}", inner.next_id))
    }

    fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        self.lock()
            .jobs
            .insert(record.status.job_id.clone(), record.clone());
        Ok(())
    }

    fn get(&self, job: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.lock().jobs.get(job).cloned())
    }

    fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut records: Vec<JobRecord> = self.lock().jobs.values().cloned().collect();
        records.sort_by_key(|r| r.status.submitted_ms);
        Ok(records)
    }

    fn put_task(
        &self,
        job: &str,
        attempt: AttemptKey,
        record: &TaskRecord,
    ) -> Result<(), StoreError> {
        self.lock()
            .tasks
            .insert((job.to_owned(), attempt), record.clone());
        Ok(())
    }

    fn tasks(&self, job: &str) -> Result<Vec<(AttemptKey, TaskRecord)>, StoreError> {
        Ok(of_job(&self.lock().tasks, job)
            .map(|(key, record)| (*key, record.clone()))
            .collect())
    }

    fn put_log(&self, job: &str, log: &TaskLog) -> Result<(), StoreError> {
        if log.stdout.is_empty() && log.stderr.is_empty() {
            return Ok(());
        }
        let key = (job.to_owned(), (log.stage, log.partition, log.attempt));
        self.lock().logs.insert(key, log.clone());
        Ok(())
    }

    fn logs(&self, job: &str) -> Result<Vec<TaskLog>, StoreError> {
        Ok(of_job(&self.lock().logs, job)
            .map(|(_, log)| log.clone())
            .collect())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobState;

    fn record(id: &str, submitted_ms: u64) -> JobRecord {
        JobRecord {
            status: JobStatus {
                job_id: id.into(),
                tenant: "default".into(),
                name: "wc".into(),
                state: JobState::Queued,
                error: None,
                output: "/out".into(),
                submitted_ms,
                started_ms: None,
                finished_ms: None,
                stages: vec![],
                usage: Default::default(),
                waiting: None,
            },
            submission: Submission::default(),
            staging: None,
            split_size: None,
        }
    }

    /// Stores two jobs, attempts and logs (one of them empty); returns the first job's id.
    fn fill(store: &dyn JobStore) -> String {
        let a = store.new_job_id("wc").unwrap();
        store.put(&record(&a, 2)).unwrap();
        store.put(&record("wc-x", 1)).unwrap();
        let block = TaskRecord {
            worker_id: "w1".into(),
            succeeded: true,
            blocks: vec![(3, 40)],
            ..TaskRecord::default()
        };
        store.put_task(&a, (1, 2, 0), &block).unwrap();
        // A job whose id is a prefix of another's must not see the other's tasks.
        store
            .put_task(&format!("{a}0"), (0, 0, 0), &TaskRecord::default())
            .unwrap();
        let log = TaskLog {
            stage: 1,
            partition: 2,
            attempt: 0,
            stdout: b"out".to_vec(),
            stderr: b"err\n".to_vec(),
            truncated: true,
        };
        store.put_log(&a, &log).unwrap();
        let silent = TaskLog {
            stage: 0,
            partition: 0,
            attempt: 0,
            ..TaskLog::default()
        };
        store.put_log(&a, &silent).unwrap();
        store.flush().unwrap();
        a
    }

    /// What `fill` stored, read back.
    fn check(store: &dyn JobStore, a: &str) {
        let b = store.new_job_id("wc").unwrap();
        assert_eq!((a, b.as_str()), ("wc-1", "wc-2"), "job ids are sequential");
        let all: Vec<String> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|r| r.status.job_id)
            .collect();
        assert_eq!(all, vec!["wc-x".to_owned(), a.to_owned()]);
        let tasks = store.tasks(a).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].0, (1, 2, 0));
        assert_eq!(tasks[0].1.blocks, vec![(3, 40)]);
        let logs = store.logs(a).unwrap();
        assert_eq!(
            logs,
            vec![TaskLog {
                stage: 1,
                partition: 2,
                attempt: 0,
                stdout: b"out".to_vec(),
                stderr: b"err\n".to_vec(),
                truncated: true
            }]
        );
        assert!(store.get("nope").unwrap().is_none());
        assert_eq!(store.get(a).unwrap(), Some(record(a, 2)));
    }

    #[test]
    fn sled_keeps_jobs_tasks_and_logs_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = fill(&SledJobStore::open(dir.path()).unwrap());
        check(&SledJobStore::open(dir.path()).unwrap(), &a);
    }

    #[test]
    fn memory_keeps_the_same_as_sled() {
        let store = MemoryJobStore::new();
        let a = fill(&store);
        check(&store, &a);
    }
}
