//! The example matrix (`examples/README.md`): every scenario written in every language with an SDK,
//! each module built from source by `weft-examples`' build script (through `weft-toolchain`, as
//! `weft udf build` builds), run through `weft run` over the scenario's sample, must write exactly
//! the scenario's `expected.txt` (computed by a script outside Weft); and one job mixing three
//! languages gives the exact answer embedded and on a cluster of `weft` processes.

use std::path::{Path, PathBuf};

use crate::Weft;
use crate::cluster::Cluster;

/// `examples/` of this repository.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The lines of every part file in `dir`, sorted bytewise: what `expected.txt` holds.
fn sorted_output(dir: &Path) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for part in crate::part_files(dir) {
        let bytes = std::fs::read(dir.join(&part)).unwrap();
        lines.extend(bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    lines.sort();
    lines
}

fn expected(scenario: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(examples().join(scenario).join("expected.txt")).unwrap();
    let lines: Vec<Vec<u8>> = bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    assert!(!lines.is_empty(), "{scenario}/expected.txt is empty");
    lines
}

/// The first difference between two sorted line lists, for a failure message.
fn first_difference(got: &[Vec<u8>], want: &[Vec<u8>]) -> String {
    let show = |line: Option<&Vec<u8>>| {
        line.map_or_else(
            || "(none)".to_owned(),
            |l| format!("{:?}", String::from_utf8_lossy(l)),
        )
    };
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "{} lines, {} expected; line {at}: got {}, expected {}",
        got.len(),
        want.len(),
        show(got.get(at)),
        show(want.get(at))
    )
}

#[test]
fn every_scenario_in_every_language_writes_the_expected_output() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for &(scenario, language, wasm) in weft_examples::MATRIX {
        let weft = Weft::new();
        weft.ok(&["module", "register", wasm, "--name", scenario]);
        let job = examples().join(scenario).join("job.toml");
        let sample = std::fs::read_dir(examples().join(scenario))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_stem().is_some_and(|s| s == "sample"))
            .unwrap_or_else(|| panic!("examples/{scenario} has no sample.*"));
        let out = weft.scratch("out");
        let run = weft.run(&[
            "run",
            job.to_str().unwrap(),
            "--input",
            sample.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--workers",
            "2",
            "--quiet",
        ]);
        ran += 1;
        if !run.0.status.success() {
            failures.push(format!(
                "{scenario}/{language}: weft run failed:\n{}",
                run.stderr()
            ));
            continue;
        }
        let (got, want) = (sorted_output(&out), expected(scenario));
        if got != want {
            failures.push(format!(
                "{scenario}/{language}: {}",
                first_difference(&got, &want)
            ));
        }
    }
    // Four scenarios, each in Rust, C, Zig and AssemblyScript: a language or scenario that
    // stopped being built would shrink the matrix, not fail it, without this.
    assert_eq!(ran, 16, "the matrix has {ran} entries");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Registers the word counts the mixed job names, each from its own language.
fn register_mixed(register: impl Fn(&str, &str)) {
    register("wordcount_c", weft_examples::WORDCOUNT_C);
    register("wordcount_as", weft_examples::WORDCOUNT_ASSEMBLYSCRIPT);
    register("wordcount_zig", weft_examples::WORDCOUNT_ZIG);
}

#[test]
fn a_job_of_c_assemblyscript_and_zig_steps_is_exact_embedded() {
    let weft = Weft::new();
    register_mixed(|name, wasm| {
        weft.ok(&["module", "register", wasm, "--name", name]);
    });
    let out = weft.scratch("out");
    let job = examples().join("mixed").join("job.toml");
    weft.ok(&[
        "run",
        job.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--workers",
        "2",
        "--quiet",
    ]);
    let (got, want) = (sorted_output(&out), expected("mixed"));
    assert!(got == want, "{}", first_difference(&got, &want));
}

#[test]
fn a_job_of_c_assemblyscript_and_zig_steps_is_exact_on_a_process_cluster() {
    let cluster = Cluster::start(2);
    register_mixed(|name, wasm| {
        cluster.register(name, wasm);
    });
    let sample = std::fs::read(examples().join("wordcount").join("sample.txt")).unwrap();
    cluster.write("words.txt", &sample);
    let job = examples().join("mixed").join("job.toml");
    let id = cluster.submit(&job, &["--input", "words.txt", "--output", "mixed-out"]);
    cluster.watch_to_success(&id);
    let (got, want) = (sorted_output(&cluster.path("mixed-out")), expected("mixed"));
    assert!(got == want, "{}", first_difference(&got, &want));
    // Every step ran its own language's module: the job's status names all three.
    let status = cluster.status(&id);
    let text = status.to_string();
    for name in ["wordcount_c", "wordcount_as", "wordcount_zig"] {
        assert!(text.contains(name), "{name} missing from {status:#}");
    }
}
