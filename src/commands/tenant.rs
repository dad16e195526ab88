//! `weft tenant`: what an operator of a shared cluster needs for its tenants file. `token` mints an
//! API token, shows it once, and prints the digest line the tenants file keeps in its place (the
//! scheduler never holds the token itself).

use anyhow::{Result, anyhow};
use clap::Subcommand;
use weft_task::auth::Secret;

use weft_scheduler::Tenant;
use weft_scheduler::client::JobsClient;
use weft_scheduler::jobs::usage_by_tenant;

use super::print_json;
use crate::Globals;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Mint a random API token (or a cluster secret): prints the token, shown only this once, and
    /// the line for the tenants file (`tokens = ["blake3:…"]`, under [tenants.NAME] or
    /// [operators]). With --json: {"token", "hash"}.
    Token,
    /// What each tenant's jobs used: CPU and wall time, peak guest memory, attempts, records and
    /// bytes in and out. Against a cluster, a tenant's token shows its own; an operator's, every
    /// tenant's. Locally, the jobs run with this data directory.
    Usage,
}

pub fn run(globals: &Globals, command: TenantCommand) -> Result<()> {
    match command {
        TenantCommand::Usage => {
            let tenants = match &globals.scheduler {
                Some(url) => {
                    let link = super::client_link(globals)?;
                    super::runtime()?.block_on(async {
                        let mut client =
                            JobsClient::connect_with(url, Tenant::default(), &link).await?;
                        anyhow::Ok(client.usage().await?)
                    })?
                }
                None => usage_by_tenant(&super::local::data_dir(globals)?.list()?),
            };
            if globals.json {
                return print_json(&tenants);
            }
            outln!(
                "{:<16} {:>6} {:>9} {:>12} {:>12} {:>10} {:>14} {:>14}",
                "TENANT",
                "JOBS",
                "ATTEMPTS",
                "CPU",
                "WALL",
                "PEAK MEM",
                "RECORDS IN",
                "RECORDS OUT"
            )?;
            for t in &tenants {
                outln!(
                    "{:<16} {:>6} {:>9} {:>11.1}s {:>11.1}s {:>10} {:>14} {:>14}",
                    t.tenant,
                    t.jobs,
                    t.usage.attempts,
                    t.usage.cpu_us as f64 / 1e6,
                    t.usage.wall_us as f64 / 1e6,
                    weft_io::format_size(t.usage.peak_memory_bytes),
                    t.records_in,
                    t.records_out
                )?;
            }
            Ok(())
        }
        TenantCommand::Token => {
            let token = Secret::mint().map_err(|e| anyhow!(e))?;
            let hash = token.hash().to_string();
            if globals.json {
                return print_json(&serde_json::json!({
                    "token": token.expose(),
                    "hash": hash,
                }));
            }
            outln!("{}", token.expose())?;
            eprintln!(
                "The token above is shown only now: hand it to its user, who passes it in \
                 WEFT_TOKEN, with --token-file FILE, or in ~/.config/weft/token (mode 600).\n\
                 In the tenants file, under [tenants.NAME] (or [operators]), keep its digest:\n\
                 tokens = [\"{hash}\"]"
            );
            Ok(())
        }
    }
}
