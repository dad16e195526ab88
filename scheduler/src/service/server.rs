//! The scheduler process's gRPC server: the registry, jobs, cluster and worker-control services on
//! one listener, plus the reaper that drops silent workers. [`start`] takes a bound listener and
//! returns a [`SchedulerHandle`] whose [`shutdown`](SchedulerHandle::shutdown) stops it cleanly.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use weft_host::{Engine, ValidationLimits};
use weft_proto::v1 as pb;

use super::jobs::{ClusterService, JobsService};
use super::{ControlService, RegistryService};
use crate::cluster::Scheduler;

/// A running scheduler server.
#[derive(Debug)]
pub struct SchedulerHandle {
    address: SocketAddr,
    scheduler: Arc<Scheduler>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    reaper: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDRESS`, what workers and clients connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Cancels running jobs (their tasks are killed, their outputs aborted), then stops serving.
    pub async fn shutdown(mut self) {
        self.scheduler.stop_jobs().await;
        self.reaper.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }

    /// Resolves when the server stops on its own (it failed); for a process that serves until then.
    pub async fn stopped(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Serves `scheduler` on `listener`. `engine` validates uploaded modules.
pub fn start(
    listener: TcpListener,
    scheduler: Arc<Scheduler>,
    engine: Engine,
    validation: ValidationLimits,
) -> std::io::Result<SchedulerHandle> {
    let address = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let registry = RegistryService::new(scheduler.registry().clone(), engine, validation).server();
    let jobs = pb::jobs_server::JobsServer::new(JobsService(scheduler.clone()));
    let cluster = pb::cluster_server::ClusterServer::new(ClusterService(scheduler.clone()));
    let control = pb::scheduler_control_server::SchedulerControlServer::new(ControlService(
        scheduler.control().clone(),
    ))
    .max_decoding_message_size(64 << 20);
    let server = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(registry)
            .add_service(jobs)
            .add_service(cluster)
            .add_service(control)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("the scheduler's server stopped: {e}");
        }
    });
    let control = scheduler.control().clone();
    let reaper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(control.heartbeat_interval());
        loop {
            tick.tick().await;
            for id in control.reap() {
                tracing::warn!(worker = %id, "worker lost: no heartbeat in time; its tasks failed");
            }
        }
    });
    Ok(SchedulerHandle {
        address,
        scheduler,
        shutdown: Some(tx),
        server,
        reaper,
    })
}
