//! `weft.v1.SchedulerControl` over the [`ControlState`]: workers register, heartbeat, report task
//! outcomes and hold a session open here (a worker whose session ends is lost at once). Messages are converted to the contract's types (`weft-task`) and go no
//! further; a registering worker of another protocol version is refused with both versions named,
//! and one the scheduler cannot call back is refused too.

use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1 as pb;
use weft_task::{Heartbeat, TaskOutcome, WorkerRegistration};

use super::worker::GrpcWorker;
use crate::cluster::ControlState;
use weft_task::link::Link;

/// The gRPC face of [`ControlState`], for workers only: it is mounted behind
/// [`Access::worker_interceptor`](crate::access::Access::worker_interceptor), which refuses a
/// caller without the cluster secret (when one is set).
#[derive(Debug)]
pub struct ControlService {
    pub control: Arc<ControlState>,
    /// How to call a worker back: TLS, and the cluster secret.
    pub link: Link,
    /// Set when the server stops: sessions end (a graceful stop waits for every open stream), and
    /// their workers are not taken as lost for it.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

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
        let registration = WorkerRegistration::from(r);
        let worker = GrpcWorker::connect(&registration.address, &self.link)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot reach {}: {}",
                    registration.address,
                    weft_task::error_chain(&e)
                ))
            })?;
        let registered = self.control.register(registration, Arc::new(worker));
        Ok(Response::new((&registered).into()))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatReply>, Status> {
        let heartbeat = Heartbeat::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let reply = self.control.heartbeat(heartbeat);
        Ok(Response::new((&reply).into()))
    }

    async fn report_task(
        &self,
        request: Request<pb::TaskStatus>,
    ) -> Result<Response<pb::ReportTaskReply>, Status> {
        let outcome = TaskOutcome::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.control.report(outcome);
        Ok(Response::new(pb::ReportTaskReply {}))
    }

    type SessionStream = ReceiverStream<Result<pb::SessionEvent, Status>>;

    /// Holds the stream open until the worker's side of it goes (its process died, its
    /// connection closed), then drops the worker as lost, if it is still the registration the
    /// session was opened for.
    async fn session(
        &self,
        request: Request<pb::SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let id = request.into_inner().worker_id;
        let (registration, address) = self.control.registration(&id).ok_or_else(|| {
            Status::not_found(format!("no worker {id} is registered; register first"))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let control = self.control.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                // Dropping `tx` ends the stream, so the server's graceful stop can complete.
                _ = stopping.wait_for(|stop| *stop) => return,
            }
            let why = format!(
                "worker {id} at {address} was lost: its connection to the scheduler closed (its \
                 process ended?)"
            );
            if control.lose_registration(&id, registration, &why) {
                tracing::warn!("{why}");
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
