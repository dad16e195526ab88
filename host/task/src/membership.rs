//! Worker membership: what a worker tells the scheduler when it registers and at every heartbeat,
//! and what the scheduler answers — the domain side of `RegisterWorker`, `Heartbeat` and
//! `LaunchTask`'s reply.

use std::time::Duration;

use weft_proto::v1 as pb;

use crate::convert::ConvertError;
use crate::task::TaskId;

/// A worker offering its slots. The protocol version travels beside it and is checked at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRegistration {
    /// Where the scheduler and other workers reach the worker's service (`http://host:port`).
    pub address: String,
    /// Tasks it runs at once; at least 1.
    pub slots: u32,
    /// The memory it plans its tasks with, in bytes; 0 when unknown.
    pub memory_bytes: u64,
    pub hostname: String,
    /// wasmtime's precompile-compatibility hash of the worker's engine: compiled artifacts are
    /// only shared between workers with equal hashes.
    pub engine_hash: String,
    /// The id it had, when it registers again: kept if no other worker holds it, so a worker
    /// keeps its name across a scheduler restart.
    pub previous_id: Option<String>,
}

/// The scheduler's answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The id the worker reports and heartbeats under.
    pub worker_id: String,
    pub heartbeat_interval: Duration,
    /// The jobs running now; the worker drops the shuffle files of any other.
    pub live_jobs: Vec<String>,
}

/// What a worker says at every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub worker_id: String,
    /// The attempts it runs now.
    pub running: Vec<TaskId>,
    /// Module ids it holds compiled, so the scheduler can prefer it for their tasks.
    pub compiled_modules: Vec<String>,
    /// How far running attempts have read their input.
    pub progress: Vec<TaskProgress>,
    /// The worker takes no new task: it is stopping once its tasks and shuffle blocks are done.
    pub draining: bool,
}

/// How far a running attempt has read its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskProgress {
    pub id: TaskId,
    pub records_in: u64,
    pub bytes_in: u64,
}

/// The scheduler's answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The scheduler does not know the worker (it restarted, or dropped it): register again.
    pub reregister: bool,
    /// Attempts the worker should kill: nobody wants their results any more.
    pub kill: Vec<TaskId>,
}

/// A worker's answer to a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    Accepted,
    /// The worker is busier than the scheduler thought (say, it still finishes a killed attempt);
    /// the reason is for logs.
    Refused(String),
}

impl WorkerRegistration {
    /// The request registering this worker, speaking `protocol_version`.
    pub fn to_pb(&self, protocol_version: u32) -> pb::RegisterWorkerRequest {
        pb::RegisterWorkerRequest {
            protocol_version,
            engine_hash: self.engine_hash.clone(),
            address: self.address.clone(),
            slots: self.slots,
            memory_bytes: self.memory_bytes,
            hostname: self.hostname.clone(),
            previous_id: self.previous_id.clone().unwrap_or_default(),
        }
    }
}

/// The registration a request carries (its protocol version is the caller's to check first).
impl From<pb::RegisterWorkerRequest> for WorkerRegistration {
    fn from(r: pb::RegisterWorkerRequest) -> WorkerRegistration {
        WorkerRegistration {
            address: r.address,
            slots: r.slots.max(1),
            memory_bytes: r.memory_bytes,
            hostname: r.hostname,
            engine_hash: r.engine_hash,
            previous_id: (!r.previous_id.is_empty()).then_some(r.previous_id),
        }
    }
}

impl From<&Registered> for pb::RegisterWorkerReply {
    fn from(r: &Registered) -> pb::RegisterWorkerReply {
        pb::RegisterWorkerReply {
            worker_id: r.worker_id.clone(),
            heartbeat_interval_ms: u64::try_from(r.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
            live_jobs: r.live_jobs.clone(),
        }
    }
}

impl From<pb::RegisterWorkerReply> for Registered {
    fn from(r: pb::RegisterWorkerReply) -> Registered {
        Registered {
            worker_id: r.worker_id,
            heartbeat_interval: Duration::from_millis(r.heartbeat_interval_ms),
            live_jobs: r.live_jobs,
        }
    }
}

impl Heartbeat {
    /// The request, with the free slots a worker of `slots` slots has.
    pub fn to_pb(&self, slots: u32) -> pb::HeartbeatRequest {
        pb::HeartbeatRequest {
            worker_id: self.worker_id.clone(),
            free_slots: slots.saturating_sub(u32::try_from(self.running.len()).unwrap_or(u32::MAX)),
            running: self.running.iter().map(Into::into).collect(),
            compiled_modules: self.compiled_modules.clone(),
            progress: self
                .progress
                .iter()
                .map(|p| pb::TaskProgress {
                    id: Some((&p.id).into()),
                    records_in: p.records_in,
                    bytes_in: p.bytes_in,
                })
                .collect(),
            draining: self.draining,
        }
    }
}

impl TryFrom<pb::HeartbeatRequest> for Heartbeat {
    type Error = ConvertError;
    fn try_from(r: pb::HeartbeatRequest) -> Result<Heartbeat, ConvertError> {
        Ok(Heartbeat {
            worker_id: r.worker_id,
            running: r
                .running
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            compiled_modules: r.compiled_modules,
            progress: r
                .progress
                .into_iter()
                .map(|p| {
                    Ok(TaskProgress {
                        id: crate::convert::required(p.id, "TaskProgress", "id")?.try_into()?,
                        records_in: p.records_in,
                        bytes_in: p.bytes_in,
                    })
                })
                .collect::<Result<_, ConvertError>>()?,
            draining: r.draining,
        })
    }
}

impl From<&HeartbeatReply> for pb::HeartbeatReply {
    fn from(r: &HeartbeatReply) -> pb::HeartbeatReply {
        pb::HeartbeatReply {
            reregister: r.reregister,
            kill: r.kill.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::HeartbeatReply> for HeartbeatReply {
    type Error = ConvertError;
    fn try_from(r: pb::HeartbeatReply) -> Result<HeartbeatReply, ConvertError> {
        Ok(HeartbeatReply {
            reregister: r.reregister,
            kill: r
                .kill
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<&Launch> for pb::LaunchTaskReply {
    fn from(l: &Launch) -> pb::LaunchTaskReply {
        match l {
            Launch::Accepted => pb::LaunchTaskReply {
                accepted: true,
                reason: String::new(),
            },
            Launch::Refused(reason) => pb::LaunchTaskReply {
                accepted: false,
                reason: reason.clone(),
            },
        }
    }
}

impl From<pb::LaunchTaskReply> for Launch {
    fn from(r: pb::LaunchTaskReply) -> Launch {
        if r.accepted {
            Launch::Accepted
        } else {
            Launch::Refused(r.reason)
        }
    }
}
