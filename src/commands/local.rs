//! Running a job in this process on the local data directory, as `weft run` and `weft job submit`
//! without a scheduler do, beside any other `weft` process using the same directory (see
//! [`weft_local::DataDir`] for how they share it).
//!
//! SIGINT (Ctrl-C) and SIGTERM cancel the job: its tasks are killed, its staging and shuffle files
//! removed, and it is recorded as cancelled by the user. A run killed outright is cleaned up by the
//! next local command ([`DataDir::sweep`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use weft_local::{DataDir, LocalCluster, LocalClusterConfig, RunStore};
use weft_scheduler::cluster::Scheduler;
use weft_scheduler::job::Submission;
use weft_scheduler::{JobError, JobReport, Tenant};

use super::progress::Progress;
use super::{pool_warning, read_registry};
use crate::Globals;

/// How a local run ended.
pub enum Ended {
    /// The job ran; its report, or why it failed.
    Ran {
        job_id: String,
        outcome: Result<JobReport, JobError>,
    },
    /// A signal cancelled it; the job is recorded as cancelled.
    Interrupted {
        job_id: String,
        signal: &'static str,
    },
}

/// The data directory, with leftovers of killed runs cleaned up (see [`DataDir::sweep`]).
pub fn data_dir(globals: &Globals) -> Result<DataDir> {
    let data = DataDir::new(&globals.data_dir);
    data.sweep()
        .with_context(|| format!("cannot clean up {}", data.root().display()))?;
    Ok(data)
}

/// Submits `submission` to a scheduler in this process and runs it on `workers` workers, sharing
/// `memory` bytes (0: each worker's default), to its end or to a signal. `accepted` is called with the job id once the job is accepted (before
/// anything runs). A job refused is an error; one that ran is an [`Ended`].
pub fn run(
    globals: &Globals,
    workers: usize,
    memory: u64,
    submission: Submission,
    accepted: impl FnOnce(&str),
    progress: Option<Progress>,
) -> Result<Ended> {
    let tenant = Tenant::default();
    let data = data_dir(globals)?;
    // The registry's lock is held only while copying the tenant's index: other processes may
    // register and list modules while this job runs.
    let registry = {
        let registry = read_registry(globals)?;
        Arc::new(registry.snapshot(&tenant)?)
    };
    let run = Arc::new(data.begin_run()?);
    let config = LocalClusterConfig {
        workers,
        job_store: Some(run.clone()),
        cache_dir: Some(data.cache_dir()),
        worker_memory: memory / workers.max(1) as u64,
        ..LocalClusterConfig::new(run.work_dir())
    };
    let ended = super::runtime()?.block_on(async {
        let mut cluster = LocalCluster::start_scheduler(registry, config)
            .await
            .context("cannot start the local scheduler")?;
        if let Some(warning) = pool_warning(cluster.engine()) {
            eprintln!("warning: {warning}");
        }
        let scheduler = cluster.scheduler().clone();
        let submitted = scheduler.submit(&tenant, submission).await;
        let job_id = match submitted {
            Ok(id) => id,
            Err(refused) => {
                cluster.shutdown().await;
                return Err(anyhow::Error::new(refused));
            }
        };
        accepted(&job_id);
        let publisher = tokio::spawn(publish(
            scheduler.clone(),
            tenant.clone(),
            job_id.clone(),
            run.clone(),
        ));
        let (stop_showing, stopped) = tokio::sync::oneshot::channel();
        let shower = progress.map(|progress| {
            tokio::spawn(show(
                scheduler.clone(),
                tenant.clone(),
                job_id.clone(),
                progress,
                stopped,
            ))
        });
        let ended = tokio::select! {
            started = cluster.start_workers() => match started {
                Ok(()) => tokio::select! {
                    outcome = scheduler.join(&job_id) => Ended::Ran { job_id, outcome },
                    signal = signal() => Ended::Interrupted { job_id, signal },
                },
                Err(e) => Ended::Ran {
                    outcome: Err(JobError::Cluster(format!("cannot start the local workers: {e}"))),
                    job_id,
                },
            },
            signal = signal() => Ended::Interrupted { job_id, signal },
        };
        if let Ended::Interrupted { job_id, signal } = &ended {
            eprintln!("{signal}: cancelling job {job_id}");
            run.note(job_id, format!("cancelled by the user ({signal})"));
            let _ = scheduler.cancel(&tenant, job_id).await;
        }
        publisher.abort();
        let _ = publisher.await;
        let _ = stop_showing.send(());
        if let Some(shower) = shower
            && let Ok(mut progress) = shower.await
        {
            progress.finish()?;
        }
        // Shut down whatever the outcome, so workers delete their shuffle files.
        cluster.shutdown().await;
        anyhow::Ok(ended)
    });
    // Even for a refused job: the run's work directory goes.
    run.finish().context("cannot record the job")?;
    ended
}

/// How often a running job's live status is shown to other processes, at most.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Shows the job's live status to other processes ([`RunStore::publish`]) as it changes, until
/// it is over or the task is aborted.
async fn publish(scheduler: Arc<Scheduler>, tenant: Tenant, job: String, run: Arc<RunStore>) {
    let Ok(mut status) = scheduler.watch(&tenant, &job) else {
        return;
    };
    loop {
        let current = status.borrow_and_update().clone();
        let _ = run.publish(&current);
        if current.state.is_final() || status.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(PUBLISH_EVERY).await;
    }
}

/// Shows the job's progress as it changes, until `stop`; hands the display back to be finished.
async fn show(
    scheduler: Arc<Scheduler>,
    tenant: Tenant,
    job: String,
    mut progress: Progress,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Progress {
    let Ok(mut status) = scheduler.watch(&tenant, &job) else {
        return progress;
    };
    loop {
        let current = status.borrow_and_update().clone();
        progress.show(&current);
        tokio::select! {
            changed = status.changed() => if changed.is_err() { break },
            _ = &mut stop => break,
        }
    }
    // The last state, whatever it is now.
    progress.show(&status.borrow().clone());
    progress
}

/// The name of the first SIGINT or SIGTERM received.
async fn signal() -> &'static str {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                name = interrupt => name,
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => interrupt.await,
        }
    }
    #[cfg(not(unix))]
    interrupt.await
}
