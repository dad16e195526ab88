//! `weft scheduler`: serves the registry, jobs, cluster and worker-control services of a cluster
//! from the data directory (`registry/`, `jobs/`), until SIGINT or SIGTERM.
//!
//! Once serving it prints one line on stdout, `weft scheduler listening on http://ADDRESS`, so that
//! scripts (and tests) started with port 0 learn the address. Logs go to stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use weft_host::{DEFAULT_MAX_STARTUP_TIME, Engine, ValidationLimits};
use weft_scheduler::access::Access;
use weft_scheduler::cluster::{Scheduler, SchedulerConfig};
use weft_scheduler::jobs::SledJobStore;
use weft_task::{Limit, TaskLimits};

use super::ServeArgs;
use super::compile::CompileLimits;
use super::{init_logging, open_registry, pool_warning, runtime, shutdown_signal};
use crate::Globals;

/// Serves a cluster's scheduler.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: String,

    /// How often workers heartbeat (e.g. 1s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// Silence after which a worker is dropped as dead and the tasks it ran run again elsewhere.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub worker_timeout: Duration,

    /// How many times a task failing by its own code (a trap, a guest error, a limit) runs before
    /// its job fails, unless the job file's `[retry] max_attempts` says. Tasks lost to the
    /// infrastructure (a lost worker, a failed fetch) run again regardless.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=weft_scheduler::job::MAX_ATTEMPTS as i64))]
    pub max_attempts: u32,

    /// Give a straggling task a second attempt on another worker (the first to finish wins) once
    /// three quarters of its stage are done and it has run 1.5 times the stage's median; a job
    /// file's `[retry] speculation` says otherwise for its job.
    #[arg(long)]
    pub speculation: bool,

    /// The most a job's tasks may ask for in its `[limits]` table; repeat for each limit.
    /// KEY is memory, call_time, task_time, batch_output, task_output, log or stack; a job that sets no
    /// value gets the default, lowered to this (e.g. --limit memory=256MiB --limit call_time=10s).
    #[arg(long = "limit", value_name = "KEY=VALUE", value_parser = parse_limit)]
    pub limits: Vec<(Limit, u64)>,

    #[command(flatten)]
    pub compile: CompileLimits,

    /// Serve the tenants of this file (TOML): each with its API tokens' digests and its limits;
    /// every request then needs a token, and the tenant comes from it. Needs a cluster secret.
    /// Without it: one implicit tenant, open to anyone who can reach the port.
    #[arg(long, value_name = "FILE")]
    pub tenants: Option<PathBuf>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `KEY=VALUE` of `--limit`.
fn parse_limit(text: &str) -> Result<(Limit, u64), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE (e.g. memory=256MiB)"))?;
    let limit = Limit::from_key(key.trim())?;
    Ok((limit, limit.parse_value(value)?))
}

pub fn run(globals: &Globals, args: SchedulerArgs) -> Result<()> {
    init_logging();
    let secret = args.serve.secret()?;
    let access = match (&args.tenants, secret) {
        (Some(file), Some(secret)) => Access::from_file(file, secret)?,
        (Some(_), None) => anyhow::bail!(
            "--tenants needs a cluster secret, or anyone could join as a worker and be sent \
             tenants' tasks: pass --cluster-secret-file FILE or set WEFT_CLUSTER_SECRET \
             (`weft tenant token` mints one)"
        ),
        (None, secret) => Access::open(secret),
    };
    tracing::info!("access: {}", access.describe());
    let tls = args.serve.tls(globals)?;
    let registry = Arc::new(open_registry(globals)?);
    let jobs_dir = globals.data_dir.join("jobs");
    let store = SledJobStore::open(&jobs_dir)
        .with_context(|| format!("cannot open the job store in {}", jobs_dir.display()))?;
    let engine = Engine::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    if let Some(warning) = pool_warning(&engine) {
        tracing::warn!("{warning}");
    }
    runtime()?.block_on(async {
        if args.worker_timeout <= args.heartbeat_interval {
            anyhow::bail!(
                "--worker-timeout ({}) must be longer than --heartbeat-interval ({})",
                humantime::format_duration(args.worker_timeout),
                humantime::format_duration(args.heartbeat_interval)
            );
        }
        let ceiling = TaskLimits::most()
            .with_settings(&args.limits)
            .map_err(|e| anyhow::anyhow!("--limit {e}"))?;
        let limits = TaskLimits::default().capped_by(&ceiling);
        let config = SchedulerConfig {
            heartbeat_interval: args.heartbeat_interval,
            worker_timeout: args.worker_timeout,
            limits,
            ceiling,
            tenant_limits: access.tenant_limits(),
            data_roots: access.data_roots(),
            slot_shares: access.slot_shares(),
            job_caps: access.job_caps(),
            max_attempts: args.max_attempts,
            speculation: args.speculation,
            // Automatic splits are sized for the workers registered when a job is submitted.
            split_slots: None,
            // Jobs a killed scheduler ran go on where they were.
            resume: true,
        };
        let scheduler = Scheduler::new(registry, Arc::new(store), config)?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
        // A module's start at registration gets no longer than one call of a task may.
        let validation = ValidationLimits {
            compiler: args.compile.compiler(&engine)?,
            max_startup_time: DEFAULT_MAX_STARTUP_TIME.min(ceiling.max_call_time),
            ..ValidationLimits::default()
        };
        let handle = weft_scheduler::service::start_with_access(
            listener, scheduler, engine, validation, access, tls,
        )?;
        outln!("weft scheduler listening on {}", handle.url())?;
        tracing::info!(data_dir = %globals.data_dir.display(), "scheduler serving on {}", handle.url());
        shutdown_signal().await;
        tracing::info!("shutting down: cancelling running jobs");
        handle.shutdown().await;
        anyhow::Ok(())
    })
}
