//! Runs one task: get its modules compiled, read its input, run the fused steps, write its output,
//! and collect what its guests printed. Blocking code: a worker calls it on a thread of its own per
//! task.
//!
//! Compiling is the expensive part of starting a task, so compiled modules are kept in memory for
//! the life of the executor and, with a cache directory, on disk as artifacts
//! (`CACHE_DIR/compiled/<engine hash>/<module hex>.cwasm`), so a restarted worker loads them instead
//! of compiling again. The engine's compatibility hash in the path keeps a worker of another build or
//! machine kind from even trying another's artifacts; a damaged artifact is refused by its digest,
//! deleted and compiled again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use weft_host::{Compiler, Engine, GuestModule, Records, SandboxLimits};
use weft_io::{Access, DataRoots, PartWriter, ReadOptions, ReaderBuffers, SplitReader};
use weft_task::{
    BlockLocation, GuestOutput, StepRef, TaskId, TaskInput, TaskLimits, TaskOutput, TaskResult,
    TaskSpec, TaskUsage,
};

use crate::radix::{self, Scatter};
use crate::{
    DEFAULT_GROUP_BUDGET, FetchError, Grouper, ModuleError, Pipeline, ShuffleWriter, TaskError,
    read_block_with,
};

/// Where a worker gets module bytes from: the local registry in embedded mode, the scheduler's
/// registry service in a cluster. The executor verifies the bytes against the id either way.
pub trait ModuleSource: Send + Sync + 'static {
    fn fetch(&self, tenant: &str, id: &str) -> Result<Vec<u8>, FetchError>;
}

/// Fetches one remote shuffle block (the worker service provides it, over gRPC), handing its
/// batches to the callback as they are decoded. A fetch failure is a [`TaskError::Fetch`]; an error
/// of the callback is returned as is.
pub type RemoteFetch<'a> = &'a dyn Fn(
    &BlockLocation,
    &mut dyn FnMut(Records) -> Result<(), TaskError>,
) -> Result<(), TaskError>;

/// The task runner of one worker.
pub struct Executor {
    engine: Engine,
    source: Arc<dyn ModuleSource>,
    /// Compiled modules by id, for the life of the executor.
    compiled: Mutex<HashMap<String, GuestModule>>,
    /// Engines for tasks that ask for another wasm stack than `engine`'s, by stack size (a power
    /// of two: few), and the modules loaded into each, by stack size and id.
    stacks: Mutex<Stacks>,
    /// A gate per module being loaded: tasks that need the same module at once (a stage starting on
    /// every slot) wait for the first one to compile it instead of each compiling it.
    loading: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    work_dir: PathBuf,
    /// `CACHE_DIR/compiled/<engine hash>`; `None` keeps compiled modules in memory only.
    artifact_dir: Option<PathBuf>,
    /// Where modules are compiled (in this process unless set).
    compiler: Compiler,
    /// Bytes a task's grouping (map-side combiner, reduce-side tables) may hold before it hands
    /// partial results on or spills sorted runs to disk.
    task_memory: usize,
    /// Input records per part of a reduce task that groups in parts ([`radix::fanout`]).
    part_records: u64,
    /// Buffers finished map tasks' readers left, for the next ones (at most [`KEPT_READERS`]).
    read_buffers: Mutex<Vec<ReaderBuffers>>,
    counters: Counters,
}

/// Engines of other wasm stack sizes than the executor's own, and the modules loaded into them.
#[derive(Default)]
struct Stacks {
    engines: HashMap<usize, Engine>,
    modules: HashMap<(usize, String), GuestModule>,
}

/// Reader buffers kept between map tasks: one per task that may read at once is enough in steady
/// state, and this bounds what an idle worker holds.
const KEPT_READERS: usize = 4;

#[derive(Debug, Default)]
struct Counters {
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
    spills: AtomicU64,
    spilled_bytes: AtomicU64,
    partitioned_reduces: AtomicU64,
    reduce_parts: AtomicU64,
    scatter_overflows: AtomicU64,
}

/// Where the executor's modules came from since it started: what a restarted worker saved, and what
/// a metrics endpoint can report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutorStats {
    /// Modules compiled from their wasm bytes.
    pub compiles: u64,
    /// Modules loaded from an artifact in the cache directory.
    pub disk_hits: u64,
    /// Module look-ups served by a module already in memory.
    pub memory_hits: u64,
    /// Sorted runs reduce tasks wrote to disk because their groups outgrew the task memory.
    pub spills: u64,
    /// Bytes of those runs.
    pub spilled_bytes: u64,
    /// Reduce tasks that scattered their input into parts by key and grouped part by part
    /// (many records, input within a quarter of the task memory).
    pub partitioned_reduces: u64,
    /// The parts those tasks grouped.
    pub reduce_parts: u64,
    /// Reduce tasks that began to scatter but whose blocks decoded to more than half the task
    /// memory (compressed blocks say their compressed size), and grouped directly instead.
    pub scatter_overflows: u64,
}

/// How a task run ended, and what its guests wrote meanwhile (empty when the task failed before
/// its guests were instantiated, e.g. because a module could not be fetched).
#[derive(Debug)]
pub struct TaskRun {
    pub result: Result<TaskResult, TaskError>,
    pub output: GuestOutput,
    /// What the attempt used (measured whether it succeeded or not).
    pub usage: TaskUsage,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("work_dir", &self.work_dir)
            .field("artifact_dir", &self.artifact_dir)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain inserts and removes).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Executor {
    /// An executor with shuffle files under `work_dir` and compiled modules in memory only.
    pub fn new(engine: Engine, source: Arc<dyn ModuleSource>, work_dir: &Path) -> Executor {
        Executor {
            engine,
            source,
            compiled: Mutex::new(HashMap::new()),
            stacks: Mutex::new(Stacks::default()),
            loading: Mutex::new(HashMap::new()),
            work_dir: work_dir.to_owned(),
            artifact_dir: None,
            compiler: Compiler::InProcess,
            task_memory: DEFAULT_GROUP_BUDGET,
            part_records: radix::RECORDS_PER_PART,
            read_buffers: Mutex::new(Vec::new()),
            counters: Counters::default(),
        }
    }

    /// Compiles modules with `compiler` (e.g. in a child process under a deadline and a memory
    /// limit) instead of in this process.
    pub fn with_compiler(mut self, compiler: Compiler) -> Executor {
        self.compiler = compiler;
        self
    }

    /// Keeps compiled modules on disk too, under `cache_dir/compiled/<engine hash>/` (created when
    /// the first artifact is written), and loads them from there before compiling.
    pub fn with_cache_dir(mut self, cache_dir: &Path) -> Executor {
        self.artifact_dir = Some(
            cache_dir
                .join("compiled")
                .join(self.engine.compatibility_hash()),
        );
        self
    }

    /// Installs `module` under `id`, as if it had been compiled from the registry's bytes: every
    /// task that names `id` runs it, and the registry is not asked for it. This is how a job runs
    /// with UDFs compiled natively ([`GuestModule::native`]) in place of the wasm module `id`, to
    /// measure what the sandbox costs; the caller answers for the module doing what `id` does.
    pub fn preload(&self, id: &str, module: GuestModule) {
        lock(&self.compiled).insert(id.to_owned(), module);
    }

    /// Gives each task `bytes` of memory for grouping (default [`DEFAULT_GROUP_BUDGET`]): a
    /// worker's memory divided by its slots.
    pub fn with_task_memory(mut self, bytes: u64) -> Executor {
        self.task_memory = usize::try_from(bytes).unwrap_or(usize::MAX).max(1);
        self
    }

    /// Gives each part of a reduce task that groups in parts about `records` input records
    /// (default [`crate::RECORDS_PER_PART`], 2^18: with every key distinct, a part's tables are a few
    /// megabytes, within a shared L3 cache). Fewer make more, smaller parts.
    pub fn with_part_records(mut self, records: u64) -> Executor {
        self.part_records = records.max(1);
        self
    }

    /// Where modules came from so far, what tasks spilled, and how reduce tasks grouped.
    pub fn stats(&self) -> ExecutorStats {
        ExecutorStats {
            compiles: self.counters.compiles.load(Ordering::Relaxed),
            disk_hits: self.counters.disk_hits.load(Ordering::Relaxed),
            memory_hits: self.counters.memory_hits.load(Ordering::Relaxed),
            spills: self.counters.spills.load(Ordering::Relaxed),
            spilled_bytes: self.counters.spilled_bytes.load(Ordering::Relaxed),
            partitioned_reduces: self.counters.partitioned_reduces.load(Ordering::Relaxed),
            reduce_parts: self.counters.reduce_parts.load(Ordering::Relaxed),
            scatter_overflows: self.counters.scatter_overflows.load(Ordering::Relaxed),
        }
    }

    /// Ids of the modules held compiled in memory, sorted.
    pub fn compiled_modules(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.compiled).keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// The directory of one map task attempt's shuffle files.
    pub fn shuffle_dir(&self, task: &TaskId) -> PathBuf {
        self.work_dir.join("shuffle").join(&task.job).join(format!(
            "s{}-p{}-a{}",
            task.stage, task.partition, task.attempt
        ))
    }

    /// The directory of one reduce task attempt's spilled runs (deleted when the task ends).
    pub fn spill_dir(&self, task: &TaskId) -> PathBuf {
        self.work_dir.join("spill").join(&task.job).join(format!(
            "s{}-p{}-a{}",
            task.stage, task.partition, task.attempt
        ))
    }

    /// The file of one shuffle block.
    pub fn block_path(&self, task: &TaskId, partition: u32) -> PathBuf {
        self.shuffle_dir(task)
            .join(format!("part-{partition:05}.arrow"))
    }

    /// The jobs with shuffle or spill files here.
    pub fn jobs_with_files(&self) -> HashSet<String> {
        ["shuffle", "spill"]
            .iter()
            .filter_map(|area| std::fs::read_dir(self.work_dir.join(area)).ok())
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Whether some job's shuffle files are still here (jobs release them when they end).
    pub fn holds_shuffle_output(&self) -> bool {
        std::fs::read_dir(self.work_dir.join("shuffle"))
            .map(|mut jobs| jobs.next().is_some())
            .unwrap_or(false)
    }

    /// Deletes every shuffle file of a job (and the job's spill directory, whose tasks have
    /// already deleted their runs).
    pub fn release_job(&self, job: &str) -> std::io::Result<()> {
        for area in ["shuffle", "spill"] {
            match std::fs::remove_dir_all(self.work_dir.join(area).join(job)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn in_memory(&self, id: &str) -> Option<GuestModule> {
        let module = lock(&self.compiled).get(id).cloned()?;
        self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
        Some(module)
    }

    /// The module `id` loaded into an engine whose calls may use `stack` bytes of wasm stack: the
    /// executor's own engine's module when that is its stack (or the module is native), else the
    /// same compiled code loaded into an engine of that stack size, once.
    fn module_with_stack(
        &self,
        tenant: &str,
        id: &str,
        stack: u64,
    ) -> Result<GuestModule, TaskError> {
        let module = self.module(tenant, id)?;
        let stack = usize::try_from(stack).unwrap_or(usize::MAX);
        if module.is_native() || stack == self.engine.max_stack() {
            return Ok(module);
        }
        let fail = |detail: String| TaskError::Module {
            id: id.to_owned(),
            source: ModuleError::Stack { stack, detail },
        };
        let mut stacks = lock(&self.stacks);
        if let Some(m) = stacks.modules.get(&(stack, id.to_owned())) {
            return Ok(m.clone());
        }
        let engine = match stacks.engines.get(&stack) {
            Some(engine) => engine.clone(),
            None => {
                let engine = self
                    .engine
                    .with_max_stack(stack)
                    .map_err(|e| fail(format!("{e:#}")))?;
                stacks.engines.insert(stack, engine.clone());
                engine
            }
        };
        let artifact = module.to_artifact().map_err(|e| fail(e.to_string()))?;
        // SAFETY: the artifact was just serialized from a module this process compiled (or loaded
        // after checking it), for an engine of the same configuration but its stack size.
        let moved = unsafe { GuestModule::deserialize(&engine, &artifact) }
            .map_err(|e| fail(e.to_string()))?;
        stacks.modules.insert((stack, id.to_owned()), moved.clone());
        Ok(moved)
    }

    /// The compiled module `id`: from memory, else from disk, else fetched and compiled.
    fn module(&self, tenant: &str, id: &str) -> Result<GuestModule, TaskError> {
        if let Some(m) = self.in_memory(id) {
            return Ok(m);
        }
        let gate = lock(&self.loading)
            .entry(id.to_owned())
            .or_default()
            .clone();
        let _turn = lock(&gate);
        // Whoever held the gate before us may have loaded it.
        if let Some(m) = self.in_memory(id) {
            return Ok(m);
        }
        let loaded = self.load(tenant, id);
        if let Ok(m) = &loaded {
            lock(&self.compiled).insert(id.to_owned(), m.clone());
        }
        lock(&self.loading).remove(id);
        loaded
    }

    fn load(&self, tenant: &str, id: &str) -> Result<GuestModule, TaskError> {
        let fail = |source: ModuleError| TaskError::Module {
            id: id.to_owned(),
            source,
        };
        // Checked before anything else: the id comes from a peer and names a file on disk, and the
        // canonical hex of a parsed hash cannot climb out of the cache directory.
        let expected = id
            .strip_prefix("blake3:")
            .and_then(|hex| blake3::Hash::from_hex(hex).ok())
            .ok_or_else(|| fail(ModuleError::InvalidId))?;
        let artifact = self
            .artifact_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.cwasm", expected.to_hex())));
        if let Some(module) = artifact.as_deref().and_then(|p| self.read_artifact(id, p)) {
            self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(module);
        }
        let bytes = self
            .source
            .fetch(tenant, id)
            .map_err(|e| fail(ModuleError::Fetch(e)))?;
        if blake3::hash(&bytes) != expected {
            return Err(fail(ModuleError::Mismatch));
        }
        let module = GuestModule::compile(&self.engine, &bytes, &self.compiler)
            .map_err(|e| fail(ModuleError::Compile(e)))?;
        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = &artifact
            && let Err(e) = write_artifact(&module, path)
        {
            // The task does not need the artifact; the next start of this worker will compile again.
            tracing::warn!(module = id, path = %path.display(),
                error = %weft_task::error_chain(&e), "cannot store the compiled module on disk");
        }
        Ok(module)
    }

    /// The artifact at `path`, if there is a sound one. A damaged or incompatible one is deleted so
    /// the compilation that follows can replace it.
    fn read_artifact(&self, id: &str, path: &Path) -> Option<GuestModule> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(module = id, path = %path.display(), error = %e,
                    "cannot read the compiled module; compiling it again");
                return None;
            }
        };
        // SAFETY: files in this directory are only ever written by `write_artifact` from
        // `GuestModule::to_artifact` — whole, under a temporary name then renamed into place — by
        // workers whose engines have the compatibility hash the directory is named after. Damage
        // since (disk errors, a crash) is caught by the artifact's digest before wasmtime reads it.
        match unsafe { GuestModule::deserialize(&self.engine, &bytes) } {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::warn!(module = id, path = %path.display(), error = %e,
                    "refusing the compiled module on disk; compiling it again");
                if let Err(e) = std::fs::remove_file(path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot delete the refused artifact");
                }
                None
            }
        }
    }

    /// Runs a task to completion. `own_worker` is this worker's id (blocks it holds are read from
    /// disk; others through `remote`); `cancelled` is checked between batches. The guests' output
    /// comes back whether the task succeeded or not.
    pub fn run(
        &self,
        spec: &TaskSpec,
        own_worker: &str,
        remote: RemoteFetch<'_>,
        cancelled: &Arc<AtomicBool>,
    ) -> TaskRun {
        self.run_with_progress(spec, own_worker, remote, cancelled, &Progress::default())
    }

    /// [`Executor::run`], counting in `progress` what the task has read as it reads it.
    pub fn run_with_progress(
        &self,
        spec: &TaskSpec,
        own_worker: &str,
        remote: RemoteFetch<'_>,
        cancelled: &Arc<AtomicBool>,
        progress: &Progress,
    ) -> TaskRun {
        let started = Instant::now();
        let cpu_started = thread_cpu_us();
        let mut pipeline = None;
        let mut result = catching_panics(|| {
            self.run_with(spec, own_worker, remote, cancelled, progress, &mut pipeline)
        });
        if matches!(result, Err(TaskError::Panicked(_))) {
            // What a panic left half-done is not read: dropped, without its output or figures.
            pipeline = None;
        }
        let usage = TaskUsage {
            cpu_us: thread_cpu_us().saturating_sub(cpu_started),
            wall_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            peak_memory_bytes: pipeline.as_ref().map_or(0, Pipeline::peak_memory_bytes),
        };
        // Whatever a killed task failed with (an interrupted call, a half-read block), it was killed.
        if result.is_err() && cancelled.load(Ordering::Relaxed) {
            result = Err(TaskError::Cancelled);
        }
        let output = pipeline
            .map(|p| {
                let (stdout, stderr) = p.output();
                GuestOutput::capped(stdout, stderr, p.output_truncated())
            })
            .unwrap_or_default();
        TaskRun {
            result,
            output,
            usage,
        }
    }

    /// The task itself; the pipeline it builds is left in `slot` so its output survives a failure.
    fn run_with(
        &self,
        spec: &TaskSpec,
        own_worker: &str,
        remote: RemoteFetch<'_>,
        cancelled: &Arc<AtomicBool>,
        progress: &Progress,
        slot: &mut Option<Pipeline>,
    ) -> Result<TaskResult, TaskError> {
        // The task's time runs from here: fetching and compiling its modules count.
        let limit = spec.limits.max_task_time;
        let deadline = Instant::now() + limit;
        let steps = spec.all_steps();
        let mut modules = HashMap::new();
        for step in &steps {
            if !modules.contains_key(&step.module) {
                modules.insert(
                    step.module.clone(),
                    self.module_with_stack(
                        &spec.tenant,
                        &step.module,
                        spec.limits.max_stack_bytes,
                    )?,
                );
            }
        }
        let limits = sandbox_limits(spec.limits);
        let pipeline = slot.insert(Pipeline::new(&modules, &steps, &limits)?);
        pipeline.set_interrupt(cancelled);
        pipeline.set_task_deadline(deadline, limit);
        let max_output = spec.limits.max_task_output_bytes;
        let mut result = TaskResult::default();
        let mut sink = match &spec.output {
            TaskOutput::Shuffle {
                partitions,
                combiner,
                compression,
            } => {
                let dir = self.shuffle_dir(&spec.id);
                std::fs::create_dir_all(&dir).map_err(|e| TaskError::shuffle(&dir, e))?;
                Sink::Shuffle(
                    ShuffleWriter::new(&dir, *partitions, combiner.clone())?
                        .with_compression(*compression)
                        .with_combine_budget(self.task_memory)
                        .with_sandbox_memory(limits.max_memory_bytes)
                        .with_output_limit(max_output),
                )
            }
            TaskOutput::Part {
                staging_dir,
                part,
                format,
            } => Sink::Part {
                writer: PartWriter::create_within(
                    staging_dir,
                    &weft_io::attempt_part_name(*part, spec.id.attempt),
                    *format,
                    spec.roots.as_ref(),
                )?,
                written: 0,
                max_written: max_output,
            },
        };
        let check = || {
            if cancelled.load(Ordering::Relaxed) {
                Err(TaskError::Cancelled)
            } else if Instant::now() >= deadline {
                Err(TaskError::TaskTime { limit })
            } else {
                Ok(())
            }
        };

        match &spec.input {
            TaskInput::Split {
                split,
                format,
                on_error,
                quarantine_dir,
                keys_unused,
            } => {
                result.bytes_in = split.length;
                let options = ReadOptions {
                    batch_bytes: input_batch_bytes(self.task_memory, limits.max_memory_bytes),
                    ..ReadOptions::default()
                };
                let buffers = lock(&self.read_buffers).pop().unwrap_or_default();
                let mut reader = SplitReader::open_within(
                    split,
                    *format,
                    options,
                    buffers,
                    spec.roots.as_ref(),
                )?
                .with_on_error(*on_error)
                .with_keys(!*keys_unused);
                let mut quarantine =
                    Quarantine::new(quarantine_dir.as_deref(), &spec.id, spec.roots.as_ref());
                while let Some(batch) = reader.next_batch()? {
                    check()?;
                    quarantine.keep(reader.take_bad_records())?;
                    result.records_in += batch.len() as u64;
                    progress
                        .records_in
                        .store(result.records_in, Ordering::Relaxed);
                    progress
                        .bytes_in
                        .store(reader.consumed(), Ordering::Relaxed);
                    // Kept (buffers are shared, not copied) to find a failing record.
                    let kept = batch.clone();
                    let before = result.records_in - batch.len() as u64;
                    if let Err(e) = sink.take(pipeline, &spec.steps, batch) {
                        // Without keys, the failing record's `PATH:OFFSET` is read again.
                        let key_of = |index: usize| {
                            if *keys_unused {
                                let at = before + index as u64;
                                key_of_record(split, *format, *on_error, spec.roots.as_ref(), at)
                            } else {
                                Some(kept.get(index).0.to_vec())
                            }
                        };
                        return Err(locate_failure(pipeline, &spec.steps, &kept, &key_of, e));
                    }
                }
                quarantine.keep(reader.take_bad_records())?;
                quarantine.finish()?;
                result.records_skipped = reader.skipped();
                let mut kept = lock(&self.read_buffers);
                if kept.len() < KEPT_READERS {
                    kept.push(reader.into_buffers());
                }
            }
            TaskInput::Shuffle { wide, blocks } => {
                // Blocks stream in batch by batch; the grouper keeps within the task's memory by
                // spilling sorted runs, deleted when it is dropped (whether the task succeeds or not).
                // An input of many records that fits in a quarter of the memory is scattered into
                // parts by key first, and each part grouped on its own (`radix`).
                // Sizes as map tasks reported them: summed without overflow, whatever they say.
                let total = |size: fn(&BlockLocation) -> u64| {
                    blocks.iter().map(size).fold(0u64, u64::saturating_add)
                };
                let (records, bytes) = (total(|b| b.records), total(|b| b.bytes));
                let parts = radix::fanout(records, bytes, self.task_memory, self.part_records);
                let mut scatter = (parts > 1).then(|| Scatter::new(wide, parts, bytes));
                let budget = if scatter.is_some() {
                    self.task_memory / 2
                } else {
                    self.task_memory
                };
                let mut grouper = Grouper::new(wide.clone())?
                    .with_budget(budget)
                    .spill_to(&self.spill_dir(&spec.id));
                for block in blocks {
                    check()?;
                    let local = block.worker_id == own_worker;
                    if !local {
                        result.remote_fetches += 1;
                    }
                    let mut absorb = |batch: Records| -> Result<(), TaskError> {
                        check()?;
                        result.records_in += batch.len() as u64;
                        progress
                            .records_in
                            .store(result.records_in, Ordering::Relaxed);
                        let Some(parts) = scatter.as_mut() else {
                            return grouper.absorb(pipeline, &batch);
                        };
                        parts.push(&batch)?;
                        if parts.held() > self.task_memory / 2 {
                            // The blocks decode to more than they said (compressed ones do):
                            // what is held goes to the grouper, and the rest straight after it.
                            self.counters
                                .scatter_overflows
                                .fetch_add(1, Ordering::Relaxed);
                            for part in scatter.take().into_iter().flat_map(Scatter::into_parts) {
                                for chunk in part {
                                    grouper.absorb(pipeline, &chunk?)?;
                                }
                            }
                        }
                        Ok(())
                    };
                    if local {
                        read_block_with(
                            &self.block_path(&block.map_task, block.partition),
                            &mut absorb,
                        )?;
                    } else {
                        remote(block, &mut absorb)?;
                    }
                    result.bytes_in = result.bytes_in.saturating_add(block.bytes);
                    progress.bytes_in.store(result.bytes_in, Ordering::Relaxed);
                }
                check()?;
                // The grouper's output goes through the narrow steps after the wide one as it
                // comes; with parts, part after part, the grouper emptied in between.
                let mut finish = |grouper: &mut Grouper, pipeline: &mut Pipeline| {
                    grouper
                        .finish_with(pipeline, |pipeline, records| {
                            sink.take(pipeline, &spec.steps, records)
                        })
                        .map(drop)
                };
                let finished = match scatter.take() {
                    None => finish(&mut grouper, pipeline),
                    Some(parts) => {
                        self.counters
                            .partitioned_reduces
                            .fetch_add(1, Ordering::Relaxed);
                        parts.into_parts().try_for_each(|part| {
                            self.counters.reduce_parts.fetch_add(1, Ordering::Relaxed);
                            for chunk in part {
                                check()?;
                                grouper.absorb(pipeline, &chunk?)?;
                            }
                            finish(&mut grouper, pipeline)
                        })
                    }
                };
                // Counted whether or not the task got through: the disk traffic happened.
                let spilled = grouper.spill_stats();
                self.counters
                    .spills
                    .fetch_add(spilled.runs, Ordering::Relaxed);
                self.counters
                    .spilled_bytes
                    .fetch_add(spilled.bytes, Ordering::Relaxed);
                finished?;
            }
        }
        check()?;
        match sink {
            Sink::Shuffle(writer) => {
                // What crosses the shuffle, after the map-side combine.
                for block in writer.finish(pipeline)? {
                    result.records_out += block.records;
                    result.bytes_out += block.bytes;
                    result.blocks.push(BlockLocation {
                        worker_id: own_worker.to_owned(),
                        worker_address: String::new(),
                        map_task: spec.id.clone(),
                        partition: block.partition,
                        bytes: block.bytes,
                        records: block.records,
                    });
                }
            }
            Sink::Part { writer, .. } => {
                let stats = writer.finish()?;
                result.records_out = stats.records;
                result.bytes_out = stats.bytes;
            }
        }
        Ok(result)
    }
}

enum Sink {
    Shuffle(ShuffleWriter),
    /// A part file, and the bytes of records written to it against the task's limit.
    Part {
        writer: PartWriter,
        written: u64,
        max_written: u64,
    },
}

impl Sink {
    /// Runs the narrow `steps` over `batch` and writes their output.
    fn take(
        &mut self,
        pipeline: &mut Pipeline,
        steps: &[StepRef],
        batch: Records,
    ) -> Result<(), TaskError> {
        match self {
            Sink::Shuffle(w) => w.run_and_write(pipeline, steps, batch),
            Sink::Part {
                writer,
                written,
                max_written,
            } => {
                let out = pipeline.run(steps, batch)?;
                *written += crate::shuffle::output_bytes(&out);
                if *written > *max_written {
                    return Err(TaskError::TaskOutput {
                        limit: *max_written,
                    });
                }
                Ok(writer.write(&out)?)
            }
        }
    }
}

/// CPU time of the calling thread so far, in microseconds (0 where the platform cannot say).
#[cfg(unix)]
fn thread_cpu_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given, which lives for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return 0;
    }
    (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1_000
}

#[cfg(not(unix))]
fn thread_cpu_us() -> u64 {
    0
}

/// The sandbox a task's limits ask for; what the contract leaves out is the sandbox's default.
/// `weft udf test` runs a UDF under the same.
pub fn sandbox_limits(limits: TaskLimits) -> SandboxLimits {
    SandboxLimits {
        max_memory_bytes: usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX),
        max_call_time: limits.max_call_time,
        max_captured_output: usize::try_from(limits.max_log_bytes).unwrap_or(usize::MAX),
        max_batch_output_bytes: limits.max_batch_output_bytes,
    }
}

/// Writes an artifact atomically (`weft_io::AtomicFile`), so a reader never sees a partial file
/// under the real name; one that a disk later damages fails its digest and is compiled again.
fn write_artifact(module: &GuestModule, path: &Path) -> Result<(), ArtifactWriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| weft_io::Error::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let artifact = module.to_artifact()?;
    weft_io::write_atomically(path, &artifact)?;
    Ok(())
}

/// Why a compiled module could not be kept on disk (the task goes on without it).
#[derive(Debug, thiserror::Error)]
enum ArtifactWriteError {
    #[error(transparent)]
    Serialize(#[from] weft_host::ArtifactError),
    #[error(transparent)]
    Io(#[from] weft_io::Error),
}

/// Input batches of at most this many value bytes.
const MAX_INPUT_BATCH: usize = 16 << 20;
/// Nor fewer than this, however small the memory.
const MIN_INPUT_BATCH: usize = 64 << 10;

/// The value bytes of a map task's input batches: large, because a map-side combiner pays per
/// call for each distinct key it folds into (its running value is read and written once per call),
/// so fewer, larger calls spread that cost over more records: word count's guest work took about
/// 17 % less time with 16 MiB batches than with 4 MiB ones. At most a sixteenth of the task's
/// memory and of the sandbox's, since the host holds the batch, copies it into the guest, and the
/// step's output joins it there.
fn input_batch_bytes(task_memory: usize, sandbox_memory: usize) -> usize {
    MAX_INPUT_BATCH
        .min(task_memory / 16)
        .min(sandbox_memory / 16)
        .max(MIN_INPUT_BATCH)
}

/// How far a running task has read its input, for its worker's heartbeats: records, and bytes of
/// its split or of the shuffle blocks it has merged.
#[derive(Debug, Default)]
pub struct Progress {
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
}

/// Where a map task with `on_error = "quarantine"` writes its malformed records:
/// `bad-records-SSSSS-PPPPP.jsonl` (stage, partition) in the job's quarantine directory, created
/// on the first one and published whole when the task ends (a retry rewrites it).
struct Quarantine<'a> {
    dir: Option<&'a Path>,
    id: &'a TaskId,
    roots: Option<&'a DataRoots>,
    file: Option<(PathBuf, std::io::BufWriter<weft_io::AtomicFile>)>,
}

impl<'a> Quarantine<'a> {
    fn new(dir: Option<&'a Path>, id: &'a TaskId, roots: Option<&'a DataRoots>) -> Quarantine<'a> {
        Quarantine {
            dir,
            id,
            roots,
            file: None,
        }
    }

    fn keep(&mut self, records: Vec<weft_io::BadRecord>) -> Result<(), TaskError> {
        use std::io::Write;
        let Some(dir) = self.dir else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let (path, file) = match &mut self.file {
            Some(file) => file,
            None => {
                let path = dir.join(format!(
                    "bad-records-{:05}-{:05}.jsonl",
                    self.id.stage, self.id.partition
                ));
                std::fs::create_dir_all(dir).map_err(|source| weft_io::Error::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
                let file = weft_io::AtomicFile::create(&path)?;
                if let Some(roots) = self.roots {
                    roots.check_opened(file.as_file(), &path, Access::Write)?;
                }
                self.file.insert((path, std::io::BufWriter::new(file)))
            }
        };
        for record in records {
            file.write_all(&record.to_json_line())
                .map_err(|source| weft_io::Error::Write {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), TaskError> {
        if let Some((path, file)) = self.file {
            let file = file.into_inner().map_err(|e| weft_io::Error::Write {
                path,
                source: e.into_error(),
            })?;
            file.commit()?;
        }
        Ok(())
    }
}

/// Names the input record a task's first step failed on, as `path:line`: a UDF's own error says
/// which record of the *batch* it was, which means nothing to the user. The step alone is run
/// again over ever shorter prefixes of the batch (a UDF is a function of its input: the first
/// prefix that fails ends at the record), O(log n) calls, only on this error path. Traps and
/// limits are left as they are (the instance may not be reusable), and so are steps after the
/// first (their input is no longer input records).
fn locate_failure(
    pipeline: &mut Pipeline,
    steps: &[StepRef],
    batch: &Records,
    key_of: &dyn Fn(usize) -> Option<Vec<u8>>,
    error: TaskError,
) -> TaskError {
    let TaskError::Step {
        kind,
        module,
        function,
        at: None,
        source,
    } = error
    else {
        return error;
    };
    let first = &steps[..1.min(steps.len())];
    let is_first = first
        .first()
        .is_some_and(|s| s.label == module && s.function == function && s.kind == kind);
    let at = if is_first && matches!(*source.0, weft_host::CallError::Guest { .. }) {
        // `len` records fail; find the shortest failing prefix.
        let (mut fine, mut fails) = (0, batch.len());
        while fails - fine > 1 {
            let mid = fine + (fails - fine) / 2;
            if pipeline.run(first, batch.slice(0, mid)).is_err() {
                fails = mid;
            } else {
                fine = mid;
            }
        }
        key_of(fails - 1).and_then(|key| {
            let key = String::from_utf8_lossy(&key).into_owned();
            let (path, offset) = key.rsplit_once(':')?;
            let offset = offset.parse().ok()?;
            let line = weft_io::line_number(Path::new(path), offset).ok()?;
            Some(format!("{path}:{line}"))
        })
    } else {
        None
    };
    TaskError::Step {
        kind,
        module,
        function,
        at,
        source,
    }
}

/// The `PATH:OFFSET` key of the `index`th record of `split` (counting from 0), read again with
/// keys: for locating a failure in a task that read its records without them. The same split,
/// format and `on_error` give the same records in the same order, whatever the batches.
fn key_of_record(
    split: &weft_io::InputSplit,
    format: weft_io::InputFormat,
    on_error: weft_io::OnError,
    roots: Option<&DataRoots>,
    index: u64,
) -> Option<Vec<u8>> {
    let options = ReadOptions::default();
    let reader = SplitReader::open_within(split, format, options, Default::default(), roots)
        .ok()?
        .with_on_error(on_error);
    let mut skipped = 0u64;
    for batch in reader {
        let batch = batch.ok()?;
        let len = batch.len() as u64;
        if index - skipped < len {
            return Some(batch.get((index - skipped) as usize).0.to_vec());
        }
        skipped += len;
    }
    None
}

/// Runs `task`, a panic in it becoming [`TaskError::Panicked`] with the panic's message.
fn catching_panics<T>(task: impl FnOnce() -> Result<T, TaskError>) -> Result<T, TaskError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(TaskError::Panicked(message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_task_is_its_failure_with_the_message() {
        let index = 7;
        let failed = catching_panics::<()>(|| panic!("index {index} out of bounds"));
        let Err(TaskError::Panicked(message)) = &failed else {
            panic!("{failed:?}");
        };
        assert_eq!(message, "index 7 out of bounds");
        let failed = catching_panics::<()>(|| std::panic::panic_any(3u8));
        assert!(matches!(&failed, Err(TaskError::Panicked(m)) if m == "no message"));
        let error = failed.unwrap_err();
        assert!(!error.is_guest_fault());
        assert_eq!(
            error.to_string(),
            "the task panicked (a bug in Weft): no message"
        );
        // What does not panic goes through as it is.
        assert_eq!(catching_panics(|| Ok::<_, TaskError>(5)).unwrap(), 5);
        assert!(matches!(
            catching_panics::<()>(|| Err(TaskError::Cancelled)),
            Err(TaskError::Cancelled)
        ));
    }

    #[test]
    fn input_batches_shrink_with_the_task_or_sandbox_memory() {
        // The defaults: a 256 MiB task in a 1 GiB sandbox reads 16 MiB batches.
        assert_eq!(input_batch_bytes(256 << 20, 1 << 30), 16 << 20);
        assert_eq!(input_batch_bytes(64 << 20, 1 << 30), 4 << 20);
        assert_eq!(input_batch_bytes(256 << 20, 32 << 20), 2 << 20);
        assert_eq!(input_batch_bytes(usize::MAX, usize::MAX), MAX_INPUT_BATCH);
        assert_eq!(input_batch_bytes(1, 1), MIN_INPUT_BATCH);
    }
}
