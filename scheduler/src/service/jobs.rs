//! `weft.v1.Jobs` and `weft.v1.Cluster` over a [`Scheduler`]: submit, status, watch, list, cancel
//! and logs of jobs, and the registered workers. Conversions between the job domain types and their
//! protobuf messages live here, both ways (the client uses the other direction).

use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1 as pb;

use weft_task::convert::bad;
use weft_task::{ConvertError, error_chain};

use crate::Tenant;
use crate::access::{Identity, identity_of};
use crate::cluster::{LookupError, Scheduler, SubmitError, WorkerInfo};
use crate::job::{PrepareError, Submission};
use crate::jobs::{
    JobState, JobStatus, StageStatus, TaskLog, TaskRef, TaskReport, TenantUsage, usage_by_tenant,
};

fn lookup_status(e: LookupError) -> Status {
    match e {
        LookupError::NotFound(_) => Status::not_found(error_chain(&e)),
        LookupError::Store(_) => Status::internal(error_chain(&e)),
    }
}

/// The status of a refused submission: its whole message, and a code a client can act on.
fn submit_status(e: SubmitError) -> Status {
    let message = error_chain(&e);
    match e {
        SubmitError::Prepare(PrepareError::Output { .. }) => Status::already_exists(message),
        // A client on another machine may not know where the scheduler looks.
        SubmitError::Prepare(PrepareError::Input { .. }) => Status::invalid_argument(format!(
            "{message} (the scheduler resolves inputs on its own file system: inputs must be on \
             one the scheduler and every worker can read, at the same path)"
        )),
        SubmitError::Store(_) => Status::internal(message),
        SubmitError::Roots { .. } => Status::permission_denied(message),
        SubmitError::QueueFull { .. } => Status::resource_exhausted(message),
        SubmitError::Prepare(_) | SubmitError::Unreadable { .. } | SubmitError::Limits { .. } => {
            Status::invalid_argument(message)
        }
    }
}

pub fn state_to_pb(state: JobState) -> pb::JobState {
    match state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

pub fn state_from_pb(state: i32) -> Result<JobState, ConvertError> {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Queued) => Ok(JobState::Queued),
        Ok(pb::JobState::Running) => Ok(JobState::Running),
        Ok(pb::JobState::Succeeded) => Ok(JobState::Succeeded),
        Ok(pb::JobState::Failed) => Ok(JobState::Failed),
        Ok(pb::JobState::Cancelled) => Ok(JobState::Cancelled),
        _ => Err(bad("JobStatus.state", format!("invalid job state {state}"))),
    }
}

impl From<&TaskReport> for pb::TaskReport {
    fn from(t: &TaskReport) -> pb::TaskReport {
        pb::TaskReport {
            stage_id: t.stage,
            partition: t.partition,
            attempt: t.attempt,
            worker_id: t.worker_id.clone(),
            state: state_to_pb(t.state).into(),
            error: t.error.clone().unwrap_or_default(),
            records_in: t.records_in,
            records_out: t.records_out,
            records_skipped: t.records_skipped,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            shuffle_bytes_read: t.shuffle_bytes_read,
            shuffle_bytes_written: t.shuffle_bytes_written,
            remote_fetches: t.remote_fetches,
            cpu_us: t.cpu_us,
            wall_us: t.wall_us,
            peak_memory_bytes: t.peak_memory_bytes,
        }
    }
}

impl TryFrom<pb::TaskReport> for TaskReport {
    type Error = ConvertError;

    fn try_from(t: pb::TaskReport) -> Result<TaskReport, ConvertError> {
        Ok(TaskReport {
            stage: t.stage_id,
            partition: t.partition,
            attempt: t.attempt,
            worker_id: t.worker_id,
            state: state_from_pb(t.state)?,
            error: (!t.error.is_empty()).then_some(t.error),
            records_in: t.records_in,
            records_out: t.records_out,
            records_skipped: t.records_skipped,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            shuffle_bytes_read: t.shuffle_bytes_read,
            shuffle_bytes_written: t.shuffle_bytes_written,
            remote_fetches: t.remote_fetches,
            cpu_us: t.cpu_us,
            wall_us: t.wall_us,
            peak_memory_bytes: t.peak_memory_bytes,
        })
    }
}

fn opt_ms(ms: u64) -> Option<u64> {
    (ms != 0).then_some(ms)
}

impl From<&JobStatus> for pb::JobStatus {
    fn from(s: &JobStatus) -> pb::JobStatus {
        pb::JobStatus {
            job_id: s.job_id.clone(),
            tenant: s.tenant.clone(),
            name: s.name.clone(),
            state: state_to_pb(s.state) as i32,
            stages: s
                .stages
                .iter()
                .map(|st| pb::StageStatus {
                    stage_id: st.stage,
                    steps: st.steps.clone(),
                    tasks_total: st.tasks_total,
                    tasks_done: st.tasks_done,
                    tasks_running: st.tasks_running,
                    tasks_failed: st.tasks_failed,
                    records_in: st.records_in,
                    records_out: st.records_out,
                    bytes_in: st.bytes_in,
                    bytes_out: st.bytes_out,
                    parent_stages: st.parents.clone(),
                    remote_fetches: st.remote_fetches,
                    records_skipped: st.records_skipped,
                    records_in_running: st.records_in_running,
                    bytes_in_running: st.bytes_in_running,
                    bytes_total: st.bytes_total,
                    usage: Some((&st.usage).into()),
                })
                .collect(),
            usage: Some((&s.usage).into()),
            waiting: s.waiting.clone().unwrap_or_default(),
            error: s.error.clone().unwrap_or_default(),
            output: s.output.clone(),
            submitted_ms: s.submitted_ms,
            finished_ms: s.finished_ms.unwrap_or(0),
            started_ms: s.started_ms.unwrap_or(0),
        }
    }
}

impl TryFrom<pb::JobStatus> for JobStatus {
    type Error = ConvertError;

    fn try_from(s: pb::JobStatus) -> Result<JobStatus, ConvertError> {
        Ok(JobStatus {
            state: state_from_pb(s.state)?,
            job_id: s.job_id,
            tenant: s.tenant,
            name: s.name,
            error: (!s.error.is_empty()).then_some(s.error),
            output: s.output,
            submitted_ms: s.submitted_ms,
            started_ms: opt_ms(s.started_ms),
            finished_ms: opt_ms(s.finished_ms),
            stages: s
                .stages
                .into_iter()
                .map(|st| StageStatus {
                    stage: st.stage_id,
                    parents: st.parent_stages,
                    steps: st.steps,
                    tasks_total: st.tasks_total,
                    tasks_done: st.tasks_done,
                    tasks_running: st.tasks_running,
                    tasks_failed: st.tasks_failed,
                    records_in: st.records_in,
                    records_out: st.records_out,
                    bytes_in: st.bytes_in,
                    bytes_out: st.bytes_out,
                    remote_fetches: st.remote_fetches,
                    records_skipped: st.records_skipped,
                    records_in_running: st.records_in_running,
                    bytes_in_running: st.bytes_in_running,
                    bytes_total: st.bytes_total,
                    usage: st.usage.into(),
                })
                .collect(),
            usage: s.usage.into(),
            waiting: (!s.waiting.is_empty()).then_some(s.waiting),
        })
    }
}

impl From<&WorkerInfo> for pb::WorkerInfo {
    fn from(w: &WorkerInfo) -> pb::WorkerInfo {
        pb::WorkerInfo {
            worker_id: w.worker_id.clone(),
            address: w.address.clone(),
            hostname: w.hostname.clone(),
            slots: w.slots,
            free_slots: w.free_slots,
            running: w.running.clone(),
            memory_bytes: w.memory_bytes,
            engine_hash: w.engine_hash.clone(),
            compiled_modules: w.compiled_modules.clone(),
            last_seen_ms_ago: w.last_seen_ms_ago,
            registered_ms: w.registered_ms,
            draining: w.draining,
        }
    }
}

impl From<pb::WorkerInfo> for WorkerInfo {
    fn from(w: pb::WorkerInfo) -> WorkerInfo {
        WorkerInfo {
            worker_id: w.worker_id,
            address: w.address,
            hostname: w.hostname,
            slots: w.slots,
            free_slots: w.free_slots,
            running: w.running,
            memory_bytes: w.memory_bytes,
            engine_hash: w.engine_hash,
            compiled_modules: w.compiled_modules,
            last_seen_ms_ago: w.last_seen_ms_ago,
            registered_ms: w.registered_ms,
            draining: w.draining,
        }
    }
}

/// Logs travel in chunks of at most this many bytes.
const LOG_CHUNK: usize = 1 << 20;

fn log_chunks(job: &str, log: &TaskLog) -> Vec<pb::LogChunk> {
    let task = pb::TaskAttemptId {
        job_id: job.to_owned(),
        stage_id: log.stage,
        partition: log.partition,
        attempt: log.attempt,
    };
    let mut chunks = Vec::new();
    for (stderr, data) in [(false, &log.stdout), (true, &log.stderr)] {
        for part in data.chunks(LOG_CHUNK) {
            chunks.push(pb::LogChunk {
                task: Some(task.clone()),
                stderr,
                data: part.to_vec(),
                truncated: log.truncated,
            });
        }
    }
    chunks
}

/// Gathers streamed log chunks back into one [`TaskLog`] per attempt, in arrival order.
pub fn logs_from_chunks(chunks: Vec<pb::LogChunk>) -> Result<Vec<TaskLog>, ConvertError> {
    let mut logs: Vec<TaskLog> = Vec::new();
    for chunk in chunks {
        let task = chunk
            .task
            .ok_or_else(|| bad("LogChunk", "missing field `task`"))?;
        let same = logs.last().is_some_and(|l| {
            (l.stage, l.partition, l.attempt) == (task.stage_id, task.partition, task.attempt)
        });
        if !same {
            logs.push(TaskLog {
                stage: task.stage_id,
                partition: task.partition,
                attempt: task.attempt,
                ..TaskLog::default()
            });
        }
        let log = logs
            .last_mut()
            .ok_or_else(|| bad("LogChunk", "no log to append to"))?;
        log.truncated |= chunk.truncated;
        if chunk.stderr {
            log.stderr.extend_from_slice(&chunk.data);
        } else {
            log.stdout.extend_from_slice(&chunk.data);
        }
    }
    Ok(logs)
}

/// The `Jobs` service.
#[derive(Debug)]
pub struct JobsService(pub Arc<Scheduler>);

impl JobsService {
    /// The tenant a request about one job acts as: an operator acts as the job's owner (so it sees
    /// any job); anyone else as its own tenant, so another's job looks like no job at all.
    fn job_tenant(&self, identity: &Identity, job: &pb::JobRef) -> Result<Tenant, Status> {
        if *identity == Identity::Operator {
            let owner = self.0.owner_of(&job.job_id).map_err(lookup_status)?;
            return Ok(owner.unwrap_or_default());
        }
        identity.tenant(&job.tenant)
    }
}

impl From<&TenantUsage> for pb::TenantUsage {
    fn from(t: &TenantUsage) -> pb::TenantUsage {
        pb::TenantUsage {
            tenant: t.tenant.clone(),
            jobs: t.jobs,
            usage: Some((&t.usage).into()),
            records_in: t.records_in,
            records_out: t.records_out,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
        }
    }
}

impl From<pb::TenantUsage> for TenantUsage {
    fn from(t: pb::TenantUsage) -> TenantUsage {
        TenantUsage {
            tenant: t.tenant,
            jobs: t.jobs,
            usage: t.usage.into(),
            records_in: t.records_in,
            records_out: t.records_out,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
        }
    }
}

#[tonic::async_trait]
impl pb::jobs_server::Jobs for JobsService {
    async fn usage(
        &self,
        request: Request<pb::UsageRequest>,
    ) -> Result<Response<pb::UsageReply>, Status> {
        let identity = identity_of(&request);
        let jobs = match identity {
            Identity::Operator => self.0.list_all(),
            _ => self.0.list(&identity.tenant(&request.into_inner().tenant)?),
        }
        .map_err(lookup_status)?;
        Ok(Response::new(pb::UsageReply {
            tenants: usage_by_tenant(&jobs).iter().map(Into::into).collect(),
        }))
    }

    async fn submit(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::JobRef>, Status> {
        let identity = identity_of(&request);
        let r = request.into_inner();
        let tenant = identity.tenant(&r.tenant)?;
        let submission = Submission {
            job_toml: r.job_toml,
            job_file: r.job_file,
            input: r.input,
            output: r.output,
            overwrite: r.overwrite,
        };
        let job_id = self
            .0
            .submit(&tenant, submission)
            .await
            .map_err(submit_status)?;
        Ok(Response::new(pb::JobRef {
            tenant: tenant.to_string(),
            job_id,
        }))
    }

    async fn status(
        &self,
        request: Request<pb::JobRef>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let identity = identity_of(&request);
        let r = request.into_inner();
        let status = self
            .0
            .status(&self.job_tenant(&identity, &r)?, &r.job_id)
            .map_err(lookup_status)?;
        Ok(Response::new((&status).into()))
    }

    type WatchStream = ReceiverStream<Result<pb::JobStatus, Status>>;

    async fn watch(
        &self,
        request: Request<pb::JobRef>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let identity = identity_of(&request);
        let r = request.into_inner();
        let mut rx = self
            .0
            .watch(&self.job_tenant(&identity, &r)?, &r.job_id)
            .map_err(lookup_status)?;
        let (tx, out) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let status = rx.borrow_and_update().clone();
                let last = status.state.is_final();
                if tx.send(Ok((&status).into())).await.is_err() || last {
                    break;
                }
                // `changed` only fails once the runner is gone and its last status has been seen,
                // and every status seen was sent above: nothing is left to send. (A runner never
                // goes without a final status; if one did, the client says the stream ended early.)
                if rx.changed().await.is_err() {
                    break;
                }
                // Coalesce bursts of task ends into one snapshot every so often.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(out)))
    }

    async fn list(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsReply>, Status> {
        let identity = identity_of(&request);
        let jobs = match identity {
            Identity::Operator => self.0.list_all(),
            _ => self.0.list(&identity.tenant(&request.into_inner().tenant)?),
        }
        .map_err(lookup_status)?;
        Ok(Response::new(pb::ListJobsReply {
            jobs: jobs.iter().map(pb::JobStatus::from).collect(),
        }))
    }

    async fn cancel(
        &self,
        request: Request<pb::JobRef>,
    ) -> Result<Response<pb::JobStatus>, Status> {
        let identity = identity_of(&request);
        let r = request.into_inner();
        let status = self
            .0
            .cancel(&self.job_tenant(&identity, &r)?, &r.job_id)
            .await
            .map_err(lookup_status)?;
        Ok(Response::new((&status).into()))
    }

    type LogsStream = ReceiverStream<Result<pb::LogChunk, Status>>;

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let identity = identity_of(&request);
        let r = request.into_inner();
        let job = r
            .job
            .ok_or_else(|| Status::invalid_argument("missing job"))?;
        let tenant = self.job_tenant(&identity, &job)?;
        let task = r.task.map(|t| TaskRef {
            stage: t.stage_id,
            partition: t.partition,
        });
        let logs = self
            .0
            .logs(&tenant, &job.job_id, task)
            .map_err(lookup_status)?;
        let (tx, out) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for log in &logs {
                for chunk in log_chunks(&job.job_id, log) {
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(out)))
    }

    type TasksStream = ReceiverStream<Result<pb::TaskReport, Status>>;

    async fn tasks(
        &self,
        request: Request<pb::JobRef>,
    ) -> Result<Response<Self::TasksStream>, Status> {
        let identity = identity_of(&request);
        let r = request.into_inner();
        let tasks = self
            .0
            .tasks(&self.job_tenant(&identity, &r)?, &r.job_id)
            .map_err(lookup_status)?;
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            for task in &tasks {
                if tx.send(Ok(task.into())).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(out)))
    }
}

/// The `Cluster` service.
#[derive(Debug)]
pub struct ClusterService(pub Arc<Scheduler>);

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn workers(
        &self,
        request: Request<pb::WorkersRequest>,
    ) -> Result<Response<pb::WorkersReply>, Status> {
        identity_of(&request).require_operator("listing the cluster's workers")?;
        Ok(Response::new(pb::WorkersReply {
            workers: self.0.workers().iter().map(pb::WorkerInfo::from).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::Usage;

    #[test]
    fn job_status_round_trips_through_protobuf() {
        let status = JobStatus {
            job_id: "wc-3".into(),
            tenant: "default".into(),
            name: "wc".into(),
            state: JobState::Failed,
            error: Some("boom".into()),
            output: "/out".into(),
            submitted_ms: 5,
            started_ms: Some(6),
            finished_ms: None,
            stages: vec![StageStatus {
                stage: 1,
                parents: vec![0],
                steps: vec!["wordcount@1/sum".into()],
                tasks_total: 4,
                tasks_done: 3,
                tasks_running: 1,
                tasks_failed: 0,
                records_in: 10,
                records_out: 9,
                bytes_in: 8,
                bytes_out: 7,
                remote_fetches: 2,
                records_skipped: 1,
                records_in_running: 3,
                bytes_in_running: 4,
                bytes_total: 5,
                usage: Usage {
                    cpu_us: 11,
                    wall_us: 12,
                    peak_memory_bytes: 13,
                    attempts: 4,
                },
            }],
            usage: Usage {
                cpu_us: 21,
                wall_us: 22,
                peak_memory_bytes: 23,
                attempts: 6,
            },
            waiting: Some("queued: 2nd in line".into()),
        };
        let back = JobStatus::try_from(pb::JobStatus::from(&status)).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn logs_survive_chunking() {
        let big = TaskLog {
            stage: 0,
            partition: 1,
            attempt: 0,
            stdout: vec![b'x'; LOG_CHUNK * 2 + 3],
            stderr: b"err".to_vec(),
            truncated: true,
        };
        let small = TaskLog {
            stage: 1,
            partition: 0,
            attempt: 0,
            stdout: Vec::new(),
            stderr: b"only stderr".to_vec(),
            truncated: false,
        };
        let chunks: Vec<pb::LogChunk> = [&big, &small]
            .iter()
            .flat_map(|l| log_chunks("j", l))
            .collect();
        assert_eq!(chunks.len(), 5);
        assert_eq!(logs_from_chunks(chunks).unwrap(), vec![big, small]);
    }
}
