//! `weft tenant`: what an operator of a shared cluster needs for its tenants file. `token` mints an
//! API token, shows it once, and prints the digest line the tenants file keeps in its place (the
//! scheduler never holds the token itself).

use anyhow::{Result, anyhow};
use clap::Subcommand;
use weft_task::auth::Secret;

use super::print_json;
use crate::Globals;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Mint a random API token (or a cluster secret): prints the token, shown only this once, and
    /// the line for the tenants file (`tokens = ["blake3:…"]`, under [tenants.NAME] or
    /// [operators]). With --json: {"token", "hash"}.
    Token,
}

pub fn run(globals: &Globals, command: TenantCommand) -> Result<()> {
    match command {
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
