//! `weft compile-module` (hidden): the child a server compiles a guest module in, so that a module
//! whose compile would take minutes or gigabytes costs the server nothing but a killed child (see
//! `weft_host::Compiler`). It reads the wasm on stdin, caps its own memory, and writes the compiled
//! artifact on stdout; on failure it writes why on stderr and exits 1.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use weft_host::{Compiler, Engine, Gate, InstanceAllocation, ProcessCompiler};

/// Arguments of the compiler child.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The memory the compile may use (its data segment: heap and private mappings).
    #[arg(long, value_name = "SIZE", value_parser = weft_io::parse_size)]
    pub memory: u64,

    /// Compile for an engine that allocates instances on demand (the parent's configuration).
    #[arg(long)]
    pub on_demand: bool,
}

/// The most wasm the child reads: registration refuses larger modules long before.
const MAX_INPUT: u64 = 1 << 30;

pub fn run(args: CompileArgs) -> Result<()> {
    // The engine first: its pool's address space is reserved, not used, and must not count.
    let engine = if args.on_demand {
        Engine::on_demand()
    } else {
        Engine::with_max_live_instances(1)
    }
    .map_err(|e| anyhow!("{e:#}"))?;
    limit_data(args.memory)?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_end(&mut bytes)
        .context("cannot read the module from stdin")?;
    let artifact = weft_host::serve_compile(&engine, &bytes).map_err(|e| anyhow!("{e}"))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&artifact)
        .and_then(|()| stdout.flush())
        .context("cannot write the compiled module to stdout")?;
    Ok(())
}

/// Lets this process's data segment (`RLIMIT_DATA`: heap and private writable mappings) grow by
/// `bytes` beyond what it holds now (the engine's own set-up, which holds writable mappings of its
/// own): past it, allocations fail and the process aborts, which the parent reports as the memory
/// limit.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_data(bytes: u64) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let held_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmData:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cap = bytes.saturating_add(held_kib.saturating_mul(1024));
    let limit = libc::rlimit {
        rlim_cur: cap,
        rlim_max: cap,
    };
    // SAFETY: setrlimit reads the struct, which lives for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot limit the compile's memory");
    }
    Ok(())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_data(_bytes: u64) -> Result<()> {
    Ok(())
}

/// The compiler a server (`weft scheduler`, `weft worker`) uses for `engine`: this executable's
/// `compile-module`, killed after `timeout`, its memory capped at `memory`.
pub fn child_compiler(engine: &Engine, timeout: Duration, memory: u64) -> Result<Compiler> {
    let program = std::env::current_exe().context("cannot find the weft executable")?;
    let mut args = vec!["compile-module".into()];
    if matches!(engine.allocation(), InstanceAllocation::OnDemand { .. }) {
        args.push("--on-demand".into());
    }
    Ok(Compiler::Process(ProcessCompiler {
        program,
        args,
        timeout,
        max_memory: memory,
        // As many compiles at once as there are CPUs: more would only share them.
        gate: Gate::new(u32::try_from(super::cpus()).unwrap_or(u32::MAX)),
    }))
}

/// `--compile-timeout` and `--compile-memory` of the serving commands.
#[derive(Debug, Clone, Args)]
pub struct CompileLimits {
    /// How long compiling one module may take before it is stopped and the module refused.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub compile_timeout: Duration,

    /// The memory compiling one module may use before it is stopped and the module refused.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = weft_io::parse_size)]
    pub compile_memory: u64,
}

impl CompileLimits {
    pub fn compiler(&self, engine: &Engine) -> Result<Compiler> {
        child_compiler(engine, self.compile_timeout, self.compile_memory)
    }
}
