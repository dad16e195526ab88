//! Jobs as the scheduler keeps them: their status (what `weft job status` shows, and its stable
//! JSON form), what was submitted, and the captured guest output of their tasks, persisted by a
//! [`JobStore`] (in sled, on disk) so that a restarted scheduler still knows every job it was given.
//!
//! The JSON of [`JobStatus`] is a contract (README, "Job status as JSON"): fields are only ever
//! added.

pub mod store;

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use store::{JobRecord, JobStore, MemoryJobStore, SledJobStore, StoreError, TaskRecord};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted, waiting for a worker.
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Whether the job is over: its output committed or abandoned, its tasks stopped.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Progress of one stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStatus {
    pub stage: u32,
    pub parents: Vec<u32>,
    /// The stage's steps as `module@version/function`, the wide step (if any) first.
    pub steps: Vec<String>,
    pub tasks_total: u32,
    pub tasks_done: u32,
    pub tasks_running: u32,
    pub tasks_failed: u32,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Shuffle blocks this stage's tasks fetched from another worker.
    pub remote_fetches: u64,
    /// Malformed input records the stage's tasks dropped (`on_error` skip or quarantine).
    #[serde(default)]
    pub records_skipped: u64,
    /// What the running tasks have read so far (not yet in `records_in` / `bytes_in`), as their
    /// workers' heartbeats report it.
    #[serde(default)]
    pub records_in_running: u64,
    #[serde(default)]
    pub bytes_in_running: u64,
    /// The bytes the stage reads in all (its splits, or its parent's shuffle output); 0 until
    /// known. With `bytes_in + bytes_in_running`, how far along it is.
    #[serde(default)]
    pub bytes_total: u64,
}

/// A job's status: what `weft job status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job_id: String,
    pub tenant: String,
    pub name: String,
    pub state: JobState,
    /// Why the job failed or was cancelled.
    pub error: Option<String>,
    /// The output directory.
    pub output: String,
    pub submitted_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    pub stages: Vec<StageStatus>,
}

/// A task attempt's captured guest output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLog {
    pub stage: u32,
    pub partition: u32,
    pub attempt: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The guest wrote more than the worker keeps; the rest was dropped.
    pub truncated: bool,
}

/// A `STAGE.PARTITION` reference to one task, as `weft job logs --task` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRef {
    pub stage: u32,
    pub partition: u32,
}

impl FromStr for TaskRef {
    type Err = String;

    fn from_str(s: &str) -> Result<TaskRef, String> {
        let bad = || format!("invalid task {s:?}: expected STAGE.PARTITION, e.g. 0.3");
        let (stage, partition) = s.split_once('.').ok_or_else(bad)?;
        Ok(TaskRef {
            stage: stage.parse().map_err(|_| bad())?,
            partition: partition.parse().map_err(|_| bad())?,
        })
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_refs_parse_and_bad_ones_are_named() {
        assert_eq!(
            "2.17".parse::<TaskRef>(),
            Ok(TaskRef {
                stage: 2,
                partition: 17
            })
        );
        for bad in ["", "3", "a.b", "1.-2", "1.2.3"] {
            let err = bad.parse::<TaskRef>().unwrap_err();
            assert!(err.contains("STAGE.PARTITION"), "{bad}: {err}");
        }
    }
}
