//! `weft`: the command line of Weft, a WebAssembly-sandboxed compute fabric for user-defined
//! functions.
//!
//! One file per subcommand under `commands/`. Global options: `--data-dir` (or `WEFT_HOME`) picks the
//! local data directory, `--json` switches every command to machine-readable output on stdout.
//! Errors go to stderr (or, with `--json`, as `{"error": "..."}` on stdout) with a non-zero exit.

/// `println!` that returns an error instead of panicking when stdout is closed (`weft ... | head`):
/// `outln!(...)?`. A closed stdout ends the command quietly ([`StdoutClosed`]).
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` as [`outln!`] is `println!`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Weft runs map, filter, flat_map, reduce and group_reduce functions compiled to WebAssembly,
/// sandboxed, over your data.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
struct Cli {
    /// Local data directory (module registry, job state). Default: a per-user directory such as
    /// ~/.local/share/weft.
    #[arg(long, global = true, env = "WEFT_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Talk to the cluster scheduler at this URL (e.g. http://10.0.0.5:7070; `http://` and the
    /// port 7070 are the defaults, so `10.0.0.5` will do) instead of using the local data
    /// directory.
    #[arg(long, global = true, env = "WEFT_SCHEDULER", value_name = "URL",
          value_parser = weft_scheduler::client::scheduler_url)]
    scheduler: Option<String>,

    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,

    /// A file holding your API token for a scheduler with tenants. Default: $WEFT_TOKEN, else the
    /// file `weft/token` in your config directory (~/.config/weft/token). Never a flag's value:
    /// a command line shows in `ps`.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// The CA certificate (PEM) that signed the cluster's TLS certificates: what a client, a worker
    /// or the scheduler trusts when it calls an `https://` URL.
    #[arg(long, global = true, env = "WEFT_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register, list, show and remove WebAssembly modules.
    #[command(subcommand)]
    Module(commands::module::ModuleCommand),
    /// Write UDFs: scaffold a project (new), build it (build), try a function on a sample (test).
    #[command(subcommand)]
    Udf(commands::udf::UdfCommand),
    /// Show the stages a job file would run, without running it.
    Plan(commands::plan::PlanArgs),
    /// Run a job file on this machine (a scheduler and N sandboxed workers in one process).
    Run(commands::run::RunArgs),
    /// Submit jobs and follow them: submit, status, watch, list, cancel, logs.
    #[command(subcommand)]
    Job(commands::job::JobCommand),
    /// Serve a cluster's scheduler (registry, jobs, workers' control).
    Scheduler(commands::scheduler::SchedulerArgs),
    /// Run a cluster worker: register with --scheduler and run its tasks.
    Worker(commands::worker::WorkerArgs),
    /// Ask a cluster about itself.
    #[command(subcommand)]
    Cluster(commands::cluster::ClusterCommand),
    /// Tenants of a shared cluster: mint API tokens.
    #[command(subcommand)]
    Tenant(commands::tenant::TenantCommand),
    /// Compile one module from stdin to stdout (the child a server compiles in).
    #[command(hide = true)]
    CompileModule(commands::compile::CompileArgs),
}

/// What every command needs: where the data lives and how to print.
#[derive(Debug)]
pub struct Globals {
    pub data_dir: PathBuf,
    /// `--scheduler URL`: module and job commands go to this cluster instead of the data dir.
    pub scheduler: Option<String>,
    pub json: bool,
    /// `--token-file`, if given (see [`commands::client_link`]).
    pub token_file: Option<PathBuf>,
    /// `--tls-ca`, if given.
    pub tls_ca: Option<PathBuf>,
}

/// An error whose story a command has already printed (e.g. a job's final status): it only makes
/// the exit status non-zero.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

/// Stdout was closed by its reader (a pipe into `head`): nothing more can be printed, and nobody is
/// left to read an error, so the command ends quietly, with status 0 (as ripgrep does).
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to stdout; a closed pipe is [`StdoutClosed`], other failures say stdout could not be
/// written.
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

fn main() -> ExitCode {
    weft_worker::tune_malloc();
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(error) if error.is::<Reported>() => ExitCode::FAILURE,
        Err(error) => {
            if json {
                let _ = outln!("{}", serde_json::json!({ "error": format!("{error:#}") }));
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let data_dir = match cli.data_dir {
        Some(dir) => dir,
        None => dirs::data_dir().map(|d| d.join("weft")).context(
            "no per-user data directory is known here; pass --data-dir or set WEFT_HOME",
        )?,
    };
    let ctx = Globals {
        data_dir,
        scheduler: cli.scheduler,
        json: cli.json,
        token_file: cli.token_file,
        tls_ca: cli.tls_ca,
    };
    match cli.command {
        Command::Module(cmd) => commands::module::run(&ctx, cmd),
        Command::Udf(cmd) => commands::udf::run(&ctx, cmd),
        Command::Plan(args) => commands::plan::run(&ctx, args),
        Command::Run(args) => commands::run::run(&ctx, args),
        Command::Job(cmd) => commands::job::run(&ctx, cmd),
        Command::Scheduler(args) => commands::scheduler::run(&ctx, args),
        Command::Worker(args) => commands::worker::run(&ctx, args),
        Command::Cluster(cmd) => commands::cluster::run(&ctx, cmd),
        Command::CompileModule(args) => commands::compile::run(args),
        Command::Tenant(cmd) => commands::tenant::run(&ctx, cmd),
    }
}
