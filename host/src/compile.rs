//! Where a guest module is compiled: in this process, or in a child process under a deadline and a
//! memory limit ([`Compiler`]).
//!
//! Compiling is the one step of accepting a module whose cost the module's author controls and no
//! sandbox bounds: Cranelift's time and memory grow faster than linearly with a function's size
//! (one hostile function of 436 KiB took 25 CPU-seconds and 1.7 GB). wasmtime cannot stop a
//! compilation once started, so a server compiles in a child it can kill: `weft compile-module`,
//! which reads the wasm on stdin, caps its own memory, and writes a sealed artifact on stdout that
//! the parent loads ([`Compiler::compile`]). A compile that outlives its deadline is killed, and
//! one that runs out of memory dies; both fail the module with a message naming the limit, and the
//! server goes on unharmed.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use weft_batch::format_size;

use crate::artifact;
use crate::engine::Engine;
use crate::error::ValidationError;

/// Where modules are compiled.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// In this process: no bound on a compile's time or memory. For embedded use and tests.
    #[default]
    InProcess,
    /// In a child process ([`ProcessCompiler`]).
    Process(ProcessCompiler),
}

/// A child process that compiles one module: `program args… --memory BYTES`, given the wasm bytes
/// on stdin, must write [`serve_compile`]'s output on stdout and exit 0, or write why on stderr and
/// exit non-zero.
#[derive(Debug, Clone)]
pub struct ProcessCompiler {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// How long a compile may take before the child is killed.
    pub timeout: Duration,
    /// The memory the child may use, which the child is asked to enforce on itself (passed as
    /// `--memory BYTES` after `args`).
    pub max_memory: u64,
    /// Children compiling at once, shared by every clone: a flood of uploads waits its turn
    /// instead of starting a child each.
    pub gate: Gate,
}

/// At most so many holders at once; one more waits for a place.
#[derive(Debug, Clone)]
pub struct Gate(Arc<(Mutex<u32>, Condvar)>);

impl Gate {
    /// A gate of `places` (at least 1).
    pub fn new(places: u32) -> Gate {
        Gate(Arc::new((Mutex::new(places.max(1)), Condvar::new())))
    }

    fn enter(&self) -> Entered<'_> {
        let (free, changed) = &*self.0;
        let mut free = free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = changed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Entered(self)
    }
}

/// A place in a [`Gate`], given back when dropped.
struct Entered<'a>(&'a Gate);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let (free, changed) = &*(self.0).0;
        *free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        changed.notify_one();
    }
}

/// How often a waiting parent looks at its child.
const POLL: Duration = Duration::from_millis(5);

impl Compiler {
    /// This compiler with a deadline and a memory limit no larger than `timeout` and `memory`
    /// (a tenant's ceilings under the server's). A compiler in this process has neither to lower.
    pub fn capped(&self, timeout: Option<Duration>, memory: Option<u64>) -> Compiler {
        match self {
            Compiler::InProcess => Compiler::InProcess,
            Compiler::Process(child) => Compiler::Process(ProcessCompiler {
                timeout: timeout.map_or(child.timeout, |t| t.min(child.timeout)),
                max_memory: memory.map_or(child.max_memory, |m| m.min(child.max_memory)),
                ..child.clone()
            }),
        }
    }

    /// Compiles `bytes` (already validated: [`crate::validate`]'s static checks) for `engine`.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<wasmtime::Module, ValidationError> {
        match self {
            Compiler::InProcess => wasmtime::Module::new(engine.wasm(), bytes)
                .map_err(|e| ValidationError::Compile(format!("{e:#}"))),
            Compiler::Process(child) => {
                let sealed = child.run(bytes)?;
                let body = artifact::unseal(&sealed).map_err(|e| {
                    ValidationError::Compile(format!("the compiler process's output: {e}"))
                })?;
                // SAFETY: the bytes are what `serve_compile` wrote in a child running this build
                // (`program` is the server's own executable), checked intact by the seal's digest;
                // wasmtime refuses them if the child's engine configuration differs from ours.
                unsafe { wasmtime::Module::deserialize(engine.wasm(), body) }.map_err(|e| {
                    ValidationError::Compile(format!(
                        "the compiler process's output could not be loaded: {e:#}"
                    ))
                })
            }
        }
    }
}

impl ProcessCompiler {
    /// Runs the child over `bytes` and returns what it wrote, or why it failed.
    fn run(&self, bytes: &[u8]) -> Result<Vec<u8>, ValidationError> {
        let failed = |what: String| ValidationError::Compile(what);
        let _place = self.gate.enter();
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg("--memory")
            .arg(self.max_memory.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                failed(format!(
                    "cannot start the compiler process {}: {e}",
                    self.program.display()
                ))
            })?;
        let started = Instant::now();
        // Pipes are drained on threads of their own, so a child blocked writing never stalls us.
        let mut stdin = child.stdin.take().expect("piped");
        let input = bytes.to_vec();
        let feeder = std::thread::spawn(move || {
            // A child that dies early closes its end; its exit status tells why.
            let _ = stdin.write_all(&input);
        });
        let mut stdout = child.stdout.take().expect("piped");
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).map(|_| buf)
        });
        let mut stderr = child.stderr.take().expect("piped");
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            // At most 64 KiB of complaint is kept.
            let _ = (&mut stderr).take(64 << 10).read_to_end(&mut buf);
            buf
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // The pipe threads are left to end on their own: a grandchild the child
                    // started may hold the pipes open, and is no reason to wait.
                    drop((feeder, out, err));
                    return Err(ValidationError::CompileLimit(format!(
                        "compiling took longer than the limit of {} and was stopped",
                        humantime::format_duration(self.timeout)
                    )));
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(failed(format!("waiting for the compiler process: {e}"))),
            }
        };
        let _ = feeder.join();
        let stdout = out
            .join()
            .map_err(|_| failed("reading the compiler process's output panicked".into()))?
            .map_err(|e| failed(format!("reading the compiler process's output: {e}")))?;
        let stderr = err.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
        if status.success() {
            return Ok(stdout);
        }
        // Rust's allocation failure handler says this, then aborts.
        if stderr.contains("memory allocation of") {
            return Err(ValidationError::CompileLimit(format!(
                "compiling needed more than the memory limit of {}{}",
                format_size(self.max_memory),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(" ({stderr})")
                }
            )));
        }
        // The child says `error: compiling the module failed: WHY`; WHY is what is news here.
        let why = stderr.strip_prefix("error: ").unwrap_or(&stderr);
        let why = why
            .strip_prefix("compiling the module failed: ")
            .unwrap_or(why);
        Err(failed(if why.is_empty() {
            format!("the compiler process failed ({status})")
        } else {
            why.to_owned()
        }))
    }
}

/// The child's side: compiles `bytes` for `engine` and returns the sealed artifact to write on
/// stdout. The caller should have capped its own memory first.
pub fn serve_compile(engine: &Engine, bytes: &[u8]) -> Result<Vec<u8>, ValidationError> {
    let module = wasmtime::Module::new(engine.wasm(), bytes)
        .map_err(|e| ValidationError::Compile(format!("{e:#}")))?;
    let body = module
        .serialize()
        .map_err(|e| ValidationError::Compile(format!("serializing: {e:#}")))?;
    Ok(artifact::seal(body))
}
