//! Runs one task: fetch and compile its modules (cached by id), read its input, run the fused steps,
//! write its output. Blocking code: a worker calls it on a thread of its own per task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use weft_host::{Engine, GuestModule, Records};
use weft_io::{PartWriter, SplitReader};

use crate::task::{BlockLocation, TaskId, TaskInput, TaskOutput, TaskResult, TaskSpec};
use crate::{Grouper, Pipeline, ShuffleWriter, TaskError, read_block};

/// Where a worker gets module bytes from: the local registry in embedded mode, the scheduler's
/// registry service in a cluster. The executor verifies the bytes against the id either way.
pub trait ModuleSource: Send + Sync + 'static {
    fn fetch(&self, tenant: &str, id: &str) -> Result<Vec<u8>, String>;
}

/// Fetches one remote shuffle block (the worker service provides it, over gRPC).
pub type RemoteFetch<'a> = &'a dyn Fn(&BlockLocation) -> Result<Vec<Records>, String>;

/// The task runner of one worker.
pub struct Executor {
    engine: Engine,
    source: Arc<dyn ModuleSource>,
    /// Compiled modules by id: compiling is the expensive part of starting a task, done once per
    /// module per worker.
    compiled: Mutex<HashMap<String, GuestModule>>,
    work_dir: PathBuf,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("work_dir", &self.work_dir)
            .finish_non_exhaustive()
    }
}

impl Executor {
    pub fn new(engine: Engine, source: Arc<dyn ModuleSource>, work_dir: &Path) -> Executor {
        Executor {
            engine,
            source,
            compiled: Mutex::new(HashMap::new()),
            work_dir: work_dir.to_owned(),
        }
    }

    /// The directory of one map task attempt's shuffle files.
    pub fn shuffle_dir(&self, task: &TaskId) -> PathBuf {
        self.work_dir.join("shuffle").join(&task.job).join(format!(
            "s{}-p{}-a{}",
            task.stage, task.partition, task.attempt
        ))
    }

    /// The file of one shuffle block.
    pub fn block_path(&self, task: &TaskId, partition: u32) -> PathBuf {
        self.shuffle_dir(task)
            .join(format!("part-{partition:05}.arrow"))
    }

    /// Deletes every shuffle file of a job.
    pub fn release_job(&self, job: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.work_dir.join("shuffle").join(job)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn module(&self, tenant: &str, id: &str) -> Result<GuestModule, TaskError> {
        if let Some(m) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(m.clone());
        }
        let fail = |detail: String| TaskError::Module {
            id: id.to_owned(),
            detail,
        };
        let bytes = self.source.fetch(tenant, id).map_err(fail)?;
        let expected = id
            .strip_prefix("blake3:")
            .and_then(|hex| blake3::Hash::from_hex(hex).ok())
            .ok_or_else(|| fail("not a blake3 module id".into()))?;
        if blake3::hash(&bytes) != expected {
            return Err(fail("the fetched bytes do not match the module id".into()));
        }
        let module = self.engine.load(&bytes).map_err(|e| fail(e.to_string()))?;
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), module.clone());
        Ok(module)
    }

    /// Runs a task to completion. `own_worker` is this worker's id (blocks it holds are read from
    /// disk; others through `remote`); `cancelled` is checked between batches.
    pub fn run(
        &self,
        spec: &TaskSpec,
        own_worker: &str,
        remote: RemoteFetch<'_>,
        cancelled: &AtomicBool,
    ) -> Result<TaskResult, TaskError> {
        let steps = spec.all_steps();
        let mut modules = HashMap::new();
        for step in &steps {
            if !modules.contains_key(&step.module) {
                modules.insert(
                    step.module.clone(),
                    self.module(&spec.tenant, &step.module)?,
                );
            }
        }
        let mut pipeline = Pipeline::new(&modules, &steps, &spec.limits)?;
        let mut result = TaskResult::default();
        let mut sink = match &spec.output {
            TaskOutput::Shuffle {
                partitions,
                combiner,
            } => {
                let dir = self.shuffle_dir(&spec.id);
                std::fs::create_dir_all(&dir).map_err(|e| TaskError::Shuffle {
                    path: dir.clone(),
                    detail: e.to_string(),
                })?;
                Sink::Shuffle(ShuffleWriter::new(&dir, *partitions, combiner.clone())?)
            }
            TaskOutput::Part {
                staging_dir,
                part,
                format,
            } => Sink::Part(PartWriter::create(staging_dir, *part, *format)?),
        };
        let check = || {
            if cancelled.load(Ordering::Relaxed) {
                Err(TaskError::Cancelled)
            } else {
                Ok(())
            }
        };

        match &spec.input {
            TaskInput::Split { split, format } => {
                result.bytes_in = split.length;
                for batch in SplitReader::open(split, *format)? {
                    check()?;
                    let batch = batch?;
                    result.records_in += batch.len() as u64;
                    let out = pipeline.run(&spec.steps, batch)?;
                    sink.write(&mut pipeline, &out)?;
                }
            }
            TaskInput::Shuffle { wide, blocks } => {
                let mut grouper = Grouper::new(wide.clone())?;
                for block in blocks {
                    check()?;
                    let batches = if block.worker_id == own_worker {
                        read_block(&self.block_path(&block.map_task, block.partition))?
                    } else {
                        result.remote_fetches += 1;
                        remote(block).map_err(|detail| TaskError::Fetch {
                            from: block.worker_address.clone(),
                            detail,
                        })?
                    };
                    result.bytes_in += block.bytes;
                    for batch in batches {
                        result.records_in += batch.len() as u64;
                        grouper.absorb(&mut pipeline, &batch)?;
                    }
                }
                check()?;
                // The grouper's output goes through the narrow steps after the wide one.
                let mut emitted: Vec<Records> = Vec::new();
                grouper.finish(&mut pipeline, |records| {
                    emitted.push(records);
                    Ok(())
                })?;
                for records in emitted {
                    let out = pipeline.run(&spec.steps, records)?;
                    sink.write(&mut pipeline, &out)?;
                }
            }
        }
        check()?;
        match sink {
            Sink::Shuffle(writer) => {
                // What crosses the shuffle, after the map-side combine.
                for block in writer.finish(&mut pipeline)? {
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
            Sink::Part(writer) => {
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
    Part(PartWriter),
}

impl Sink {
    fn write(&mut self, pipeline: &mut Pipeline, records: &Records) -> Result<(), TaskError> {
        match self {
            Sink::Shuffle(w) => w.write(pipeline, records),
            Sink::Part(w) => Ok(w.write(records)?),
        }
    }
}
