//! [`JobStore`]: jobs, task attempts and guest logs in sled, under the scheduler's data directory.
//!
//! Three trees:
//! - `jobs`: job id → JSON `{status, submission}`, rewritten at every state change and task end;
//! - `tasks`: `job \0 stage partition attempt` (big-endian u32s) → JSON [`TaskRecord`], so a
//!   restarted scheduler knows which attempts ran where and which shuffle blocks they left;
//! - `logs`: the same key → a task's captured stdout and stderr.
//!
//! Job ids come from sled's monotonic id generator, so they stay unique across restarts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{JobStatus, Submission, TaskLog};

/// Why the job store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store: {0}")]
    Db(#[from] sled::Error),
    #[error("job store: corrupt record {key}: {detail}")]
    Corrupt { key: String, detail: String },
}

/// What is stored for a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub status: JobStatus,
    pub submission: Submission,
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
}

/// A task attempt's `(stage, partition, attempt)`.
pub type AttemptKey = (u32, u32, u32);

/// The scheduler's durable job state.
#[derive(Debug, Clone)]
pub struct JobStore {
    db: sled::Db,
    jobs: sled::Tree,
    tasks: sled::Tree,
    logs: sled::Tree,
}

fn task_key(job: &str, stage: u32, partition: u32, attempt: u32) -> Vec<u8> {
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

impl JobStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<JobStore, StoreError> {
        JobStore::from_db(crate::sled_db::open(dir)?)
    }

    /// A store that lives in memory only (tests, throwaway clusters).
    pub fn temporary() -> Result<JobStore, StoreError> {
        JobStore::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<JobStore, StoreError> {
        Ok(JobStore {
            jobs: db.open_tree("jobs")?,
            tasks: db.open_tree("tasks")?,
            logs: db.open_tree("logs")?,
            db,
        })
    }

    /// A new job id for a job called `name`: `NAME-N`, N never reused.
    pub fn new_job_id(&self, name: &str) -> Result<String, StoreError> {
        Ok(format!("{name}-{}", self.db.generate_id()? + 1))
    }

    pub fn put(&self, record: &JobRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
            key: record.status.job_id.clone(),
            detail: e.to_string(),
        })?;
        self.jobs.insert(record.status.job_id.as_bytes(), value)?;
        Ok(())
    }

    pub fn get(&self, job: &str) -> Result<Option<JobRecord>, StoreError> {
        self.jobs
            .get(job.as_bytes())?
            .map(|v| decode(job, &v))
            .transpose()
    }

    /// Every job, oldest first.
    pub fn all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut records = Vec::new();
        for item in self.jobs.iter() {
            let (key, value) = item?;
            records.push(decode(&String::from_utf8_lossy(&key), &value)?);
        }
        records.sort_by_key(|r| r.status.submitted_ms);
        Ok(records)
    }

    pub fn put_task(
        &self,
        job: &str,
        stage: u32,
        partition: u32,
        attempt: u32,
        record: &TaskRecord,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
            key: format!("{job}/{stage}.{partition}.{attempt}"),
            detail: e.to_string(),
        })?;
        self.tasks
            .insert(task_key(job, stage, partition, attempt), value)?;
        Ok(())
    }

    /// Every recorded attempt of `job`, as `((stage, partition, attempt), record)`.
    pub fn tasks(&self, job: &str) -> Result<Vec<(AttemptKey, TaskRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tasks.scan_prefix(job_prefix(job)) {
            let (key, value) = item?;
            let id = parse_ids(job, &key)?;
            let record = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                key: format!("{job}/task"),
                detail: e.to_string(),
            })?;
            out.push((id, record));
        }
        Ok(out)
    }

    /// Stores a task attempt's guest output (nothing when it wrote nothing).
    pub fn put_log(&self, job: &str, log: &TaskLog) -> Result<(), StoreError> {
        if log.stdout.is_empty() && log.stderr.is_empty() {
            return Ok(());
        }
        let mut value = Vec::with_capacity(5 + log.stdout.len() + log.stderr.len());
        value.push(u8::from(log.truncated));
        value.extend_from_slice(&(log.stdout.len() as u32).to_be_bytes());
        value.extend_from_slice(&log.stdout);
        value.extend_from_slice(&log.stderr);
        self.logs
            .insert(task_key(job, log.stage, log.partition, log.attempt), value)?;
        Ok(())
    }

    /// The guest output of `job`'s tasks, in stage, partition and attempt order.
    pub fn logs(&self, job: &str) -> Result<Vec<TaskLog>, StoreError> {
        let mut out = Vec::new();
        for item in self.logs.scan_prefix(job_prefix(job)) {
            let (key, value) = item?;
            let (stage, partition, attempt) = parse_ids(job, &key)?;
            let corrupt = || StoreError::Corrupt {
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

    /// Writes everything to disk now.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn decode(key: &str, value: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
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
        _ => Err(StoreError::Corrupt {
            key: format!("{job}/task key"),
            detail: format!("{} bytes after the job id, expected 12", tail.len()),
        }),
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
            },
            submission: Submission::default(),
        }
    }

    #[test]
    fn jobs_tasks_and_logs_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a;
        {
            let store = JobStore::open(dir.path()).unwrap();
            a = store.new_job_id("wc").unwrap();
            store.put(&record(&a, 2)).unwrap();
            store.put(&record("wc-x", 1)).unwrap();
            // A job whose id is a prefix of another's must not see the other's tasks.
            store
                .put_task(
                    &a,
                    1,
                    2,
                    0,
                    &TaskRecord {
                        worker_id: "w1".into(),
                        succeeded: true,
                        blocks: vec![(3, 40)],
                        ..TaskRecord::default()
                    },
                )
                .unwrap();
            store
                .put_task(&format!("{a}0"), 0, 0, 0, &TaskRecord::default())
                .unwrap();
            store
                .put_log(
                    &a,
                    &TaskLog {
                        stage: 1,
                        partition: 2,
                        attempt: 0,
                        stdout: b"out".to_vec(),
                        stderr: b"err\n".to_vec(),
                        truncated: true,
                    },
                )
                .unwrap();
            store
                .put_log(
                    &a,
                    &TaskLog {
                        stage: 0,
                        partition: 0,
                        attempt: 0,
                        ..TaskLog::default()
                    },
                )
                .unwrap();
            store.flush().unwrap();
        }
        let store = JobStore::open(dir.path()).unwrap();
        let b = store.new_job_id("wc").unwrap();
        assert_ne!(a, b, "job ids are never reused");
        let all: Vec<String> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|r| r.status.job_id)
            .collect();
        assert_eq!(all, vec!["wc-x".to_owned(), a.clone()]);
        let tasks = store.tasks(&a).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].0, (1, 2, 0));
        assert_eq!(tasks[0].1.blocks, vec![(3, 40)]);
        let logs = store.logs(&a).unwrap();
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
    }
}
