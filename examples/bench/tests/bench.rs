//! The benchmark runner end to end, at a small scale: every scenario runs against the real `weft`
//! binary and the example guests built from source, and the table carries a row for each of the
//! eight targets. Nothing here is timed; the point is that `scripts/bench.sh` cannot rot unnoticed,
//! and that a wrong answer stops a run.
//!
//! The `weft` binary is the one `cargo test --workspace` builds beside this test's binary (the root
//! package's own integration tests need it). Run alone, build it first: `cargo build -p weft`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `weft` in this build's target directory (`target/debug/weft` beside `target/debug/deps/`).
fn weft_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_weft-bench"));
    let weft = bench.with_file_name(format!("weft{}", std::env::consts::EXE_SUFFIX));
    assert!(
        weft.is_file(),
        "no weft binary at {}: build it with `cargo build -p weft` (cargo test --workspace does)",
        weft.display()
    );
    weft
}

/// Runs `weft-bench` at a small scale on `work`, with the guests in `wasm_dir`, and never Spark.
fn bench(work: &Path, wasm_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft-bench"))
        .arg("--work")
        .arg(work)
        .arg("--weft")
        .arg(weft_binary())
        .arg("--wasm-dir")
        .arg(wasm_dir)
        .args(["--no-spark", "--threads", "2", "--runs", "1"])
        .args(args)
        .output()
        .unwrap()
}

/// The directory of the Rust example guests, built from source by `weft-examples`.
fn guests() -> PathBuf {
    Path::new(weft_examples::WORDCOUNT_RUST)
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A stand-in for the tuned native peer (`PROGRAM IN OUT`, `word<TAB>count` lines): awk, which
/// splits the corpus's single-spaced lines as every other count does. Its time means nothing.
fn awk_word_count(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("awk-wordcount");
    let awk =
        r#"{ for (i = 1; i <= NF; i++) n[$i]++ } END { for (w in n) printf "%s\t%d\n", w, n[w] }"#;
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec awk '{awk}' \"$1\" > \"$2\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn every_scenario_runs_checks_its_answers_and_reports_every_target() {
    let work = tempfile::tempdir().unwrap();
    let tuned = awk_word_count(work.path());
    let run = bench(
        work.path(),
        &guests(),
        &[
            "--size",
            "2MB",
            "--shuffle-size",
            "1MB",
            "--memory-budget",
            "2MiB",
            "--tuned-peer",
            tuned.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "weft-bench failed:\n{stderr}");

    // Every scenario measured something.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    for scenario in [
        "wordcount",
        "wasm-cost",
        "fixed",
        "shuffle",
        "memory",
        "heavy",
        "stocks",
        "languages",
    ] {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("| {scenario} |"))),
            "no {scenario} row in:\n{stdout}"
        );
    }
    // The targets table: 3 (against the tuned peer) and 1 (Spark not run, said so), 2, 4 three
    // times, 5, 6, 7 and 8 (Spark not run).
    let targets: Vec<u8> = rows
        .iter()
        .filter_map(|r| r.trim_start_matches("| ").split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        targets,
        [3, 1, 2, 4, 4, 4, 5, 6, 7, 8],
        "targets in:\n{stdout}"
    );
    assert_eq!(
        stdout
            .matches("not run: the Spark peer is not set up")
            .count(),
        3,
        "{stdout}"
    );
    // The tuned peer ran, its counts were checked, and Weft's time is stated against it.
    assert!(
        rows.iter().any(|r| r.contains("| tuned native peer")),
        "{stdout}"
    );
    let tuned_target = rows
        .iter()
        .find(|r| r.starts_with("| 3 |"))
        .unwrap_or_else(|| panic!("no target 3 in:\n{stdout}"));
    assert!(
        tuned_target.contains("Weft / tuned native") && tuned_target.contains("× | ≤ 1.5× |"),
        "{tuned_target}"
    );
    // The shuffle target is the uncompressed fetch rate against 1 GB/s, the raw copy beside it.
    let shuffle = rows.iter().find(|r| r.starts_with("| 5 |")).unwrap();
    assert!(
        shuffle.contains("of the raw copy") && shuffle.contains("≥ 1000 MB/s"),
        "{shuffle}"
    );
    // The shuffle-heavy job counted distinct words by the size (10 million per GB: 20 000 here),
    // and the stocks job found every symbol of the generator.
    let heavy = rows.iter().find(|r| r.starts_with("| heavy |")).unwrap();
    assert!(heavy.contains(", 20000 distinct;"), "{heavy}");
    let stocks = rows.iter().find(|r| r.starts_with("| stocks |")).unwrap();
    assert!(stocks.contains("40000 rows, 500 symbols"), "{stocks}");
    // The word count ran with the guest of every language, each checked against the reference.
    for language in ["rust", "c", "zig", "assemblyscript"] {
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("weft run, {language} guest")))
            .unwrap_or_else(|| panic!("no {language} guest row in:\n{stdout}"));
        assert!(row.contains("× the tuned native"), "{row}");
    }
    // The bounded-memory scenario ran at the budget it was given, on input over 4× of it.
    let memory = rows.iter().find(|r| r.starts_with("| memory |")).unwrap();
    assert!(memory.contains("budget 2 MiB (1 slot)"), "{memory}");
    let times: f64 = memory
        .split("MiB (1 slot); ")
        .nth(1)
        .and_then(|rest| rest.split('×').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no input/budget ratio in {memory}"));
    assert!(times >= 4.0, "{memory}");
    // Inputs went where they were asked to, named by their sizes.
    let data = work.path().join("data");
    for name in [
        "words_2MB.txt",
        "shuffle_words_1MB.txt",
        "heavy_words_2MB.txt",
        "stocks_2MB.csv",
    ] {
        assert!(data.join(name).is_file(), "no {name} in {}", data.display());
    }
}

/// A word count whose `split_words` emits every word with the count 2, not 1: a valid module
/// giving a wrong answer.
fn miscounting_wordcount() -> Vec<u8> {
    let source = include_str!("../../wordcount/wat/wordcount.wat");
    // The values of `split_words` are all "1", filled in with one `memory.fill` of the byte '1'.
    let fill = "(i32.const 0x31)";
    assert_eq!(source.matches(fill).count(), 1, "the WAT guest changed");
    wat::parse_str(source.replace(fill, "(i32.const 0x32)")).unwrap()
}

#[test]
fn a_wrong_answer_stops_the_run_and_says_whose_it_was() {
    let work = tempfile::tempdir().unwrap();
    let wasm = work.path().join("guests");
    std::fs::create_dir_all(&wasm).unwrap();
    std::fs::write(
        wasm.join("weft_example_wordcount.wasm"),
        miscounting_wordcount(),
    )
    .unwrap();
    for (module, name) in [
        (weft_examples::TEXTKIT_RUST, "weft_example_textkit.wasm"),
        (weft_examples::STOCKS_RUST, "weft_example_stocks.wasm"),
    ] {
        std::fs::copy(module, wasm.join(name)).unwrap();
    }

    let run = bench(
        work.path(),
        &wasm,
        &["--size", "200KB", "--only", "wordcount"],
    );
    let stderr = text(&run.stderr);
    assert!(!run.status.success(), "a miscounting job passed:\n{stderr}");
    assert!(stderr.contains("weft: wrong word counts"), "{stderr}");
    // Every count is doubled, and the message shows the first few: `"word": expected n, got Some(2n)`.
    let shown: Vec<(u64, u64)> = stderr
        .split("\": expected ")
        .skip(1)
        .map(|rest| {
            let pair = rest.split_once(", got Some(").and_then(|(expected, rest)| {
                let got = rest.split_once(')')?.0;
                Some((expected.parse().ok()?, got.parse().ok()?))
            });
            pair.unwrap_or_else(|| panic!("cannot read the counts shown in:\n{stderr}"))
        })
        .collect();
    assert!(!shown.is_empty(), "{stderr}");
    assert!(shown.iter().all(|&(n, got)| got == 2 * n), "{stderr}");
    assert!(
        !text(&run.stdout).contains("| # | target |"),
        "a table was printed"
    );
}

#[test]
fn a_budget_the_memory_scenario_cannot_honour_is_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    for budget in ["512KiB", "2GiB"] {
        let run = bench(work.path(), &guests(), &["--memory-budget", budget]);
        let stderr = text(&run.stderr);
        assert!(!run.status.success(), "{budget} was taken:\n{stderr}");
        assert!(
            stderr.contains("--memory-budget") && stderr.contains("1 MiB to 1 GiB"),
            "{stderr}"
        );
        // Refused before anything was generated or run.
        assert!(!work.path().join("data").exists());
    }
}
