//! The sandbox: limits, capture of output, no ambient capabilities, and a hostile guest's broken
//! ABI promises turned into errors instead of host crashes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weft_host::{
    CallError, Engine, GuestInstance, GuestModule, INSTANCES_PER_TASK, InstanceAllocation,
    MAX_LIVE_INSTANCES, Records, SandboxLimits, ValidatedModule, ValidationLimits,
};
use weft_testkit::wat::{HUGE_ERROR_BYTES, HUGE_ERROR_MAP, IDENTITY_MAP, guest};

use crate::{instantiate, instantiate_with};

fn one() -> Records {
    Records::from_pairs([("k", "v")])
}

#[test]
fn an_endless_udf_hits_the_time_limit() {
    let bytes = guest(
        "",
        r#"(func (export "weft_map_spin") (param i32) (result i32) (loop br 0) i32.const 0)"#,
    );
    let limits = SandboxLimits {
        max_call_time: Duration::from_millis(200),
        ..Default::default()
    };
    let mut g = instantiate_with(&bytes, &limits);
    let started = std::time::Instant::now();
    let e = g.map("spin", &one()).unwrap_err();
    assert!(matches!(e, CallError::TimeLimit { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_interrupt_stops_a_call_in_the_middle_and_says_it_was_cancelled() {
    let bytes = guest(
        "",
        r#"(func (export "weft_map_spin") (param i32) (result i32) (loop br 0) i32.const 0)"#,
    );
    // The time limit is far away: only the interrupt can end the call.
    let mut g = instantiate(&bytes);
    let flag = Arc::new(AtomicBool::new(false));
    g.set_interrupt(flag.clone());
    let raise = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::Relaxed);
    });
    let e = g.map("spin", &one()).unwrap_err();
    raise.join().unwrap();
    assert!(matches!(e, CallError::Cancelled { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "UDF `spin` was interrupted: the task was cancelled"
    );
    assert!(!e.is_guest_fault(), "a kill is not the guest's fault");
}

/// A guest whose `hog` grows its memory by 1 GiB and traps if refused (as an allocator would
/// abort).
fn hog() -> Vec<u8> {
    guest(
        "",
        r#"(func (export "weft_map_hog") (param i32) (result i32)
             (if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then unreachable))
             i32.const 0)"#,
    )
}

/// Runs `hog` under a 64 MiB limit: the call must fail with the limit.
fn assert_the_hog_hits_its_limit(instantiate: impl FnOnce(&SandboxLimits) -> GuestInstance) {
    let limits = SandboxLimits {
        max_memory_bytes: 64 << 20,
        ..Default::default()
    };
    let e = instantiate(&limits).map("hog", &one()).unwrap_err();
    assert!(
        matches!(e, CallError::MemoryLimit { limit, .. } if limit == 64 << 20),
        "{e}"
    );
}

#[test]
fn growing_memory_past_the_limit_fails_the_call() {
    assert_the_hog_hits_its_limit(|limits| instantiate_with(&hog(), limits));
}

#[test]
fn a_batch_too_big_for_the_memory_limit_is_refused_cleanly() {
    let limits = SandboxLimits {
        max_memory_bytes: 1 << 20,
        ..Default::default()
    };
    let mut g = instantiate_with(&guest("", IDENTITY_MAP), &limits);
    let input = Records::from_pairs([("k", vec![1u8; 2 << 20])]);
    let e = g.map("identity", &input).unwrap_err();
    assert!(matches!(e, CallError::MemoryLimit { .. }), "{e}");
}

#[test]
fn broken_abi_promises_are_errors() {
    // Output offsets pointing past the end of memory.
    let bytes = guest(
        "",
        r#"(func (export "weft_flat_map_wild") (param $f i32) (result i32)
             (i32.store offset=24 (local.get $f) (i32.const 1))
             (i32.store offset=28 (local.get $f) (i32.const 0xfffffff0))
             (i32.const 0))
           (func (export "weft_map_short") (param $f i32) (result i32)
             (i32.const 0))
           (func (export "weft_map_status") (param $f i32) (result i32)
             (i32.const 7))
           (func (export "weft_map_badoffsets") (param $f i32) (result i32)
             ;; offsets [5, 2] at address 64: decreasing
             (i32.store (i32.const 64) (i32.const 5))
             (i32.store (i32.const 68) (i32.const 2))
             (i32.store offset=24 (local.get $f) (i32.const 1))
             (i32.store offset=28 (local.get $f) (i32.const 64))
             (i32.store offset=36 (local.get $f) (i32.const 64))
             (i32.const 0))"#,
    );
    let mut g = instantiate(&bytes);
    let e = g.flat_map("wild", &one()).unwrap_err();
    assert!(matches!(e, CallError::Abi { .. }), "{e}");
    assert!(e.to_string().contains("outside guest memory"), "{e}");
    let e = g.map("short", &one()).unwrap_err();
    assert!(e.to_string().contains("one record per input"), "{e}");
    let e = g.map("status", &one()).unwrap_err();
    assert!(e.to_string().contains("unknown status 7"), "{e}");
    let e = g.map("badoffsets", &one()).unwrap_err();
    assert!(e.to_string().contains("less than"), "{e}");
    // After all that the instance still answers correctly.
    assert!(matches!(g.map("short", &Records::empty()), Ok(r) if r.is_empty()));
}

#[test]
fn the_guest_has_no_ambient_capabilities_and_its_output_is_captured() {
    // Writes "hello\n" to stdout, then reports (in the value) the errno of fd_prestat_get(3) — there
    // are no preopened directories — and the number of environment variables (none).
    let bytes = guest(
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
           (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
           (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))"#,
        r#"(data (i32.const 200) "hello\n")
           (func (export "weft_map_probe") (param $f i32) (result i32)
             ;; iovec at 300: {ptr 200, len 6}; written count at 308
             (i32.store (i32.const 300) (i32.const 200))
             (i32.store (i32.const 304) (i32.const 6))
             (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))
             ;; value bytes at 400: [errno of prestat(3), environ count]
             (i32.store8 (i32.const 400) (call $prestat (i32.const 3) (i32.const 320)))
             (drop (call $env (i32.const 328) (i32.const 332)))
             (i32.store8 (i32.const 401) (i32.load (i32.const 328)))
             ;; one record: key = input key, value = the two bytes
             (i32.store (i32.const 500) (i32.const 0))
             (i32.store (i32.const 504) (i32.const 2))
             (i32.store offset=24 (local.get $f) (i32.const 1))
             (i32.store offset=28 (local.get $f) (i32.load offset=4 (local.get $f)))
             (i32.store offset=32 (local.get $f) (i32.load offset=8 (local.get $f)))
             (i32.store offset=36 (local.get $f) (i32.const 500))
             (i32.store offset=40 (local.get $f) (i32.const 400))
             (i32.const 0))"#,
    );
    let mut g = instantiate(&bytes);
    let out = g.map("probe", &one()).unwrap();
    let (_, value) = out.get(0);
    const EBADF: u8 = 8;
    assert_eq!(value, [EBADF, 0], "no preopened fd 3, no environment");
    assert_eq!(g.stdout(), b"hello\n");
    assert!(g.stderr().is_empty());
}

/// A map whose value is what lies at 0x18000 (in the initial memory) and at 0x20000 (in a page it
/// grows), read before it plants a secret at both.
const PEEK_AND_PLANT: &str = r#"
  (func (export "weft_map_peek") (param $f i32) (result i32)
    (if (i32.lt_u (memory.size) (i32.const 3))
      (then (drop (memory.grow (i32.const 1)))))
    (i32.store (i32.const 0x17000) (i32.const 0))
    (i32.store (i32.const 0x17004) (i32.const 8))
    (i32.store (i32.const 0x17010) (i32.load (i32.const 0x18000)))
    (i32.store (i32.const 0x17014) (i32.load (i32.const 0x20000)))
    (i32.store (i32.const 0x18000) (i32.const 0x5ec2e7))
    (i32.store (i32.const 0x20000) (i32.const 0x5ec2e7))
    (i32.store offset=24 (local.get $f) (i32.load offset=0 (local.get $f)))
    (i32.store offset=28 (local.get $f) (i32.load offset=4 (local.get $f)))
    (i32.store offset=32 (local.get $f) (i32.load offset=8 (local.get $f)))
    (i32.store offset=36 (local.get $f) (i32.const 0x17000))
    (i32.store offset=40 (local.get $f) (i32.const 0x17010))
    (i32.const 0))"#;

#[test]
fn a_new_instance_never_sees_the_memory_of_the_one_before_it() {
    // Instances reuse the memory of finished ones (the pooling allocator keeps it mapped and zeroes
    // it): what one task's guest left there must be gone for the next, whatever tenant it runs for.
    let module = GuestModule::new(crate::engine(), &guest("", PEEK_AND_PLANT)).unwrap();
    let secret = [0xe7, 0xc2, 0x5e, 0, 0xe7, 0xc2, 0x5e, 0];
    for round in 0..3 {
        let mut g = module.instantiate(&SandboxLimits::default()).unwrap();
        let first = g.map("peek", &one()).unwrap();
        assert_eq!(
            first.get(0).1,
            [0; 8],
            "round {round}: a fresh instance saw old memory"
        );
        // The plant happened: the same instance sees it.
        let second = g.map("peek", &one()).unwrap();
        assert_eq!(second.get(0).1, secret, "round {round}");
    }
}

#[test]
fn instances_past_the_pool_fail_with_a_clear_error_until_one_ends() {
    // An engine of its own: the pool is per engine, and the shared one serves other tests at once.
    let engine = Engine::new().unwrap();
    let bytes = guest("", IDENTITY_MAP);
    ValidatedModule::new(&engine, &bytes, &ValidationLimits::default()).unwrap();
    let module = GuestModule::new(&engine, &bytes).unwrap();
    let limits = SandboxLimits::default();
    let mut live: Vec<_> = (0..MAX_LIVE_INSTANCES)
        .map(|_| module.instantiate(&limits).unwrap())
        .collect();
    let e = module
        .instantiate(&limits)
        .expect_err("one instance past the pool");
    assert!(matches!(e, CallError::Instantiate(_)), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("limit of {MAX_LIVE_INSTANCES}")),
        "{e}"
    );
    live.pop();
    let mut g = module.instantiate(&limits).unwrap();
    assert_eq!(
        g.map("identity", &one()).unwrap().to_pairs(),
        one().to_pairs()
    );
}

#[test]
fn an_engine_for_many_tasks_has_a_pool_to_match() {
    assert_eq!(
        Engine::for_tasks(2).unwrap().allocation(),
        &InstanceAllocation::Pooled {
            max_live: MAX_LIVE_INSTANCES
        }
    );
    assert_eq!(
        Engine::for_tasks(300).unwrap().allocation(),
        &InstanceAllocation::Pooled {
            max_live: 300 * INSTANCES_PER_TASK
        }
    );
}

#[test]
fn without_room_for_the_pool_guests_run_on_demand_within_their_limits() {
    // A pool of 2^20 instances would reserve 4 PiB, more than a process may map: as in a process
    // under `ulimit -v`, the engine allocates instances one by one instead.
    let engine = Engine::with_max_live_instances(1 << 20).unwrap();
    let InstanceAllocation::OnDemand { reason } = engine.allocation() else {
        panic!("a pool of 2^20 instances: {:?}", engine.allocation());
    };
    assert!(reason.contains("pool"), "{reason}");

    let identity = guest("", IDENTITY_MAP);
    ValidatedModule::new(&engine, &identity, &ValidationLimits::default()).unwrap();
    let module = GuestModule::new(&engine, &identity).unwrap();
    let limits = SandboxLimits::default();
    // No pool, no bound on live instances: more than a default pool holds, each working.
    let mut live: Vec<_> = (0..MAX_LIVE_INSTANCES + 8)
        .map(|_| module.instantiate(&limits).unwrap())
        .collect();
    for g in live.iter_mut().step_by(37) {
        assert_eq!(
            g.map("identity", &one()).unwrap().to_pairs(),
            one().to_pairs()
        );
    }
    drop(live);

    // The memory limit holds without the pool too.
    let hog = GuestModule::new(&engine, &hog()).unwrap();
    assert_the_hog_hits_its_limit(|limits| hog.instantiate(limits).unwrap());
}

#[test]
fn a_huge_guest_error_message_is_cut() {
    let mut g = instantiate(&guest("", HUGE_ERROR_MAP));
    let input = Records::from_pairs([("k", "v")]);
    match g.map("shout", &input) {
        Err(CallError::Guest { message, .. }) => {
            let kept = &message[..weft_host::MAX_GUEST_MESSAGE_BYTES];
            assert!(
                kept.bytes().all(|b| b == b'x'),
                "the message's start is kept"
            );
            assert_eq!(
                &message[weft_host::MAX_GUEST_MESSAGE_BYTES..],
                format!(
                    "... (the guest's message is {HUGE_ERROR_BYTES} bytes; the first {} are kept)",
                    weft_host::MAX_GUEST_MESSAGE_BYTES
                )
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn proc_exit_in_a_call_is_named_before_the_backtrace() {
    let mut g = instantiate(&guest(
        r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
        r#"(func (export "weft_map_quit") (param $f i32) (result i32)
             (call $exit (i32.const 3))
             (i32.const 0))"#,
    ));
    let input = Records::from_pairs([("k", "v")]);
    match g.map("quit", &input) {
        Err(CallError::Trap { trap, .. }) => {
            assert!(
                trap.starts_with("the guest called proc_exit(3) in the middle of the call"),
                "{trap}"
            );
        }
        other => panic!("{other:?}"),
    }
}
