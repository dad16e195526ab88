//! `weft udf new/build/test`: a scaffold in every language builds with `weft udf build`, registers,
//! passes `weft udf test` and runs its sample job exactly; `udf test` shows a failing UDF's trap,
//! error and stderr and exits 1; bad arguments get clear errors.

use std::collections::HashMap;
use std::path::Path;

use crate::{Weft, counts_of, read_output, word_counts};

/// `key<TAB>value` lines into a map (a key seen twice is a failure).
fn pairs(stdout: &str) -> HashMap<Vec<u8>, Vec<u8>> {
    let mut map = HashMap::new();
    for line in stdout.lines() {
        let (k, v) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("not key<TAB>value: {line:?}"));
        assert!(
            map.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec())
                .is_none(),
            "{k:?} twice in {stdout}"
        );
    }
    map
}

fn scaffold_builds_registers_tests_and_runs(language: &str) {
    let weft = Weft::new();
    let dir = weft.scratch(&format!("hello-{language}"));
    let dir_arg = dir.to_str().unwrap();
    let created = weft.ok(&["udf", "new", "hello", "--lang", language, "--dir", dir_arg]);
    assert!(
        created.stdout().contains("udf.toml"),
        "{}",
        created.stdout()
    );

    let built = weft.ok(&["udf", "build", dir_arg]);
    let module = built.stdout().trim().to_owned();
    assert!(
        Path::new(&module).is_file() && module.ends_with("hello.wasm"),
        "{module:?}\n{}",
        built.stderr()
    );

    // Registration lists what it found.
    let registered = weft.ok(&["module", "register", &module, "--name", "hello"]);
    let listed = registered.stderr();
    assert!(
        listed.contains("2 UDFs") && listed.contains("flat_map") && listed.contains("words"),
        "{listed}"
    );
    assert!(
        listed.contains("reduce") && listed.contains("count"),
        "{listed}"
    );

    // The flat_map over the sample: one (word, 1) per word, as the reference splits them.
    let sample_path = dir.join("sample.txt");
    let sample = std::fs::read(&sample_path).unwrap();
    let tested = weft.ok(&[
        "udf",
        "test",
        &module,
        "words",
        "--input",
        sample_path.to_str().unwrap(),
    ]);
    let stdout = tested.stdout();
    let words: Vec<&str> = stdout
        .lines()
        .map(|l| l.strip_suffix("\t1").unwrap_or_else(|| panic!("{l:?}")))
        .collect();
    let reference: Vec<&str> = std::str::from_utf8(&sample)
        .unwrap()
        .split_ascii_whitespace()
        .collect();
    assert_eq!(words, reference);
    assert!(
        tested.stderr().contains("3 records in"),
        "{}",
        tested.stderr()
    );

    // The reduce over key<TAB>value lines, grouped by key.
    let kv = weft.scratch("counts.txt");
    std::fs::write(&kv, "fox\t2\nthe\t1\nfox\t40\nthe\t0\n").unwrap();
    let reduced = weft.ok(&[
        "udf",
        "test",
        &module,
        "count",
        "--input",
        kv.to_str().unwrap(),
    ]);
    assert_eq!(
        pairs(&reduced.stdout()),
        HashMap::from([
            (b"fox".to_vec(), b"42".to_vec()),
            (b"the".to_vec(), b"1".to_vec())
        ])
    );

    // And the sample job, through the registry.
    let out = weft.scratch("out");
    weft.ok(&[
        "run",
        dir.join("job.toml").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(counts_of(read_output(&out)), word_counts(&sample));
}

#[test]
fn a_rust_scaffold_builds_registers_tests_and_runs() {
    scaffold_builds_registers_tests_and_runs("rust");
}

#[test]
fn a_c_scaffold_builds_registers_tests_and_runs() {
    scaffold_builds_registers_tests_and_runs("c");
}

#[test]
fn a_zig_scaffold_builds_registers_tests_and_runs() {
    scaffold_builds_registers_tests_and_runs("zig");
}

#[test]
fn an_assemblyscript_scaffold_builds_registers_tests_and_runs() {
    scaffold_builds_registers_tests_and_runs("assemblyscript");
}

#[test]
fn udf_test_shows_a_trap_with_the_guests_stderr_and_exits_1() {
    let weft = Weft::new();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "calm\nboom\n").unwrap();
    let run = weft.run(&[
        "udf",
        "test",
        weft_examples::TEXTKIT_RUST,
        "panic_on_boom",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("trapped"), "{stderr}");
    assert!(stderr.contains("--- guest stderr ---"), "{stderr}");
    // The Rust panic message, as the guest wrote it to stderr.
    assert!(stderr.contains("boom panic"), "{stderr}");
    assert!(run.stdout().is_empty(), "{}", run.stdout());

    // A guest's own error (status 1) is shown too, with the same exit status.
    let run = weft.run(&[
        "udf",
        "test",
        weft_examples::TEXTKIT_RUST,
        "fail_on_boom",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(run.stderr().contains("boom"), "{}", run.stderr());
}

#[test]
fn udf_commands_name_what_is_wrong() {
    let weft = Weft::new();
    let run = weft.run(&["udf", "new", "x", "--lang", "cobol"]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("rust, c, zig and assemblyscript"),
        "{}",
        run.stderr()
    );

    let empty = weft.scratch("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = weft.run(&["udf", "build", empty.to_str().unwrap()]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr().contains("udf.toml"), "{}", run.stderr());

    let run = weft.run(&[
        "udf",
        "new",
        "9lives",
        "--lang",
        "c",
        "--dir",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("not a valid name"),
        "{}",
        run.stderr()
    );

    let input = weft.scratch("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    let run = weft.run(&[
        "udf",
        "test",
        weft_examples::WORDCOUNT_RUST,
        "no_such",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("no UDF named `no_such`") && run.stderr().contains("split_words"),
        "{}",
        run.stderr()
    );
}

/// `udf test` runs a UDF under a worker's default task limits (README, guest-sdk/README.md): 1 GiB
/// of memory and 512 KiB of wasm stack stop a hostile guest with the limit named, and exit 1.
#[test]
fn udf_test_enforces_the_default_task_limits() {
    use crate::hostile::{HUGE_GROW, RECURSE};
    let weft = Weft::new();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "a\n").unwrap();
    for (name, body, says) in [
        ("grow", HUGE_GROW, "exceeded the memory limit of 1 GiB"),
        ("recurse", RECURSE, "exceeded the stack limit of 512 KiB"),
    ] {
        let wasm = weft.scratch(&format!("{name}.wasm"));
        std::fs::write(&wasm, weft_testkit::wat::guest("", body)).unwrap();
        let run = weft.run(&[
            "udf",
            "test",
            wasm.to_str().unwrap(),
            name,
            "--input",
            input.to_str().unwrap(),
        ]);
        assert_eq!(run.code(), Some(1), "{name}: {}", run.stderr());
        assert!(run.stderr().contains(says), "{name}: {}", run.stderr());
    }
}
