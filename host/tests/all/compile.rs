//! Compiling in a child process: what the parent makes of a child that takes too long, runs out
//! of memory, fails, or writes something that is not an artifact. (The real child, `weft
//! compile-module`, is run by the CLI's tests.)

use std::time::{Duration, Instant};

use weft_host::{Compiler, Gate, GuestModule, ProcessCompiler, ValidationError};
use weft_testkit::wat::{IDENTITY_MAP, guest};

use crate::engine;

fn child(script: &str, timeout: Duration) -> Compiler {
    Compiler::Process(ProcessCompiler {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout,
        max_memory: 64 << 20,
        gate: Gate::new(1),
    })
}

fn compile_error(compiler: &Compiler) -> ValidationError {
    match GuestModule::compile(engine(), &guest("", IDENTITY_MAP), compiler) {
        Ok(_) => panic!("compiled"),
        Err(e) => e,
    }
}

#[test]
fn a_child_past_its_deadline_is_killed() {
    let started = Instant::now();
    let e = compile_error(&child(
        "cat >/dev/null; sleep 30",
        Duration::from_millis(300),
    ));
    assert!(matches!(e, ValidationError::CompileLimit(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "compiling took longer than the limit of 300ms and was stopped"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_child_out_of_memory_names_the_limit() {
    let e = compile_error(&child(
        "cat >/dev/null; echo 'memory allocation of 4096 bytes failed' >&2; kill -ABRT $$",
        Duration::from_secs(30),
    ));
    assert!(matches!(e, ValidationError::CompileLimit(_)), "{e}");
    assert!(
        e.to_string()
            .starts_with("compiling needed more than the memory limit of 64 MiB"),
        "{e}"
    );
}

#[test]
fn a_failing_child_is_quoted() {
    let e = compile_error(&child(
        "cat >/dev/null; echo 'no such thing' >&2; exit 1",
        Duration::from_secs(30),
    ));
    assert_eq!(e.to_string(), "compiling the module failed: no such thing");
    // One that says nothing still says how it ended.
    let e = compile_error(&child("cat >/dev/null; exit 3", Duration::from_secs(30)));
    assert!(e.to_string().contains("exit status: 3"), "{e}");
}

#[test]
fn what_is_not_an_artifact_is_refused() {
    // Echoes the wasm back: no trailer, no digest.
    let e = compile_error(&child("cat", Duration::from_secs(30)));
    assert!(e.to_string().contains("no Weft artifact trailer"), "{e}");
}

#[test]
fn a_missing_program_is_named() {
    let compiler = Compiler::Process(ProcessCompiler {
        program: "/nonexistent/weft".into(),
        args: Vec::new(),
        timeout: Duration::from_secs(5),
        max_memory: 1 << 30,
        gate: Gate::new(1),
    });
    let e = compile_error(&compiler);
    assert!(
        e.to_string()
            .contains("cannot start the compiler process /nonexistent/weft"),
        "{e}"
    );
}

#[test]
fn compiles_wait_their_turn_at_the_gate() {
    // One place: two compiles of 300 ms each take 600 ms or more, one after the other.
    let compiler = child("cat >/dev/null; sleep 0.3; exit 1", Duration::from_secs(30));
    let started = Instant::now();
    let both: Vec<_> = (0..2)
        .map(|_| {
            let compiler = compiler.clone();
            std::thread::spawn(move || compile_error(&compiler))
        })
        .collect();
    for handle in both {
        handle.join().unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_capped_compiler_passes_the_lower_limits_to_its_child() {
    // `sh -c SCRIPT --memory BYTES`: the shell sees `--memory` as $0 and the bytes as $1.
    let compiler = child(
        "cat >/dev/null; echo \"$0 $1\" >&2; exit 1",
        Duration::from_secs(30),
    );
    let e = compile_error(&compiler.capped(None, Some(1 << 20)));
    assert_eq!(
        e.to_string(),
        "compiling the module failed: --memory 1048576"
    );
    // A ceiling above the compiler's own changes nothing; a lower deadline is kept.
    let e = compile_error(&compiler.capped(Some(Duration::from_secs(3600)), Some(1 << 40)));
    assert_eq!(
        e.to_string(),
        "compiling the module failed: --memory 67108864"
    );
    let slow = child("cat >/dev/null; sleep 30", Duration::from_secs(30))
        .capped(Some(Duration::from_millis(200)), None);
    let e = compile_error(&slow);
    assert_eq!(
        e.to_string(),
        "compiling took longer than the limit of 200ms and was stopped"
    );
}
