//! Integration tests of the task executor and the worker service with real guests built from
//! source: fused steps and the shuffle, the compiled-module cache, guest output, and the worker's
//! side of the scheduler protocol.

mod cache;
mod limits;
mod output;
mod roots;
mod service;
mod shuffle;
mod spill;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use weft_host::{Engine, GuestModule, UdfKind};
use weft_io::{InputFormat, InputSplit, OutputFormat};
use weft_task::{StepRef, TaskId, TaskInput, TaskLimits, TaskOutput, TaskSpec};
use weft_worker::{FetchError, ModuleSource};

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new().unwrap())
}

/// Compiled example modules, keyed by a name used as the module id in steps.
pub fn modules() -> HashMap<String, GuestModule> {
    [
        ("wordcount", weft_examples::WORDCOUNT_RUST),
        ("wordcount-c", weft_examples::WORDCOUNT_C),
        ("textkit", weft_examples::TEXTKIT_RUST),
    ]
    .into_iter()
    .map(|(name, path)| {
        let bytes = std::fs::read(path).unwrap();
        (name.to_owned(), GuestModule::new(engine(), &bytes).unwrap())
    })
    .collect()
}

pub fn step(kind: UdfKind, module: &str, function: &str) -> StepRef {
    StepRef {
        kind,
        module: module.to_owned(),
        function: function.to_owned(),
        label: module.to_owned(),
    }
}

/// The content id of module bytes, as the registry gives it.
pub fn id_of(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// The textkit example's bytes and id.
pub fn textkit() -> (Vec<u8>, String) {
    let bytes = std::fs::read(weft_examples::TEXTKIT_RUST).unwrap();
    let id = id_of(&bytes);
    (bytes, id)
}

/// Module bytes by content id, served as a registry serves them, counting fetches.
#[derive(Debug, Default)]
pub struct Modules {
    bytes: HashMap<String, Vec<u8>>,
    fetches: AtomicU64,
}

impl Modules {
    pub fn of(modules: &[&[u8]]) -> Arc<Modules> {
        Arc::new(Modules {
            bytes: modules.iter().map(|b| (id_of(b), b.to_vec())).collect(),
            fetches: AtomicU64::new(0),
        })
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}

impl ModuleSource for Modules {
    fn fetch(&self, _tenant: &str, id: &str) -> Result<Vec<u8>, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .get(id)
            .cloned()
            .ok_or_else(|| FetchError::Other(format!("no module {id}").into()))
    }
}

/// A task of job `job` that runs `steps` (each a `(kind, module id, function)`) over `input`, a
/// text file written into `dir`, and writes `dir/out/part-00000.attempt-0`.
pub fn text_task(dir: &Path, job: &str, input: &[u8], steps: &[(UdfKind, &str, &str)]) -> TaskSpec {
    let path = dir.join(format!("{job}.txt"));
    std::fs::write(&path, input).unwrap();
    let staging_dir = dir.join(format!("{job}-out"));
    std::fs::create_dir_all(&staging_dir).unwrap();
    TaskSpec {
        id: TaskId {
            job: job.to_owned(),
            stage: 0,
            partition: 0,
            attempt: 0,
        },
        tenant: "test".into(),
        job_name: job.to_owned(),
        steps: steps
            .iter()
            .map(|(kind, module, function)| step(*kind, module, function))
            .collect(),
        input: TaskInput::Split {
            split: InputSplit {
                path,
                start: 0,
                length: input.len() as u64,
            },
            format: InputFormat::Text,
            on_error: weft_io::OnError::Fail,
            quarantine_dir: None,
            keys_unused: false,
        },
        output: TaskOutput::Part {
            staging_dir,
            part: 0,
            format: OutputFormat::Text,
        },
        limits: TaskLimits::default(),
        roots: None,
    }
}

/// The values of a text task's output, in order.
pub fn output_values(dir: &Path, job: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{job}-out")).join("part-00000.attempt-0"))
        .unwrap();
    text.lines()
        .map(|line| line.split_once('\t').unwrap().1.to_owned())
        .collect()
}
