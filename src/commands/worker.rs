//! `weft worker`: registers with a scheduler and runs its tasks, sandboxed, until SIGINT or SIGTERM.
//!
//! Modules are fetched from the scheduler's registry by id (verified by hash) and cached in the data
//! directory with their compiled artifacts, so a restarted worker neither downloads nor compiles
//! them again. Shuffle files live under the data directory's `work/`. Once registered it prints
//! one line on stdout, `weft worker ID listening on http://ADDRESS` (`https://` over TLS).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use weft_host::Engine;
use weft_task::link::{Link, Tls};
use weft_worker::RegistryModuleSource;
use weft_worker::service::WorkerConfig;

use super::ServeArgs;
use super::compile::CompileLimits;
use super::{init_logging, pool_warning, runtime, shutdown_signal};
use crate::Globals;

/// Runs a worker of a cluster.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Address to listen on for the scheduler and other workers; it must be reachable from them
    /// (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,

    /// Tasks run at once. Default: the number of CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub slots: Option<u32>,

    /// Memory this worker offers to tasks (e.g. 4GiB, 8GB, or bytes): reported to the scheduler,
    /// and shared by its slots as each task's grouping budget (a reduce over its share spills
    /// sorted runs to disk). Default: unknown to the scheduler, 256 MiB per task.
    #[arg(long, value_name = "SIZE", value_parser = weft_io::parse_size)]
    pub memory: Option<u64>,

    /// On SIGTERM or Ctrl-C, how long to drain at most: take no new task, finish the running
    /// ones and serve shuffle blocks until the jobs that need them end. A second signal stops at
    /// once (running tasks killed; their jobs run them again elsewhere).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub compile: CompileLimits,

    #[command(flatten)]
    pub serve: ServeArgs,
}

pub fn run(globals: &Globals, args: WorkerArgs) -> Result<()> {
    let scheduler = globals.scheduler.clone().ok_or_else(|| {
        anyhow!("weft worker needs the scheduler's URL: pass --scheduler URL or set WEFT_SCHEDULER")
    })?;
    init_logging();
    let secret = args.serve.secret()?;
    let tls = args.serve.tls(globals)?;
    let slots = match args.slots {
        Some(n) => n,
        None => u32::try_from(super::cpus()).unwrap_or(u32::MAX),
    };
    let work_dir = globals.data_dir.join("work");
    let cache_dir = globals.data_dir.join("cache");
    for dir in [&work_dir, &cache_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let engine = Engine::for_tasks(slots).map_err(|e| anyhow!("{e:#}"))?;
    if let Some(warning) = pool_warning(&engine) {
        tracing::warn!("{warning}");
    }
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
        let source = Arc::new(
            RegistryModuleSource::new(
                scheduler.clone(),
                cache_dir.clone(),
                tokio::runtime::Handle::current(),
            )
            .with_link(Link::new(secret.clone(), tls.clone())),
        );
        let config = WorkerConfig {
            scheduler: scheduler.clone(),
            slots,
            work_dir,
            memory_bytes: args.memory.unwrap_or(0),
            cache_dir: Some(cache_dir),
            compiler: args.compile.compiler(&engine)?,
            cluster_secret: secret,
            tls: tls.clone(),
            ..WorkerConfig::default()
        };
        let handle = weft_worker::service::start(listener, config, engine, source)
            .await
            .context("cannot start the worker")?;
        let scheme = Tls::scheme(tls.as_ref());
        outln!(
            "weft worker {} listening on {scheme}://{}",
            handle.id(),
            handle.address
        )?;
        tracing::info!(%scheduler, slots, "worker {} serving on {}", handle.id(), handle.address);
        shutdown_signal().await;
        tracing::info!("stopping: draining first (signal again to stop now)");
        tokio::select! {
            () = handle.drain(args.drain_timeout) => {}
            () = shutdown_signal() => tracing::warn!("stopping now: running tasks are killed"),
        }
        handle.shutdown().await;
        anyhow::Ok(())
    })
}
