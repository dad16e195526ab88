//! The subcommands, one file each, and the little they share: opening the local registry, the
//! data directory's in-process cluster, printing JSON, the async runtime, logging, the shutdown
//! signal of the serving commands, and the warning for an engine without its instance pool.

pub mod cluster;
pub mod compile;
pub mod job;
pub mod local;
pub mod module;
pub mod plan;
pub mod progress;
pub mod run;
pub mod scheduler;
pub mod tenant;
pub mod udf;
pub mod worker;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use weft_host::{Engine, InstanceAllocation};
use weft_scheduler::Registry;
use weft_task::auth::Secret;
use weft_task::link::{Link, Tls};

use crate::Globals;

/// Opens (creating if needed) the module registry in the data directory, to change it.
pub fn open_registry(globals: &Globals) -> Result<Registry> {
    let dir = globals.data_dir.join("registry");
    Registry::open(&dir).with_context(|| format!("cannot open the registry in {}", dir.display()))
}

/// The module registry of the data directory, to read: an empty one, creating nothing, when the
/// data directory has none yet (a read never makes a data directory).
pub fn read_registry(globals: &Globals) -> Result<Registry> {
    if globals.data_dir.join("registry").join("index").exists() {
        open_registry(globals)
    } else {
        Ok(Registry::of_entries([])?)
    }
}

/// The registry of the cluster at `url`, fetched into memory (names, versions and UDFs; no module
/// bytes): enough to resolve and plan a job as that cluster would.
pub fn cluster_registry(
    globals: &Globals,
    url: &str,
    tenant: &weft_scheduler::Tenant,
) -> Result<Registry> {
    let link = client_link(globals)?;
    let entries = runtime()?.block_on(async {
        let client = weft_scheduler::client::RegistryClient::connect_with(url, &link).await?;
        anyhow::Ok(client.list(tenant).await?)
    })?;
    Ok(Registry::of_entries(entries)?)
}

/// How a client command reaches the scheduler: its API token ([`user_token`]) and the CA it
/// trusts for an `https://` URL (`--tls-ca`).
pub fn client_link(globals: &Globals) -> Result<Link> {
    Ok(Link::new(user_token(globals)?, tls(globals, None, None)?))
}

/// The TLS of this process: `--tls-ca` (global) to trust, `cert` and `key` to serve with.
pub fn tls(globals: &Globals, cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Tls>> {
    Tls::from_files(cert, key, globals.tls_ca.as_deref()).map_err(|e| anyhow::anyhow!(e))
}

/// What `weft scheduler` and `weft worker` share: the cluster secret and the certificate they
/// serve with.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// A file holding the cluster secret: workers present it to the scheduler and to each other,
    /// and require it of whoever calls them (default: $WEFT_CLUSTER_SECRET).
    #[arg(long, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Serve over TLS with this certificate (PEM; with --tls-key): the URL is then `https://`.
    /// What this process calls over TLS is trusted by --tls-ca.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    pub fn secret(&self) -> Result<Option<Secret>> {
        cluster_secret(self.cluster_secret_file.as_deref())
    }

    pub fn tls(&self, globals: &Globals) -> Result<Option<Tls>> {
        tls(globals, self.tls_cert.as_deref(), self.tls_key.as_deref())
    }
}

/// The API token to present to a scheduler: `--token-file`, else `$WEFT_TOKEN`, else the file
/// `weft/token` in the user's config directory, else none (a scheduler without tenants needs none).
pub fn user_token(globals: &Globals) -> Result<Option<Secret>> {
    if let Some(file) = &globals.token_file {
        return read_secret(file, "--token-file").map(Some);
    }
    if let Some(value) = std::env::var_os("WEFT_TOKEN") {
        let value = value.to_string_lossy();
        return Secret::new(&value)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("WEFT_TOKEN: {e}"));
    }
    match dirs::config_dir().map(|dir| dir.join("weft").join("token")) {
        Some(file) if file.exists() => read_secret(&file, "the credentials file").map(Some),
        _ => Ok(None),
    }
}

/// The cluster secret of a scheduler or worker: the file given, else `$WEFT_CLUSTER_SECRET`, else
/// none. Never a flag's value: a command line shows in `ps`.
pub fn cluster_secret(file: Option<&Path>) -> Result<Option<Secret>> {
    if let Some(file) = file {
        return read_secret(file, "--cluster-secret-file").map(Some);
    }
    match std::env::var_os("WEFT_CLUSTER_SECRET") {
        Some(value) => Secret::new(&value.to_string_lossy())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("WEFT_CLUSTER_SECRET: {e}")),
        None => Ok(None),
    }
}

/// A secret kept in `file`; `what` names where it was asked for in an error.
fn read_secret(file: &Path, what: &str) -> Result<Secret> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{what}: cannot read {}", file.display()))?;
    Secret::new(&text).map_err(|e| anyhow::anyhow!("{what} {}: {e}", file.display()))
}

/// One worker per CPU, as local jobs run by default.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The memory a job run in this process offers its tasks: `requested`, or by default half of the
/// machine's physical memory (the rest is for the guests' own memory, the page cache and
/// everything else), as DuckDB and Polars size themselves to the machine rather than to a fixed
/// figure. 0 where the machine's memory is unknown: the workers' default, 256 MiB per task.
pub fn local_memory(requested: Option<u64>) -> u64 {
    requested.unwrap_or_else(|| physical_memory().map_or(0, |bytes| bytes / 2))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let (pages, page) = (u64::try_from(pages).ok()?, u64::try_from(page).ok()?);
    pages.checked_mul(page).filter(|&bytes| bytes > 0)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn physical_memory() -> Option<u64> {
    None
}

/// What to warn of when `engine` runs guests without its instance pool (whose address space could
/// not be reserved, e.g. under `ulimit -v`): they still run, slower.
pub fn pool_warning(engine: &Engine) -> Option<String> {
    match engine.allocation() {
        InstanceAllocation::Pooled { .. } => None,
        InstanceAllocation::OnDemand { reason } => Some(format!(
            "guests run without the instance pool, each memory mapped on demand and \
             bounds-checked (slower): the pool's address space could not be reserved: {reason}"
        )),
    }
}

/// Prints `value` as pretty JSON on stdout: what `--json` prints on success.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// The async runtime a command runs its gRPC work on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs of the serving commands (`weft scheduler`, `weft worker`): to stderr, `info` and above.
/// `WEFT_LOG` takes `tracing_subscriber`'s filter directives: a level (`WEFT_LOG=debug`) or levels
/// per crate (`WEFT_LOG=info,weft_worker=trace`). A value that does not parse is reported, and the
/// default kept.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let (filter, problem) = match EnvFilter::try_from_env("WEFT_LOG") {
        Ok(filter) => (filter, None),
        Err(e) => {
            let set = std::env::var_os("WEFT_LOG").is_some();
            (EnvFilter::new("info"), set.then_some(e))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
    if let Some(e) = problem {
        tracing::warn!("WEFT_LOG is not a log filter ({e}); logging at info");
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--memory` is taken as given; without it, a local run gets half the machine's memory
    /// (where the machine says how much it has), never a fixed figure.
    #[test]
    fn local_memory_is_the_request_or_half_the_machine() {
        assert_eq!(local_memory(Some(5 << 20)), 5 << 20);
        match physical_memory() {
            Some(total) => assert_eq!(local_memory(None), total / 2),
            None => assert_eq!(local_memory(None), 0),
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(physical_memory().is_some_and(|total| total >= 64 << 20));
    }
}
