//! The subcommands, one file each, and the little they share: opening the local registry and
//! printing JSON.

pub mod module;
pub mod plan;
pub mod run;

use anyhow::{Context, Result};
use weft_scheduler::Registry;

use crate::Globals;

/// Opens (creating if needed) the module registry in the data directory.
pub fn open_registry(globals: &Globals) -> Result<Registry> {
    let dir = globals.data_dir.join("registry");
    Registry::open(&dir).with_context(|| format!("cannot open the registry in {}", dir.display()))
}

/// Prints `value` as pretty JSON on stdout: what `--json` prints on success.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
