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
use crate::access::Access;
use crate::cluster::Scheduler;
use tonic::service::interceptor::InterceptedService;
use weft_task::link::{Link, Tls};

/// A running scheduler server.
#[derive(Debug)]
pub struct SchedulerHandle {
    address: SocketAddr,
    /// `https` when serving over TLS.
    scheme: &'static str,
    scheduler: Arc<Scheduler>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Ends workers' sessions before the server stops (see [`ControlService::stopping`]).
    stopping: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    reaper: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDRESS` (`https://` over TLS), what workers and clients connect to.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Cancels running jobs (their tasks are killed, their outputs aborted), then stops serving.
    pub async fn shutdown(mut self) {
        self.scheduler.stop_jobs().await;
        self.reaper.abort();
        let _ = self.stopping.send(true);
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

/// Serves `scheduler` on `listener`, open to anyone who reaches it (one implicit tenant, no
/// secrets). `engine` validates uploaded modules.
pub fn start(
    listener: TcpListener,
    scheduler: Arc<Scheduler>,
    engine: Engine,
    validation: ValidationLimits,
) -> std::io::Result<SchedulerHandle> {
    start_with_access(
        listener,
        scheduler,
        engine,
        validation,
        Access::open(None),
        None,
    )
}

/// [`start`], with `access` deciding who may call what (every service identifies each request by
/// its bearer secret first: [`Access::identify`]), and over TLS when `tls` has a certificate
/// (workers are then called back over TLS too, trusting its CA).
pub fn start_with_access(
    listener: TcpListener,
    scheduler: Arc<Scheduler>,
    engine: Engine,
    validation: ValidationLimits,
    access: Access,
    tls: Option<Tls>,
) -> std::io::Result<SchedulerHandle> {
    let address = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let access = Arc::new(access);
    let guard = access.interceptor();
    let registry = InterceptedService::new(
        RegistryService::new(scheduler.registry().clone(), engine, validation)
            .with_tenant_limits(access.module_limits())
            .server(),
        guard.clone(),
    );
    let jobs = pb::jobs_server::JobsServer::with_interceptor(
        JobsService(scheduler.clone()),
        guard.clone(),
    );
    let cluster = pb::cluster_server::ClusterServer::with_interceptor(
        ClusterService(scheduler.clone()),
        guard,
    );
    let control = InterceptedService::new(
        pb::scheduler_control_server::SchedulerControlServer::new(ControlService {
            control: scheduler.control().clone(),
            link: Link::new(access.cluster_secret().cloned(), tls.clone()),
            stopping: stopping_rx,
        })
        .max_decoding_message_size(64 << 20),
        access.worker_interceptor(),
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(config) = tls.as_ref().and_then(Tls::server) {
        builder = builder.tls_config(config).map_err(|e| {
            std::io::Error::other(format!("the TLS certificate or key is refused: {e}"))
        })?;
    }
    let scheme = Tls::scheme(tls.as_ref());
    let server = tokio::spawn(async move {
        let result = builder
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
        scheme,
        scheduler,
        shutdown: Some(tx),
        stopping,
        server,
        reaper,
    })
}
