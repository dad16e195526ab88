//! `weft cluster workers`: the workers registered with a cluster's scheduler, their slots, running
//! tasks, compiled modules and when they were last heard from.

use anyhow::{Result, anyhow};
use clap::Subcommand;
use weft_scheduler::Tenant;
use weft_scheduler::client::JobsClient;

use super::{print_json, runtime};
use crate::Globals;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the workers registered with the scheduler.
    Workers,
}

pub fn run(globals: &Globals, command: ClusterCommand) -> Result<()> {
    let url = globals.scheduler.clone().ok_or_else(|| {
        anyhow!("weft cluster talks to a cluster: pass --scheduler URL or set WEFT_SCHEDULER")
    })?;
    match command {
        ClusterCommand::Workers => {
            let workers = runtime()?.block_on(async {
                let link = super::client_link(globals)?;
                let mut client = JobsClient::connect_with(&url, Tenant::default(), &link).await?;
                anyhow::Ok(client.workers().await?)
            })?;
            if globals.json {
                return print_json(&workers);
            }
            if workers.is_empty() {
                eprintln!("no worker is registered with {url}");
                return Ok(());
            }
            outln!(
                "{:<6} {:<24} {:<16} {:>5} {:>5} {:>8} {:>9}  RUNNING",
                "ID",
                "ADDRESS",
                "HOST",
                "SLOTS",
                "FREE",
                "MODULES",
                "SEEN"
            )?;
            for w in &workers {
                outln!(
                    "{:<6} {:<24} {:<16} {:>5} {:>5} {:>8} {:>7}ms  {}",
                    w.worker_id,
                    w.address,
                    w.hostname,
                    w.slots,
                    w.free_slots,
                    w.compiled_modules.len(),
                    w.last_seen_ms_ago,
                    w.running.join(", ")
                )?;
            }
            Ok(())
        }
    }
}
