//! The limits a guest cannot get around: a sleep in a host function counts against its time and
//! is cut short by a cancel, a task's deadline stops a call in the middle, one call's output is
//! bounded before it is copied, a chatty guest's writes succeed while only the head is kept, and
//! socket calls fail quietly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weft_host::{CallError, Records, SandboxLimits};
use weft_testkit::wat::{
    BLOAT_BYTES, BLOAT_FLAT_MAP, CHATTY_BYTES, CHATTY_MAP, IDENTITY_MAP, NAP_MAP, SOCKET_FLOOD_MAP,
    SPIN_MAP, WASI_IMPORTS, guest, sleep_map,
};

use crate::{instantiate, instantiate_with};

fn one() -> Records {
    Records::from_pairs([("k", "v")])
}

#[test]
fn a_guest_asleep_in_poll_oneoff_is_stopped_at_its_call_time_limit() {
    let limits = SandboxLimits {
        max_call_time: Duration::from_millis(300),
        ..Default::default()
    };
    let mut g = instantiate_with(&guest(WASI_IMPORTS, &sleep_map()), &limits);
    let started = Instant::now();
    let e = g.map("sleep", &one()).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, CallError::TimeLimit { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "UDF `sleep` exceeded the time limit of 300ms per call (limits.call_time)"
    );
    assert!(e.is_guest_fault());
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );
}

#[test]
fn a_cancel_wakes_a_sleeping_guest() {
    let mut g = instantiate(&guest(WASI_IMPORTS, &sleep_map()));
    let flag = Arc::new(AtomicBool::new(false));
    g.set_interrupt(flag.clone());
    let raise = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let e = g.map("sleep", &one()).unwrap_err();
    raise.join().unwrap();
    assert!(matches!(e, CallError::Cancelled { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_short_sleep_returns_its_clock_event() {
    let mut g = instantiate(&guest(WASI_IMPORTS, NAP_MAP));
    let started = Instant::now();
    let out = g.map("nap", &one()).unwrap();
    assert_eq!(out, one());
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[test]
fn the_task_deadline_stops_a_call_in_the_middle() {
    for (name, bytes) in [
        ("spin", guest("", SPIN_MAP)),
        ("sleep", guest(WASI_IMPORTS, &sleep_map())),
    ] {
        let mut g = instantiate(&bytes);
        let started = Instant::now();
        g.set_task_deadline(started + Duration::from_millis(200), Duration::from_secs(7));
        let e = g.map(name, &one()).unwrap_err();
        assert!(matches!(e, CallError::TaskTimeLimit { .. }), "{e}");
        assert_eq!(
            e.reason(),
            "was stopped: the task exceeded its time limit of 7s (limits.task_time)"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        // Every later call fails at once: the task's time is spent.
        let again = g.map(name, &one()).unwrap_err();
        assert!(matches!(again, CallError::TaskTimeLimit { .. }), "{again}");
    }
}

#[test]
fn one_calls_output_is_bounded_before_it_is_copied() {
    let limits = SandboxLimits {
        max_batch_output_bytes: 1 << 20,
        ..Default::default()
    };
    let mut g = instantiate_with(&guest("", BLOAT_FLAT_MAP), &limits);
    let e = g.flat_map("bloat", &one()).unwrap_err();
    assert!(matches!(e, CallError::OutputLimit { .. }), "{e}");
    assert_eq!(
        e.reason(),
        format!(
            "returned {} B from one call, over the limit of 1 MiB (limits.batch_output)",
            BLOAT_BYTES + 16
        )
    );
    assert!(e.is_guest_fault());

    // Under the default limit the same output passes whole.
    let mut g = instantiate(&guest("", BLOAT_FLAT_MAP));
    let out = g.flat_map("bloat", &one()).unwrap();
    assert_eq!(out.values().value(0).len(), BLOAT_BYTES);

    // An identity map's output counts its offsets too: 2 records of 1 byte each are 2 + 12 + 12.
    let limits = SandboxLimits {
        max_batch_output_bytes: 25,
        ..Default::default()
    };
    let mut g = instantiate_with(&guest("", IDENTITY_MAP), &limits);
    let two = Records::from_pairs([("a", ""), ("b", "")]);
    let e = g.map("identity", &two).unwrap_err();
    assert!(matches!(e, CallError::OutputLimit { bytes: 26, .. }), "{e}");
}

#[test]
fn a_chatty_guest_keeps_writing_and_only_the_head_is_kept() {
    let limits = SandboxLimits {
        max_captured_output: 1000,
        ..Default::default()
    };
    let mut g = instantiate_with(&guest(WASI_IMPORTS, CHATTY_MAP), &limits);
    // CHATTY_BYTES (2 MiB) is past the 1 MiB wasmtime-wasi's own pipe holds before it fails writes.
    const { assert!(CHATTY_BYTES > 1 << 20) };
    // Every write succeeds (the guest traps otherwise), call after call.
    for _ in 0..3 {
        assert_eq!(g.map("chatty", &one()).unwrap(), one());
    }
    assert_eq!(g.stdout(), vec![b'a'; 1000]);
    assert!(g.output_truncated());
}

#[test]
fn socket_calls_fail_quietly() {
    let mut g = instantiate(&guest(WASI_IMPORTS, SOCKET_FLOOD_MAP));
    assert_eq!(g.map("sockets", &one()).unwrap(), one());
    assert!(!g.output_truncated());
}

#[test]
fn a_poll_of_a_million_subscriptions_is_refused_not_read() {
    // `poll_oneoff` over 1,000,000 subscriptions: EINVAL (28), or the guest traps.
    let bytes = guest(
        WASI_IMPORTS,
        &format!(
            r#"(func (export "weft_map_poll") (param $f i32) (result i32)
                 (if (i32.ne (call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const 1000000)
                                                (i32.const 600))
                             (i32.const 28))
                   (then unreachable))
                 {})"#,
            weft_testkit::wat::PASS_THROUGH
        ),
    );
    let mut g = instantiate(&bytes);
    assert_eq!(g.map("poll", &one()).unwrap(), one());
}
