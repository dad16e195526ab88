//! What guests write to stdout and stderr reaches the task's outcome, on success and on failure,
//! capped per task, and crosses the wire both ways.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use weft_host::UdfKind;
use weft_proto::v1 as pb;
use weft_task::{BlockLocation, GuestOutput, MAX_TASK_OUTPUT, TaskId, TaskResult};
use weft_task::{TaskFailure, TaskOutcome};
use weft_worker::{Executor, TaskError, TaskRun};

use crate::{Modules, engine, id_of, text_task, textkit};

/// A map that passes records through and writes every value to stdout and every key to stderr,
/// each call's bytes back to back.
fn logging_guest() -> Vec<u8> {
    weft_testkit::wat::guest(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#,
        r#"
  ;; Writes `data[0 .. offsets[count]]` to `fd` through the iovec at 300.
  (func $write (param $fd i32) (param $offsets i32) (param $data i32) (param $count i32)
    (i32.store (i32.const 300) (local.get $data))
    (i32.store (i32.const 304)
      (i32.load (i32.add (local.get $offsets) (i32.shl (local.get $count) (i32.const 2)))))
    (drop (call $fd_write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 308))))
  (func (export "weft_map_log") (param $f i32) (result i32)
    (call $write (i32.const 1)
      (i32.load offset=12 (local.get $f)) (i32.load offset=16 (local.get $f))
      (i32.load (local.get $f)))
    (call $write (i32.const 2)
      (i32.load offset=4 (local.get $f)) (i32.load offset=8 (local.get $f))
      (i32.load (local.get $f)))
    (i32.store offset=24 (local.get $f) (i32.load offset=0 (local.get $f)))
    (i32.store offset=28 (local.get $f) (i32.load offset=4 (local.get $f)))
    (i32.store offset=32 (local.get $f) (i32.load offset=8 (local.get $f)))
    (i32.store offset=36 (local.get $f) (i32.load offset=12 (local.get $f)))
    (i32.store offset=40 (local.get $f) (i32.load offset=16 (local.get $f)))
    (i32.const 0))"#,
    )
}

pub fn run(executor: &Executor, spec: &weft_task::TaskSpec) -> TaskRun {
    let no_remote = |_: &BlockLocation,
                     _: &mut dyn FnMut(weft_host::Records) -> Result<(), TaskError>|
     -> Result<(), TaskError> {
        Err(TaskError::MissingModule("no remote blocks".into()))
    };
    executor.run(spec, "w0", &no_remote, &Arc::new(AtomicBool::new(false)))
}

#[test]
fn output_is_captured_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let guest = logging_guest();
    let id = id_of(&guest);
    let executor = Executor::new(engine().clone(), Modules::of(&[&guest]), dir.path());
    let spec = text_task(
        dir.path(),
        "a",
        b"one\ntwo\n",
        &[(UdfKind::Map, &id, "log")],
    );
    let run = run(&executor, &spec);
    assert_eq!(run.result.unwrap().records_out, 2);
    assert_eq!(run.output.stdout, b"onetwo");
    // The keys of text input are `PATH:OFFSET`.
    let stderr = String::from_utf8(run.output.stderr).unwrap();
    assert!(stderr.ends_with("a.txt:4"), "{stderr}");
    assert!(!run.output.truncated);
}

#[test]
fn output_is_captured_when_the_guest_traps() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, id) = textkit();
    let executor = Executor::new(engine().clone(), Modules::of(&[&bytes]), dir.path());
    let spec = text_task(
        dir.path(),
        "a",
        b"fine\nboom\nnever\n",
        &[(UdfKind::Map, &id, "panic_on_boom")],
    );
    let run = run(&executor, &spec);
    let error = run.result.unwrap_err();
    assert!(matches!(error, TaskError::Step { .. }), "{error}");
    assert!(error.is_guest_fault());
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("boom panic"), "{stderr}");
    assert!(run.output.stdout.is_empty());
}

#[test]
fn a_task_that_fails_before_its_guests_start_has_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (_, id) = textkit();
    // The source does not have the module.
    let executor = Executor::new(engine().clone(), Modules::of(&[]), dir.path());
    let spec = text_task(dir.path(), "a", b"x\n", &[(UdfKind::Map, &id, "upper")]);
    let run = run(&executor, &spec);
    assert!(matches!(run.result, Err(TaskError::Module { .. })));
    assert_eq!(run.output, GuestOutput::default());
}

#[test]
fn output_is_capped_per_task_keeping_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let guest = logging_guest();
    let id = id_of(&guest);
    let executor = Executor::new(engine().clone(), Modules::of(&[&guest]), dir.path());
    // 3000 values of 100 bytes: 300 KB of stdout over one batch.
    let values: Vec<String> = (0..3000).map(|i| format!("{i:0>100}")).collect();
    let input = values.join("\n") + "\n";
    let spec = text_task(
        dir.path(),
        "a",
        input.as_bytes(),
        &[(UdfKind::Map, &id, "log")],
    );
    let run = run(&executor, &spec);
    assert_eq!(run.result.unwrap().records_out, 3000);
    let all = values.concat();
    assert_eq!(run.output.stdout.len(), MAX_TASK_OUTPUT);
    assert_eq!(run.output.stdout, all.as_bytes()[..MAX_TASK_OUTPUT]);
    assert_eq!(run.output.stderr.len(), MAX_TASK_OUTPUT);
    assert!(run.output.truncated);
}

fn outcome(result: Result<TaskResult, TaskFailure>, output: GuestOutput) -> TaskOutcome {
    TaskOutcome {
        id: TaskId {
            job: "j".into(),
            stage: 1,
            partition: 2,
            attempt: 3,
        },
        worker_id: "w7".into(),
        result,
        output,
        usage: weft_task::TaskUsage {
            cpu_us: 1234,
            wall_us: 5678,
            peak_memory_bytes: 1 << 20,
        },
    }
}

#[test]
fn output_crosses_the_wire_on_success_and_failure() {
    let output = GuestOutput {
        stdout: b"out".to_vec(),
        stderr: b"err".to_vec(),
        truncated: true,
    };
    let failure = TaskFailure {
        message: "trapped".into(),
        guest_fault: true,
        cancelled: false,
        unreachable: Some("http://10.0.0.7:7071".into()),
    };
    for result in [Ok(TaskResult::default()), Err(failure)] {
        let status = pb::TaskStatus::from(&outcome(result, output.clone()));
        assert_eq!(
            (
                &status.stdout[..],
                &status.stderr[..],
                status.output_truncated
            ),
            (&b"out"[..], &b"err"[..], true)
        );
        let back = TaskOutcome::try_from(status).unwrap();
        assert_eq!(back.output, output);
    }
}

#[test]
fn output_from_a_peer_is_capped_on_receipt() {
    let mut status =
        pb::TaskStatus::from(&outcome(Ok(TaskResult::default()), GuestOutput::default()));
    status.stdout = vec![b'x'; MAX_TASK_OUTPUT + 1];
    let back = TaskOutcome::try_from(status).unwrap();
    assert_eq!(back.output.stdout.len(), MAX_TASK_OUTPUT);
    assert!(back.output.truncated);
}
