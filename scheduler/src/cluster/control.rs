//! The scheduler's control service (`SchedulerControl`): workers register, heartbeat and report
//! task outcomes here. Outcomes are routed to the job that launched the task.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use weft_proto::v1 as pb;
use weft_proto::v1::worker_client::WorkerClient;
use weft_worker::service::convert::TaskOutcome;

/// A registered worker.
#[derive(Debug, Clone)]
pub struct WorkerEntry {
    pub id: String,
    pub address: String,
    pub slots: u32,
    pub client: WorkerClient<Channel>,
}

/// What the control service shares with job runners.
#[derive(Debug, Default)]
pub struct ControlState {
    workers: Mutex<Vec<WorkerEntry>>,
    /// Where each running job wants its task outcomes.
    jobs: Mutex<HashMap<String, mpsc::UnboundedSender<TaskOutcome>>>,
    next_worker: AtomicU32,
}

impl ControlState {
    pub fn workers(&self) -> Vec<WorkerEntry> {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts routing outcomes of `job`'s tasks to the returned receiver.
    pub fn subscribe(&self, job: &str) -> mpsc::UnboundedReceiver<TaskOutcome> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.to_owned(), tx);
        rx
    }

    pub fn unsubscribe(&self, job: &str) {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job);
    }
}

/// The gRPC face of [`ControlState`].
#[derive(Debug)]
pub struct ControlService(pub std::sync::Arc<ControlState>);

#[tonic::async_trait]
impl pb::scheduler_control_server::SchedulerControl for ControlService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        let r = request.into_inner();
        if r.protocol_version != weft_proto::PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "the worker speaks protocol version {}, this scheduler version {}; run matching \
                 versions of weft",
                r.protocol_version,
                weft_proto::PROTOCOL_VERSION
            )));
        }
        let client = WorkerClient::connect(r.address.clone())
            .await
            .map_err(|e| Status::unavailable(format!("cannot reach {}: {e}", r.address)))?
            .max_decoding_message_size(64 << 20);
        let id = format!("w{}", self.0.next_worker.fetch_add(1, Ordering::Relaxed));
        self.0
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(WorkerEntry {
                id: id.clone(),
                address: r.address,
                slots: r.slots.max(1),
                client,
            });
        Ok(Response::new(pb::RegisterWorkerReply {
            worker_id: id,
            heartbeat_interval_ms: 1000,
        }))
    }

    async fn heartbeat(
        &self,
        _request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        Ok(Response::new(pb::HeartbeatReply::default()))
    }

    async fn report_task(
        &self,
        request: Request<pb::TaskStatus>,
    ) -> Result<Response<pb::ReportTaskReply>, Status> {
        let outcome = TaskOutcome::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let sender = self
            .0
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&outcome.id.job)
            .cloned();
        // A report for a job that is over (failed, cancelled) has nobody to go to: drop it.
        if let Some(tx) = sender {
            let _ = tx.send(outcome);
        }
        Ok(Response::new(pb::ReportTaskReply {}))
    }
}
