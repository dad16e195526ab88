//! The wasmtime engine Weft runs guests on, the sandbox each instance lives in, and its limits.
//!
//! One [`Engine`] per process: it owns the compiler configuration, the linker that defines the only
//! imports a guest may have (WASI preview 1 without ambient capabilities), the pool guest instances
//! are allocated from (at most [`MAX_LIVE_INSTANCES`] at once by default; the first 16 MiB of a
//! finished instance's memory stay resident, zeroed, for the next), and a ticker thread that drives
//! epoch-based interruption, which is how a runaway UDF is stopped (cheaper than fuel: a load and
//! compare per loop back-edge instead of a counter update per basic block).
//!
//! The pool reserves 4 GiB of address space per instance up front, which lets compiled code skip
//! bounds checks. Where that much cannot be reserved (a process under an address-space limit such
//! as `ulimit -v`), the engine falls back to allocating each instance's memory when it is made,
//! bounds-checked, and says so in [`Engine::allocation`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{Linker, ResourceLimiter, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::signature::Signature;
use crate::wasi::{CapturePipe, GuestClock};

/// How often the engine's epoch advances; the granularity of the time limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Guest instances alive at once on an [`Engine::new`] (a task holds one per module of its steps, for
/// as long as it runs); one more fails to instantiate, with an error that says so. Each reserves its
/// 4 GiB of address space (plus guard pages) up front: 256 of them are about 1 TiB of the 128 TiB
/// a 64-bit Linux process may map. [`Engine::with_max_live_instances`] sets another bound.
pub const MAX_LIVE_INSTANCES: u32 = 256;
/// Instances an engine's pool holds per task it may run at once ([`Engine::for_tasks`]): a task
/// holds one per module of its steps, and a stage rarely fuses steps of more modules than this.
pub const INSTANCES_PER_TASK: u32 = 4;
/// A guest table's most elements, the same bound the limiter puts on `table.grow`.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Tables a module may define (guests from the usual toolchains define one).
const MAX_TABLES: u32 = 4;
/// Room an on-demand instance's memory is mapped with beyond its size; growing past it moves the
/// memory (a copy).
const ON_DEMAND_GROWTH: u64 = 16 << 20;
/// The memory a finished instance leaves resident, zeroed, for the next one in its slot; beyond it,
/// pages go back to the kernel. Small: what stays resident counts against the worker's memory while
/// other tasks run (with 1 GiB, the reduce of the memory benchmark peaked 250 MiB higher, over its
/// bound), and a large guest touches far more than this anyway. A small guest never faults again.
const KEEP_RESIDENT: usize = 16 << 20;

/// The wasm stack a guest call may use unless a task asks for another ([`Engine::with_max_stack`]):
/// wasmtime's default.
pub const DEFAULT_MAX_STACK: usize = 512 << 10;

/// Limits every guest instance runs under.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Largest linear memory a guest may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Longest a single call into the guest may run before it is interrupted, time spent in host
    /// functions (a WASI sleep) included.
    pub max_call_time: Duration,
    /// Bytes of stdout and of stderr kept per instance; writes past it are dropped (they succeed
    /// for the guest) and the output is marked truncated.
    pub max_captured_output: usize,
    /// Most bytes one call may return: its output's keys, values and offsets.
    pub max_batch_output_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            max_memory_bytes: 1 << 30,
            max_call_time: Duration::from_secs(60),
            max_captured_output: 64 << 10,
            max_batch_output_bytes: 256 << 20,
        }
    }
}

/// How an [`Engine`] allocates guest instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceAllocation {
    /// From a pool reserved up front: at most `max_live` instances alive at once.
    Pooled {
        /// The bound; one instance more fails to instantiate.
        max_live: u32,
    },
    /// Each instance maps its own memory when it is made, at its size plus 16 MiB to grow into
    /// (growing further moves it), and compiled code checks the bounds of every memory access:
    /// slower, but it needs little more address space than the guests really use.
    OnDemand {
        /// Why the pool could not be used (the error reserving it).
        reason: String,
    },
}

/// The host engine: compiler, linker and epoch ticker. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasm: wasmtime::Engine,
    allocation: InstanceAllocation,
    /// The wasm stack one call may use (`max_wasm_stack`), in bytes.
    max_stack: usize,
    linker: Linker<Sandbox>,
    /// What the linker provides, by import name, so validation can name a missing or mistyped
    /// import precisely instead of relaying wasmtime's generic link error.
    wasi_functions: HashMap<String, Signature>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine and starts its epoch ticker (the thread ends when the engine is dropped),
    /// with a pool of [`MAX_LIVE_INSTANCES`].
    pub fn new() -> Result<Engine, wasmtime::Error> {
        Engine::with_max_live_instances(MAX_LIVE_INSTANCES)
    }

    /// An engine for a process that runs up to `tasks` tasks at once: a pool of
    /// [`INSTANCES_PER_TASK`] instances per task, and never fewer than [`MAX_LIVE_INSTANCES`].
    pub fn for_tasks(tasks: u32) -> Result<Engine, wasmtime::Error> {
        Engine::with_max_live_instances(
            MAX_LIVE_INSTANCES.max(tasks.saturating_mul(INSTANCES_PER_TASK)),
        )
    }

    /// As [`Engine::new`], with a pool of `max_live` instances (at least 1). A worker running many
    /// tasks at once needs a larger pool than the default.
    ///
    /// If the pool's address space cannot be reserved, the engine allocates instances on demand
    /// instead ([`InstanceAllocation::OnDemand`]) rather than failing: a process under an
    /// address-space limit still runs guests, only slower.
    pub fn with_max_live_instances(max_live: u32) -> Result<Engine, wasmtime::Error> {
        let max_live = max_live.max(1);
        let stack = DEFAULT_MAX_STACK;
        let (wasm, allocation) = match wasmtime::Engine::new(&pooled_config(max_live, stack)) {
            Ok(wasm) => (wasm, InstanceAllocation::Pooled { max_live }),
            Err(pool_error) => {
                let reason = format!("{pool_error:#}");
                let wasm = wasmtime::Engine::new(&on_demand_config(stack)).map_err(|e| {
                    e.context(format!(
                        "the instance pool could not be reserved ({reason}), and neither could \
                         instances be allocated on demand"
                    ))
                })?;
                (wasm, InstanceAllocation::OnDemand { reason })
            }
        };
        Engine::build(wasm, allocation, stack)
    }

    /// An engine like this one (the same allocation, so the same compiled code loads in both)
    /// whose guest calls may use `max_stack` bytes of wasm stack. Each has its own instance pool,
    /// so a process keeps few: one per stack size its tasks ask for.
    pub fn with_max_stack(&self, max_stack: usize) -> Result<Engine, wasmtime::Error> {
        if max_stack == self.max_stack() {
            return Ok(self.clone());
        }
        let config = match &self.inner.allocation {
            InstanceAllocation::Pooled { max_live } => pooled_config(*max_live, max_stack),
            InstanceAllocation::OnDemand { .. } => on_demand_config(max_stack),
        };
        Engine::build(
            wasmtime::Engine::new(&config)?,
            self.inner.allocation.clone(),
            max_stack,
        )
    }

    /// The wasm stack one guest call may use, in bytes.
    pub fn max_stack(&self) -> usize {
        self.inner.max_stack
    }

    /// An engine that allocates every instance on demand ([`InstanceAllocation::OnDemand`]) even
    /// where a pool could be reserved: what a compiler process for an on-demand engine needs, so
    /// that the code it compiles loads in that engine.
    pub fn on_demand() -> Result<Engine, wasmtime::Error> {
        let wasm = wasmtime::Engine::new(&on_demand_config(DEFAULT_MAX_STACK))?;
        Engine::build(
            wasm,
            InstanceAllocation::OnDemand {
                reason: "asked for".into(),
            },
            DEFAULT_MAX_STACK,
        )
    }

    fn build(
        wasm: wasmtime::Engine,
        allocation: InstanceAllocation,
        max_stack: usize,
    ) -> Result<Engine, wasmtime::Error> {
        let mut linker: Linker<Sandbox> = Linker::new(&wasm);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut Sandbox| &mut s.wasi)?;
        crate::wasi::shadow(&mut linker)?;

        let mut probe = Store::new(&wasm, Sandbox::new(&SandboxLimits::default()));
        let defined: Vec<(String, String, wasmtime::Extern)> = linker
            .iter(&mut probe)
            .map(|(module, name, ext)| (module.to_owned(), name.to_owned(), ext))
            .collect();
        let wasi_functions = defined
            .into_iter()
            .filter(|(module, _, _)| module == weft_abi::WASI_MODULE)
            .filter_map(|(_, name, ext)| {
                let ty = ext.ty(&probe).func()?.clone();
                Some((name, Signature::of_wasmtime(&ty)))
            })
            .collect();
        drop(probe);

        let weak = wasm.weak();
        std::thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(wasmtime::Error::from)?;

        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasm,
                allocation,
                max_stack,
                linker,
                wasi_functions,
            }),
        })
    }

    /// How this engine allocates guest instances: from its pool, or on demand because the pool
    /// could not be reserved (worth a warning: guests then run slower).
    pub fn allocation(&self) -> &InstanceAllocation {
        &self.inner.allocation
    }

    pub(crate) fn wasm(&self) -> &wasmtime::Engine {
        &self.inner.wasm
    }

    pub(crate) fn linker(&self) -> &Linker<Sandbox> {
        &self.inner.linker
    }

    pub(crate) fn wasi_function(&self, name: &str) -> Option<&Signature> {
        self.inner.wasi_functions.get(name)
    }
}

/// What every engine's configuration has in common, with `max_stack` bytes of wasm stack per
/// call (which changes nothing in the compiled code: modules load in engines of any stack size).
fn base_config(max_stack: usize) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .max_wasm_stack(max_stack)
        // Unused (guests run synchronously), but wasmtime wants it at least the wasm stack.
        .async_stack_size(max_stack.max(2 << 20))
        .epoch_interruption(true)
        // Guests are single-threaded core modules with 32-bit memories (ABI §1); threads are not
        // compiled into this wasmtime at all.
        .wasm_memory64(false)
        .wasm_component_model(false);
    // `WEFT_PERFMAP=1` names guest functions for `perf` (a /tmp/perf-PID.map of the JIT code), so a
    // profile shows `split_words` where it would show an anonymous address. Off by default: it
    // writes a file per process.
    if std::env::var_os("WEFT_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// The pooling allocator, for `max_live` instances: a task's instance takes a slot a finished one
/// left, its memory mapping ready (a warm task launch went from 21 to 5 µs), its first
/// `KEEP_RESIDENT` bytes still resident and zeroed with a `memset` instead of handed back to the
/// kernel and faulted in again page by page.
fn pooled_config(max_live: u32, max_stack: usize) -> wasmtime::Config {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(max_live)
        .total_memories(max_live)
        .total_tables(max_live)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_tables_per_module(MAX_TABLES)
        // Reuse the slots used before, most recently used first, rather than fresh ones: the
        // memory kept resident is then bounded by the instances that ran at once.
        .max_unused_warm_slots(0)
        .linear_memory_keep_resident(KEEP_RESIDENT);
    let mut config = base_config(max_stack);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Instances allocated one by one, each memory mapped at its size with a little room to grow
/// (growing past it moves the memory), no guard regions, and bounds checks in the compiled code:
/// the least address space a guest can run in.
fn on_demand_config(max_stack: usize) -> wasmtime::Config {
    let mut config = base_config(max_stack);
    config
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand)
        .memory_reservation(0)
        .memory_reservation_for_growth(ON_DEMAND_GROWTH)
        .memory_guard_size(0)
        .guard_before_linear_memory(false);
    config
}

/// Why a call into a guest was stopped from outside its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its owner raised the instance's interrupt (the task was killed).
    Cancelled,
    /// The call ran for its whole time limit.
    CallTime,
    /// The task the instance belongs to ran for its whole time limit.
    TaskTime,
}

/// The state of one guest instance's store: its WASI context (no preopens, no environment, no
/// arguments, no network; stdout and stderr kept in memory) and its resource limits.
pub(crate) struct Sandbox {
    wasi: WasiP1Ctx,
    pub(crate) stdout: CapturePipe,
    pub(crate) stderr: CapturePipe,
    max_memory_bytes: usize,
    /// The largest linear memory the guest has grown to.
    pub(crate) peak_memory: usize,
    /// Set when the guest asked for more memory than allowed, so the trap that usually follows
    /// (an allocator abort) is reported as the limit it really is.
    pub(crate) memory_limit_hit: bool,
    /// Raised by whoever runs the instance to stop it, even inside a long call (a killed task).
    pub(crate) interrupt: Option<Arc<AtomicBool>>,
    /// Why the current (or last) call was stopped, if it was.
    pub(crate) stopped: Option<Stop>,
    /// The time each call may take, and when the current one's is up.
    call_limit: Duration,
    call_deadline: Instant,
    /// When the task's time is up, and the limit that set it.
    pub(crate) task_deadline: Option<(Instant, Duration)>,
    /// When the instance was made: the start of the guest's monotonic clock.
    pub(crate) clock_start: Instant,
}

impl Sandbox {
    pub(crate) fn new(limits: &SandboxLimits) -> Sandbox {
        let stdout = CapturePipe::new(limits.max_captured_output);
        let stderr = CapturePipe::new(limits.max_captured_output);
        let clock_start = Instant::now();
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .monotonic_clock(GuestClock { start: clock_start })
            .build_p1();
        Sandbox {
            wasi,
            stdout,
            stderr,
            max_memory_bytes: limits.max_memory_bytes,
            peak_memory: 0,
            memory_limit_hit: false,
            interrupt: None,
            stopped: None,
            call_limit: limits.max_call_time,
            call_deadline: clock_start + limits.max_call_time,
            task_deadline: None,
            clock_start,
        }
    }

    /// Gives the next call its full time limit.
    pub(crate) fn arm(&mut self) {
        self.stopped = None;
        self.call_deadline = Instant::now() + self.call_limit;
    }

    /// The time limit of one call.
    pub(crate) fn call_limit(&self) -> Duration {
        self.call_limit
    }

    /// Whether the running call must stop: its instance was interrupted, or its time or its
    /// task's is up. Records why and returns the trap that stops it.
    pub(crate) fn check_stop(&mut self) -> Result<(), wasmtime::Error> {
        let stop = if self
            .interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            Some(Stop::Cancelled)
        } else {
            let now = Instant::now();
            if self.task_deadline.is_some_and(|(at, _)| now >= at) {
                Some(Stop::TaskTime)
            } else if now >= self.call_deadline {
                Some(Stop::CallTime)
            } else {
                None
            }
        };
        match stop {
            Some(stop) => {
                self.stopped = Some(stop);
                Err(wasmtime::Trap::Interrupt.into())
            }
            None => Ok(()),
        }
    }

    /// Called by wasmtime at every epoch tick while the guest runs: stops the call when its
    /// instance is interrupted or a time limit is up, lets it go on for one more tick otherwise.
    /// Checking every tick (10 ms) is what lets a kill stop a guest in the middle of one long call.
    pub(crate) fn on_tick(&mut self) -> Result<wasmtime::UpdateDeadline, wasmtime::Error> {
        self.check_stop()?;
        Ok(wasmtime::UpdateDeadline::Continue(1))
    }
}

impl ResourceLimiter for Sandbox {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmtime::Error> {
        if desired > self.max_memory_bytes {
            self.memory_limit_hit = true;
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmtime::Error> {
        // Tables hold function references; a million is far beyond any real guest.
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl Engine {
    /// A fingerprint of the compiler configuration (target, CPU features, compiler flags, wasm
    /// features, tunables and wasmtime's version), as 32 hex digits: workers with equal fingerprints
    /// can share precompiled artifacts, and a scheduler can tell them apart from workers that
    /// cannot. A worker also keys its on-disk artifacts by it.
    ///
    /// Stable across processes of the same build on the same kind of machine: it is a blake3 digest
    /// of what wasmtime feeds to [`Hash`](std::hash::Hash), which writes integers in native byte
    /// order, unlike `DefaultHasher`, whose algorithm may change between Rust releases.
    pub fn compatibility_hash(&self) -> String {
        use std::hash::Hash;
        let mut hasher = Blake3Hasher(blake3::Hasher::new());
        self.inner
            .wasm
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let digest = hasher.0.finalize();
        digest.to_hex()[..32].to_owned()
    }
}

/// Lets a [`Hash`](std::hash::Hash) implementation feed blake3: `Hasher::finish` is only 64 bits,
/// so callers take the full digest from the inner hasher instead.
struct Blake3Hasher(blake3::Hasher);

impl std::hash::Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}
