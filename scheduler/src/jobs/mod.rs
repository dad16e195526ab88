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
    /// What the stage's finished task attempts used, failed ones included.
    #[serde(default)]
    pub usage: Usage,
}

/// Resources task attempts used: CPU and wall time summed over them (microseconds), the largest
/// guest memory one grew to, and how many attempts are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_us: u64,
    pub wall_us: u64,
    pub peak_memory_bytes: u64,
    pub attempts: u64,
}

impl Usage {
    /// Counts one more attempt's `usage`.
    pub fn add(&mut self, usage: &weft_task::TaskUsage) {
        self.cpu_us += usage.cpu_us;
        self.wall_us += usage.wall_us;
        self.peak_memory_bytes = self.peak_memory_bytes.max(usage.peak_memory_bytes);
        self.attempts += 1;
    }

    /// `self` and `other` together.
    pub fn merge(&mut self, other: &Usage) {
        self.cpu_us += other.cpu_us;
        self.wall_us += other.wall_us;
        self.peak_memory_bytes = self.peak_memory_bytes.max(other.peak_memory_bytes);
        self.attempts += other.attempts;
    }
}

impl From<&Usage> for weft_proto::v1::Usage {
    fn from(u: &Usage) -> weft_proto::v1::Usage {
        weft_proto::v1::Usage {
            cpu_us: u.cpu_us,
            wall_us: u.wall_us,
            peak_memory_bytes: u.peak_memory_bytes,
            attempts: u.attempts,
        }
    }
}

impl From<Option<weft_proto::v1::Usage>> for Usage {
    fn from(u: Option<weft_proto::v1::Usage>) -> Usage {
        u.map(|u| Usage {
            cpu_us: u.cpu_us,
            wall_us: u.wall_us,
            peak_memory_bytes: u.peak_memory_bytes,
            attempts: u.attempts,
        })
        .unwrap_or_default()
    }
}

/// One recorded task attempt, as `weft job status --json` lists it under `tasks`: where it ran,
/// how it ended, what it read, wrote and used. Part of the JSON contract: fields are only added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub stage: u32,
    pub partition: u32,
    pub attempt: u32,
    pub worker_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    pub records_skipped: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Of `bytes_in`, what was read from a shuffle; of `bytes_out`, what was written into one.
    pub shuffle_bytes_read: u64,
    pub shuffle_bytes_written: u64,
    /// Shuffle blocks fetched from another worker.
    pub remote_fetches: u64,
    /// CPU time of the thread that ran the attempt, and its wall time, in microseconds.
    pub cpu_us: u64,
    pub wall_us: u64,
    /// The largest linear memory its guests grew to.
    pub peak_memory_bytes: u64,
}

impl TaskReport {
    pub fn new((stage, partition, attempt): store::AttemptKey, record: &TaskRecord) -> TaskReport {
        let state = if record.succeeded {
            JobState::Succeeded
        } else if record.cancelled {
            JobState::Cancelled
        } else {
            JobState::Failed
        };
        TaskReport {
            stage,
            partition,
            attempt,
            worker_id: record.worker_id.clone(),
            state,
            error: record.error.clone(),
            records_in: record.records_in,
            records_out: record.records_out,
            records_skipped: record.records_skipped,
            bytes_in: record.bytes_in,
            bytes_out: record.bytes_out,
            shuffle_bytes_read: record.shuffle_bytes_read,
            shuffle_bytes_written: record.blocks.iter().map(|(_, bytes)| bytes).sum(),
            remote_fetches: record.remote_fetches,
            cpu_us: record.cpu_us,
            wall_us: record.wall_us,
            peak_memory_bytes: record.peak_memory_bytes,
        }
    }
}

/// What one tenant's jobs used in all: `weft tenant usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub tenant: String,
    pub jobs: u64,
    pub usage: Usage,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Each tenant's totals over `jobs`, by tenant name. Records and bytes are the jobs' input
/// (their first stages') and output (their last stages'), not counted again at every shuffle.
pub fn usage_by_tenant(jobs: &[JobStatus]) -> Vec<TenantUsage> {
    let mut by_tenant: std::collections::BTreeMap<&str, TenantUsage> = Default::default();
    for job in jobs {
        let total = by_tenant
            .entry(job.tenant.as_str())
            .or_insert_with(|| TenantUsage {
                tenant: job.tenant.clone(),
                ..TenantUsage::default()
            });
        total.jobs += 1;
        total.usage.merge(&job.usage);
        for stage in job.stages.iter().filter(|s| s.parents.is_empty()) {
            total.records_in += stage.records_in;
            total.bytes_in += stage.bytes_in;
        }
        if let Some(last) = job.stages.last() {
            total.records_out += last.records_out;
            total.bytes_out += last.bytes_out;
        }
    }
    by_tenant.into_values().collect()
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
    /// What the job's finished task attempts used, over all its stages.
    #[serde(default)]
    pub usage: Usage,
    /// Why a queued job has not started, and its place in line (its tenant's cap of running
    /// jobs); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
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
