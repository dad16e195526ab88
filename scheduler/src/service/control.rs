//! `weft.v1.SchedulerControl` over the [`ControlState`]: workers register, heartbeat and report
//! task outcomes here. Messages are converted to the contract's types (`weft-task`) and go no
//! further; a registering worker of another protocol version is refused with both versions named,
//! and one the scheduler cannot call back is refused too.

use std::sync::Arc;

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
}
