//! Each limit of a task, hit: the failure names the limit and its value, counts as the guest's
//! fault, and comes within a bound of the value.

use std::time::{Duration, Instant};

use weft_host::UdfKind;
use weft_task::TaskLimits;
use weft_testkit::wat::{
    BLOAT_FLAT_MAP, CHATTY_MAP, IDENTITY_MAP, SPIN_MAP, WASI_IMPORTS, deep_map, guest, sleep_map,
};
use weft_worker::{Executor, TaskError};

use crate::output::run;
use crate::{Modules, engine, id_of, text_task};

/// Runs `function` of `guest` as a map over `input` under `limits`; returns the run and how
/// long it took.
fn run_under(
    guest: &[u8],
    kind: UdfKind,
    function: &str,
    input: &[u8],
    limits: TaskLimits,
) -> (weft_worker::TaskRun, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let id = id_of(guest);
    let executor = Executor::new(engine().clone(), Modules::of(&[guest]), dir.path());
    let mut spec = text_task(dir.path(), "a", input, &[(kind, &id, function)]);
    spec.limits = limits;
    let started = Instant::now();
    let run = run(&executor, &spec);
    (run, started.elapsed())
}

fn failure(run: weft_worker::TaskRun) -> TaskError {
    let error = run.result.expect_err("the task must fail");
    assert!(error.is_guest_fault(), "{error}");
    error
}

#[test]
fn the_task_time_limit_stops_a_guest_looping_or_asleep() {
    for (bytes, function) in [
        (guest("", SPIN_MAP), "spin"),
        (guest(WASI_IMPORTS, &sleep_map()), "sleep"),
    ] {
        let limits = TaskLimits {
            max_task_time: Duration::from_millis(500),
            ..TaskLimits::default()
        };
        let (run, took) = run_under(&bytes, UdfKind::Map, function, b"x\n", limits);
        let error = weft_task::error_chain(&failure(run));
        assert!(
            error.ends_with(&format!(
                "{function}: was stopped: the task exceeded its time limit of 500ms \
                 (limits.task_time)"
            )),
            "{error}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{function} stopped after {took:?}"
        );
    }
}

#[test]
fn the_stack_limit_is_the_tasks() {
    // A task's guests run on a thread with room for the largest stack (as a worker's do).
    std::thread::Builder::new()
        .stack_size(weft_task::MAX_STACK_BYTES as usize + (8 << 20))
        .spawn(|| {
            // The executor's engine has the default stack of a task, which needs no other engine.
            assert_eq!(
                weft_host::DEFAULT_MAX_STACK as u64,
                weft_task::DEFAULT_STACK_BYTES
            );
            let deep = guest("", &deep_map(10_000));
            let with_stack = |bytes: u64| TaskLimits {
                max_stack_bytes: bytes,
                ..TaskLimits::default()
            };
            let (run, _) = run_under(&deep, UdfKind::Map, "deep", b"x\n", with_stack(64 << 10));
            let error = weft_task::error_chain(&failure(run));
            assert!(
                error.ends_with(
                    "deep: exceeded the stack limit of 64 KiB (limits.stack): call \
                     stack exhausted"
                ),
                "{error}"
            );
            // The same recursion in 2 MiB (another engine than the worker's default one, the
            // module's compiled code loaded into it) runs through, and so does it in the default.
            for stack in [2 << 20, weft_task::DEFAULT_STACK_BYTES] {
                let (run, _) = run_under(&deep, UdfKind::Map, "deep", b"x\ny\n", with_stack(stack));
                assert_eq!(run.result.expect("enough stack").records_out, 2);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn the_task_time_limit_counts_from_the_start_of_the_task() {
    // Compiling the module alone takes longer than this.
    let limits = TaskLimits {
        max_task_time: Duration::from_millis(1),
        ..TaskLimits::default()
    };
    let (run, _) = run_under(
        &guest("", IDENTITY_MAP),
        UdfKind::Map,
        "identity",
        b"x\n",
        limits,
    );
    let error = failure(run);
    assert!(matches!(error, TaskError::TaskTime { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "the task exceeded its time limit of 1ms (limits.task_time)"
    );
}

#[test]
fn the_call_time_limit_is_the_tasks() {
    let limits = TaskLimits {
        max_call_time: Duration::from_millis(300),
        ..TaskLimits::default()
    };
    let (run, took) = run_under(&guest("", SPIN_MAP), UdfKind::Map, "spin", b"x\n", limits);
    let error = weft_task::error_chain(&failure(run));
    assert!(
        error.ends_with("spin: exceeded the time limit of 300ms per call (limits.call_time)"),
        "{error}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn what_a_task_writes_is_bounded() {
    // Ten records of "NNNN" under keys "a.txt:OFFSET": well over 40 bytes in all.
    let input: String = (0..10).map(|i| format!("{i:04}\n")).collect();
    let limits = TaskLimits {
        max_task_output_bytes: 40,
        ..TaskLimits::default()
    };
    let (run, _) = run_under(
        &guest("", IDENTITY_MAP),
        UdfKind::Map,
        "identity",
        input.as_bytes(),
        limits,
    );
    let error = failure(run);
    assert!(
        matches!(error, TaskError::TaskOutput { limit: 40 }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "the task wrote more than its output limit of 40 B (limits.task_output)"
    );

    // The same task under the default limit writes all ten.
    let (run, _) = run_under(
        &guest("", IDENTITY_MAP),
        UdfKind::Map,
        "identity",
        input.as_bytes(),
        TaskLimits::default(),
    );
    assert_eq!(run.result.unwrap().records_out, 10);
}

#[test]
fn one_calls_output_is_bounded() {
    let limits = TaskLimits {
        max_batch_output_bytes: 1 << 20,
        ..TaskLimits::default()
    };
    let (run, _) = run_under(
        &guest("", BLOAT_FLAT_MAP),
        UdfKind::FlatMap,
        "bloat",
        b"x\n",
        limits,
    );
    let error = weft_task::error_chain(&failure(run));
    assert!(
        error.ends_with("over the limit of 1 MiB (limits.batch_output)"),
        "{error}"
    );
}

#[test]
fn the_log_limit_keeps_the_head_and_says_it_cut() {
    let limits = TaskLimits {
        max_log_bytes: 100,
        ..TaskLimits::default()
    };
    let (run, _) = run_under(
        &guest(WASI_IMPORTS, CHATTY_MAP),
        UdfKind::Map,
        "chatty",
        b"x\ny\n",
        limits,
    );
    assert_eq!(run.result.unwrap().records_out, 2);
    assert_eq!(run.output.stdout, vec![b'a'; 100]);
    assert!(run.output.truncated);
}

#[test]
fn every_attempt_reports_what_it_used() {
    // A guest spinning until its 300 ms call limit burns CPU; one asleep as long hardly any. (Only
    // ratios: on a loaded machine the spinner gets a fraction of a core.)
    let limits = TaskLimits {
        max_call_time: Duration::from_millis(300),
        ..TaskLimits::default()
    };
    let (run, took) = run_under(&guest("", SPIN_MAP), UdfKind::Map, "spin", b"x\n", limits);
    let usage = run.usage;
    assert!(run.result.is_err(), "failed attempts are measured too");
    assert!(usage.cpu_us <= usage.wall_us + 10_000, "{usage:?}");
    assert!(usage.wall_us >= 300_000, "{usage:?}");
    assert!(
        usage.wall_us <= took.as_micros() as u64,
        "{usage:?} {took:?}"
    );
    let (asleep, _) = run_under(
        &guest(WASI_IMPORTS, &sleep_map()),
        UdfKind::Map,
        "sleep",
        b"x\n",
        limits,
    );
    assert!(asleep.usage.wall_us >= 300_000, "{:?}", asleep.usage);
    assert!(
        asleep.usage.cpu_us * 2 < usage.cpu_us,
        "asleep {:?}, spinning {usage:?}",
        asleep.usage
    );
    // The fixture's memory is 2 pages; the bump allocator grows it for the input.
    assert!(usage.peak_memory_bytes >= 2 << 16, "{usage:?}");

    // A guest that grows 64 MiB more reports it.
    let (run, _) = run_under(
        &guest("", BLOAT_FLAT_MAP),
        UdfKind::FlatMap,
        "bloat",
        b"x\n",
        TaskLimits::default(),
    );
    assert!(run.result.is_ok());
    assert!(run.usage.peak_memory_bytes > 64 << 20, "{:?}", run.usage);
}
