//! A task with data roots touches only what really lies inside them: the worker checks the file it
//! opened and the file it created, so a path that became a symlink after the job was accepted
//! leads nowhere.

use std::path::Path;

use weft_host::UdfKind;
use weft_io::DataRoots;
use weft_task::TaskSpec;
use weft_testkit::wat::{IDENTITY_MAP, guest};
use weft_worker::{Executor, TaskError};

use crate::output::run;
use crate::{Modules, engine, id_of, text_task};

/// A task of the identity map over `dir/mine/in.txt`, writing into `dir/mine/out`, with roots
/// `dir/mine` (read) and `dir/mine/out` (write).
fn task(dir: &Path) -> (Executor, TaskSpec) {
    let guest = guest("", IDENTITY_MAP);
    let id = id_of(&guest);
    let mine = dir.join("mine");
    std::fs::create_dir_all(mine.join("out")).unwrap();
    let executor = Executor::new(engine().clone(), Modules::of(&[&guest]), dir);
    let mut spec = text_task(&mine, "in", b"a line\n", &[(UdfKind::Map, &id, "identity")]);
    spec.roots = Some(DataRoots {
        read: vec![mine.clone()],
        write: vec![mine.join("out")],
    });
    if let weft_task::TaskOutput::Part { staging_dir, .. } = &mut spec.output {
        *staging_dir = mine.join("out").join("staging");
        std::fs::create_dir_all(&staging_dir).unwrap();
    }
    (executor, spec)
}

fn outside(run: weft_worker::TaskRun) -> String {
    let error = run.result.expect_err("the task must be refused");
    assert!(
        matches!(error, TaskError::Io(weft_io::Error::OutsideRoots { .. })),
        "{error}"
    );
    weft_task::error_chain(&error)
}

#[test]
fn a_task_inside_its_roots_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, spec) = task(dir.path());
    assert_eq!(run(&executor, &spec).result.unwrap().records_out, 1);
}

#[test]
fn an_input_swapped_for_a_symlink_outside_is_refused_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, spec) = task(dir.path());
    // After the job was accepted, the input became a link to another tenant's file.
    let theirs = dir.path().join("theirs.txt");
    std::fs::write(&theirs, "their secret\n").unwrap();
    let input = dir.path().join("mine/in.txt");
    std::fs::remove_file(&input).unwrap();
    std::os::unix::fs::symlink(&theirs, &input).unwrap();
    let message = outside(run(&executor, &spec));
    assert!(
        message.contains(&format!("leads to {}", theirs.display())),
        "{message}"
    );
    assert!(message.contains("may read"), "{message}");
}

#[test]
fn an_output_swapped_for_a_symlink_outside_is_refused_when_created() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, spec) = task(dir.path());
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let staging = dir.path().join("mine/out/staging");
    std::fs::remove_dir(&staging).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &staging).unwrap();
    let message = outside(run(&executor, &spec));
    assert!(message.contains("may write"), "{message}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written there"
    );
}
