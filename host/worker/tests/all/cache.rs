//! Compiled modules cached on disk: a restarted executor loads instead of compiling, a damaged
//! artifact is compiled again rather than trusted, and another engine's artifacts are not used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use weft_host::UdfKind;
use weft_task::BlockLocation;
use weft_worker::{Executor, ExecutorStats, TaskError, TaskRun};

use crate::{Modules, engine, output_values, text_task, textkit};

const INPUT: &[u8] = b"hello\nWorld 42\n";

fn no_remote(
    _: &BlockLocation,
    _: &mut dyn FnMut(weft_host::Records) -> Result<(), TaskError>,
) -> Result<(), TaskError> {
    Err(TaskError::MissingModule(
        "no remote blocks in these tests".into(),
    ))
}

fn executor(work: &Path, cache: Option<&Path>, modules: &Arc<Modules>) -> Executor {
    let e = Executor::new(engine().clone(), modules.clone(), work);
    match cache {
        Some(dir) => e.with_cache_dir(dir),
        None => e,
    }
}

/// Runs textkit's `upper` over [`INPUT`] and checks the answer.
fn run_upper(executor: &Executor, dir: &Path, job: &str, module: &str) -> TaskRun {
    let spec = text_task(dir, job, INPUT, &[(UdfKind::Map, module, "upper")]);
    let run = executor.run(&spec, "w0", &no_remote, &Arc::new(AtomicBool::new(false)));
    let result = run.result.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.records_out, 2);
    assert_eq!(output_values(dir, job), ["HELLO", "WORLD 42"]);
    run
}

/// Where the executor keeps the artifact of `id`: the documented layout.
fn artifact_path(cache: &Path, id: &str) -> PathBuf {
    let hex = id.strip_prefix("blake3:").unwrap();
    cache
        .join("compiled")
        .join(engine().compatibility_hash())
        .join(format!("{hex}.cwasm"))
}

fn stats(compiles: u64, disk_hits: u64, memory_hits: u64) -> ExecutorStats {
    ExecutorStats {
        compiles,
        disk_hits,
        memory_hits,
        ..ExecutorStats::default()
    }
}

#[test]
fn a_restarted_executor_loads_the_compiled_module_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (bytes, id) = textkit();
    let modules = Modules::of(&[&bytes]);

    let first = executor(dir.path(), Some(&cache), &modules);
    run_upper(&first, dir.path(), "a", &id);
    assert_eq!(first.stats(), stats(1, 0, 0));
    assert!(artifact_path(&cache, &id).is_file());
    run_upper(&first, dir.path(), "b", &id);
    assert_eq!(first.stats(), stats(1, 0, 1));
    assert_eq!(first.compiled_modules(), std::slice::from_ref(&id));
    assert_eq!(modules.fetches(), 1);
    drop(first);

    // As after a restart: nothing in memory, the artifact on disk.
    let second = executor(dir.path(), Some(&cache), &modules);
    assert!(second.compiled_modules().is_empty());
    run_upper(&second, dir.path(), "c", &id);
    assert_eq!(second.stats(), stats(0, 1, 0));
    assert_eq!(
        modules.fetches(),
        1,
        "a module loaded from disk is not fetched"
    );
    assert_eq!(second.compiled_modules(), [id]);
}

#[test]
fn a_damaged_artifact_is_compiled_again_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (bytes, id) = textkit();
    let modules = Modules::of(&[&bytes]);
    run_upper(
        &executor(dir.path(), Some(&cache), &modules),
        dir.path(),
        "a",
        &id,
    );
    let path = artifact_path(&cache, &id);

    // One flipped bit in the middle of the machine code: still a well-formed file to wasmtime.
    let mut artifact = std::fs::read(&path).unwrap();
    let middle = artifact.len() / 2;
    artifact[middle] ^= 0x01;
    std::fs::write(&path, &artifact).unwrap();
    let second = executor(dir.path(), Some(&cache), &modules);
    run_upper(&second, dir.path(), "b", &id);
    assert_eq!(second.stats(), stats(1, 0, 0));

    // The damaged file was replaced by a sound one, which the next start uses.
    assert_ne!(std::fs::read(&path).unwrap(), artifact);
    let third = executor(dir.path(), Some(&cache), &modules);
    run_upper(&third, dir.path(), "c", &id);
    assert_eq!(third.stats(), stats(0, 1, 0));

    // Cut short, as by a crash without the rename's protection, or garbage.
    let damages = [
        &artifact[..artifact.len() / 3],
        b"not an artifact".as_slice(),
    ];
    for (i, damage) in damages.into_iter().enumerate() {
        std::fs::write(&path, damage).unwrap();
        let again = executor(dir.path(), Some(&cache), &modules);
        run_upper(&again, dir.path(), &format!("d{i}"), &id);
        assert_eq!(again.stats(), stats(1, 0, 0));
    }
}

#[test]
fn artifacts_of_another_engine_are_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (bytes, id) = textkit();
    let modules = Modules::of(&[&bytes]);
    run_upper(
        &executor(dir.path(), Some(&cache), &modules),
        dir.path(),
        "a",
        &id,
    );
    // Move the artifact under another engine's hash, as if another build had written it there.
    let ours = cache.join("compiled").join(engine().compatibility_hash());
    let theirs = cache
        .join("compiled")
        .join("0123456789abcdef0123456789abcdef");
    std::fs::rename(&ours, &theirs).unwrap();

    let second = executor(dir.path(), Some(&cache), &modules);
    run_upper(&second, dir.path(), "b", &id);
    assert_eq!(second.stats(), stats(1, 0, 0));
    assert!(artifact_path(&cache, &id).is_file());
    assert!(
        theirs
            .join(artifact_path(&cache, &id).file_name().unwrap())
            .is_file(),
        "another engine's artifacts are left alone"
    );
}

#[test]
fn without_a_cache_dir_nothing_is_written_and_a_restart_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, id) = textkit();
    let modules = Modules::of(&[&bytes]);
    let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    run_upper(&executor(dir.path(), None, &modules), dir.path(), "a", &id);
    let second = executor(dir.path(), None, &modules);
    run_upper(&second, dir.path(), "b", &id);
    assert_eq!(second.stats(), stats(1, 0, 0));
    // Only the tests' own input and output files appeared.
    let after = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(after, before.len() + 4);
}

#[test]
fn tasks_starting_together_compile_a_module_once() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, id) = textkit();
    let modules = Modules::of(&[&bytes]);
    let executor = executor(dir.path(), None, &modules);
    std::thread::scope(|s| {
        for i in 0..4 {
            let (executor, dir, id) = (&executor, dir.path(), &id);
            s.spawn(move || run_upper(executor, dir, &format!("t{i}"), id));
        }
    });
    assert_eq!(executor.stats(), stats(1, 0, 3));
    assert_eq!(modules.fetches(), 1);
}

#[test]
fn a_module_id_that_is_not_a_hash_never_becomes_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let modules = Modules::of(&[]);
    let executor = executor(dir.path(), Some(&cache), &modules);
    let spec = text_task(
        dir.path(),
        "a",
        INPUT,
        &[(UdfKind::Map, "blake3:../../etc/passwd", "upper")],
    );
    let run = executor.run(&spec, "w0", &no_remote, &Arc::new(AtomicBool::new(false)));
    let error = weft_task::error_chain(&run.result.unwrap_err());
    assert!(error.contains("not a blake3 module id"), "{error}");
    assert_eq!(modules.fetches(), 0);
    assert!(!cache.exists());
}
