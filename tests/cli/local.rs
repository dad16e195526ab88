//! One local data directory used by several `weft` processes at once, and runs that end badly:
//! two `weft run`s side by side, `job list` and `module list` while a job runs, SIGINT and SIGKILL
//! of a run mid-job, and a closed stdout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use weft_testkit::process::Process;

use crate::run::{example_job, weft_with_examples};
use crate::{Weft, assert_same_counts, counts_of, path, read_output, word_counts};

/// Rounds of `textkit/burn` that keep a task busy for an hour: it ends only when killed.
const HOUR_OF_ROUNDS: u64 = 1_000_000_000_000;
/// How long a run may take to start its job and its tasks.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A job file mapping every line of `input` through `textkit/burn`, one map task per line.
fn burn_job(weft: &Weft, name: &str, rounds: u64, lines: usize, out: &Path) -> PathBuf {
    let line = format!("{rounds:013}\n");
    let input = weft.scratch(&format!("{name}.txt"));
    std::fs::write(&input, line.repeat(lines)).unwrap();
    let job = weft.scratch(&format!("{name}.toml"));
    std::fs::write(
        &job,
        format!(
            "name = \"{name}\"\n[input]\npath = {:?}\nsplit_size = {}\n[[step]]\n\
             map = \"textkit/burn\"\n[output]\npath = {:?}\n",
            path(&input),
            line.len(),
            path(out)
        ),
    )
    .unwrap();
    job
}

/// `weft run JOB --workers 1` in the background.
fn spawn_run(weft: &Weft, job: &Path, log: &str) -> Process {
    let mut command = weft.command();
    command.args(["run", path(job), "--workers", "1"]);
    Process::spawn(log, command, &weft.scratch(log)).unwrap()
}

/// Waits until `job list` (from another process) shows a job called `name` with a task running;
/// returns its id.
fn wait_running(weft: &Weft, run: &mut Process, name: &str) -> String {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let list = weft.ok(&["--json", "job", "list"]).json();
        let running = list.as_array().unwrap().iter().find(|j| {
            j["name"] == name
                && j["state"] == "running"
                && j["stages"][0]["tasks_running"].as_u64() > Some(0)
        });
        if let Some(job) = running {
            return job["job_id"].as_str().unwrap().to_owned();
        }
        assert!(
            run.try_wait().is_none(),
            "the run ended first: {}",
            run.log()
        );
        assert!(Instant::now() < deadline, "never running: {list:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Names beside `output` that start with `.`: staging or replaced directories.
fn hidden_siblings(output: &Path) -> Vec<String> {
    std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}

/// The run directories under the data directory's `work/`.
fn run_dirs(weft: &Weft) -> Vec<String> {
    std::fs::read_dir(weft.data_dir().join("work"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_runs_share_a_data_directory_and_other_commands_work_meanwhile() {
    let weft = weft_with_examples();
    // A run of a few seconds: three records of ~10^9 rounds each, on one worker.
    let slow_out = weft.scratch("slow-out");
    let slow = burn_job(&weft, "slow", 1_000_000_000, 3, &slow_out);
    let mut first = spawn_run(&weft, &slow, "slow.log");
    let first_id = wait_running(&weft, &mut first, "slow");

    // While it runs: the registry, the job's status, and a second run.
    let modules = weft.ok(&["--json", "module", "list"]).json();
    assert_eq!(modules.as_array().unwrap().len(), 3, "{modules:#}");
    let status = weft.ok(&["--json", "job", "status", &first_id]).json();
    assert_eq!(status["state"], "running", "{status:#}");
    let corpus = b"the quick brown fox\njumps over the lazy dog\nthe end\n".repeat(50);
    let input = weft.scratch("words.txt");
    std::fs::write(&input, &corpus).unwrap();
    let out = weft.scratch("words-out");
    let second = weft.ok(&[
        "run",
        &example_job("wordcount"),
        "--input",
        path(&input),
        "--output",
        path(&out),
        "--workers",
        "1",
    ]);
    assert!(
        second.stdout().contains("ran locally"),
        "{}",
        second.stdout()
    );
    assert_same_counts(&counts_of(read_output(&out)), &word_counts(&corpus));
    // Off a terminal, progress is plain lines on stderr, ending with each stage done...
    let stderr = second.stderr();
    assert!(
        stderr.contains("stage 0: 1/1 tasks done, 0 running; 150 records"),
        "{stderr}"
    );
    assert!(stderr.contains("stage 1: 4/4 tasks done"), "{stderr}");
    // ...and none with --quiet.
    let quiet = weft.ok(&[
        "run",
        &example_job("wordcount"),
        "--input",
        path(&input),
        "--output",
        path(&weft.scratch("quiet-out")),
        "--quiet",
    ]);
    assert!(!quiet.stderr().contains("stage 0"), "{}", quiet.stderr());

    // `job watch` follows a job another process runs, to its end.
    let watch = weft.ok(&["job", "watch", &first_id]).stdout();
    assert!(watch.contains("stage 0: "), "{watch}");
    assert!(
        watch
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("job {first_id} succeeded in "))),
        "{watch}"
    );
    let exit = first.wait_until(Instant::now() + Duration::from_secs(300));
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", first.log());
    assert!(
        first.log().contains("stage 0: 3/3 tasks done"),
        "{}",
        first.log()
    );
    // burn passes each record through: the output is the input's lines.
    let mut lines: Vec<Vec<u8>> = read_output(&slow_out).into_values().collect();
    lines.sort();
    assert_eq!(lines, vec![b"0001000000000".to_vec(); 3]);

    // Both jobs are recorded, with sequential numbers.
    let list = weft.ok(&["--json", "job", "list"]).json();
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["slow-1", "wordcount-2", "wordcount-3"], "{list:#}");
    assert!(run_dirs(&weft).is_empty(), "{:?}", run_dirs(&weft));
    assert!(!weft.data_dir().join("runs").exists());
}

#[test]
fn sigint_and_sigkill_of_a_run_leave_nothing_after_the_next_command() {
    let weft = weft_with_examples();
    let out = weft.scratch("results/out");
    let job = burn_job(&weft, "burn", HOUR_OF_ROUNDS, 2, &out);

    // SIGINT: the run cancels its job and cleans up before it exits.
    let mut run = spawn_run(&weft, &job, "sigint.log");
    let id = wait_running(&weft, &mut run, "burn");
    assert!(!hidden_siblings(&out).is_empty(), "a staging directory");
    run.signal("INT");
    let exit = run.wait_until(Instant::now() + Duration::from_secs(60));
    assert_eq!(exit.and_then(|s| s.code()), Some(1), "{}", run.log());
    assert!(
        run.log().contains("cancelled by the user (SIGINT)"),
        "{}",
        run.log()
    );
    assert!(
        hidden_siblings(&out).is_empty(),
        "{:?}",
        hidden_siblings(&out)
    );
    assert!(!out.exists());
    assert!(run_dirs(&weft).is_empty(), "{:?}", run_dirs(&weft));
    let status = weft.ok(&["--json", "job", "status", &id]).json();
    assert_eq!(status["state"], "cancelled", "{status:#}");
    assert_eq!(status["error"], "cancelled by the user (SIGINT)");

    // `job cancel` from another command interrupts the process running the job.
    let mut run = spawn_run(&weft, &job, "cancel.log");
    let id = wait_running(&weft, &mut run, "burn");
    let cancelled = weft.ok(&["--json", "job", "cancel", &id]).json();
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    let exit = run.wait_until(Instant::now() + Duration::from_secs(60));
    assert_eq!(exit.and_then(|s| s.code()), Some(1), "{}", run.log());
    assert!(
        hidden_siblings(&out).is_empty(),
        "{:?}",
        hidden_siblings(&out)
    );

    // SIGKILL: nothing can clean up then, so the next command does.
    let mut run = spawn_run(&weft, &job, "sigkill.log");
    let id = wait_running(&weft, &mut run, "burn");
    run.kill();
    assert!(
        !hidden_siblings(&out).is_empty(),
        "the killed run left its staging"
    );
    assert!(!run_dirs(&weft).is_empty(), "and its work directory");
    let status = weft.ok(&["--json", "job", "status", &id]).json();
    assert_eq!(status["state"], "failed", "{status:#}");
    let error = status["error"].as_str().unwrap();
    assert!(
        error.starts_with("interrupted: the weft process"),
        "{error}"
    );
    assert!(
        hidden_siblings(&out).is_empty(),
        "{:?}",
        hidden_siblings(&out)
    );
    assert!(run_dirs(&weft).is_empty(), "{:?}", run_dirs(&weft));
    assert!(!weft.data_dir().join("runs").exists());
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let weft = weft_with_examples();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "a b\n").unwrap();
    // (Also: `weft run` runs here even with --scheduler, and says so; paths print normalised.)
    let run = weft.ok(&[
        "--scheduler",
        "127.0.0.1:1",
        "run",
        &example_job("wordcount"),
        "--input",
        path(&input),
        "--output",
        &format!("{}/sub/../out", path(&weft.scratch(""))),
    ]);
    assert!(
        run.stderr()
            .contains("weft run runs the job in this process")
            && run
                .stdout()
                .contains(&format!("output: {} (", path(&weft.scratch("out")))),
        "{}\n{}",
        run.stdout(),
        run.stderr()
    );
    for args in [
        &["--json", "job", "list"][..],
        &["job", "list"],
        &["--json", "module", "list"],
        &["module", "list"],
        &["--help"],
    ] {
        // The reading end is closed before weft writes anything: every write fails with EPIPE.
        let mut child = weft
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn sizes_take_decimal_and_binary_units_everywhere() {
    let weft = weft_with_examples();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "a b\n").unwrap();
    for size in ["1MB", "64MiB", "1.5 KiB", "4096"] {
        let job = weft.scratch("sized.toml");
        std::fs::write(
            &job,
            format!(
                "name = \"sized\"\n[input]\npath = {:?}\nsplit_size = {size:?}\n[[step]]\n\
                 flat_map = \"wordcount/split_words\"\n[output]\npath = \"out\"\n",
                path(&input)
            ),
        )
        .unwrap();
        weft.ok(&["plan", path(&job)]);
    }
    // `--memory` parses before the worker looks for its scheduler.
    let worker = weft.run(&["worker", "--memory", "4GiB"]);
    assert!(
        worker.stderr().contains("--scheduler URL"),
        "{}",
        worker.stderr()
    );
    let bad = weft.run(&["worker", "--memory", "4 parsecs"]);
    assert_eq!(bad.code(), Some(2));
    assert!(bad.stderr().contains("is not a size"), "{}", bad.stderr());
}

#[test]
fn reading_commands_create_no_data_directory() {
    let weft = Weft::new();
    let job = weft.scratch("job.toml");
    std::fs::write(
        &job,
        "name = \"j\"\n[input]\npath = \"in.txt\"\n[[step]]\nmap = \"textkit/echo\"\n\
         [output]\npath = \"out\"\n",
    )
    .unwrap();
    std::fs::write(weft.scratch("in.txt"), "x\n").unwrap();
    let plan = weft.run(&["plan", path(&job)]);
    assert!(
        plan.stderr().contains("no module textkit"),
        "{}",
        plan.stderr()
    );
    weft.ok(&["module", "list"]);
    weft.ok(&["job", "list"]);
    assert!(
        weft.run(&["job", "status", "j-1"])
            .stderr()
            .contains("no job j-1")
    );
    assert!(weft.run(&["module", "show", "textkit"]).code() == Some(1));
    assert!(
        !weft.data_dir().exists(),
        "a read created the data directory"
    );
}

/// On a terminal (a pseudo-terminal from `script`), `weft run` draws a bar per stage.
#[test]
fn on_a_terminal_run_draws_progress_bars() {
    let weft = weft_with_examples();
    let input = weft.scratch("in.txt");
    std::fs::write(&input, "a b c\n".repeat(1000)).unwrap();
    let command = format!(
        "{} --data-dir {} run {} --input {} --output {}",
        env!("CARGO_BIN_EXE_weft"),
        path(&weft.data_dir()),
        example_job("wordcount"),
        path(&input),
        path(&weft.scratch("out"))
    );
    let typescript = weft.scratch("typescript");
    let status = std::process::Command::new("script")
        .args(["-qec", &command, path(&typescript)])
        .env_remove("WEFT_SCHEDULER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("script (util-linux) runs");
    let drawn = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(status.success(), "{drawn}");
    assert!(
        drawn.contains("stage 0 [") && drawn.contains("100%") && drawn.contains("left ~"),
        "{drawn}"
    );
}

#[test]
fn local_usage_sums_the_jobs_run_with_the_data_directory() {
    let weft = weft_with_examples();
    let input = weft.scratch("usage.txt");
    std::fs::write(&input, "a few words to count\n".repeat(50)).unwrap();
    for n in 0..2 {
        let out = weft.scratch(&format!("usage-out-{n}"));
        weft.ok(&[
            "run",
            &example_job("wordcount"),
            "--input",
            path(&input),
            "--output",
            path(&out),
        ]);
    }
    let usage = weft.ok(&["--json", "tenant", "usage"]).json();
    let rows = usage.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{usage:#}");
    assert_eq!(rows[0]["tenant"], "default");
    assert_eq!(rows[0]["jobs"], 2, "{usage:#}");
    assert!(rows[0]["usage"]["cpu_us"].as_u64() > Some(0), "{usage:#}");
    assert!(
        rows[0]["usage"]["attempts"].as_u64() >= Some(4),
        "two stages of two jobs: {usage:#}"
    );
    assert_eq!(rows[0]["records_in"], 100, "50 lines, twice: {usage:#}");

    // Each job's task attempts are listed by `job status --json`, and add up to the usage.
    let jobs = weft.ok(&["--json", "job", "list"]).json();
    let mut cpu_us = 0;
    let mut attempts = 0;
    for job in jobs.as_array().unwrap() {
        let id = job["job_id"].as_str().unwrap();
        let status = weft.ok(&["--json", "job", "status", id]).json();
        let tasks = status["tasks"].as_array().unwrap();
        let read: u64 = tasks
            .iter()
            .filter(|t| t["stage"] == 0)
            .map(|t| t["records_in"].as_u64().unwrap())
            .sum();
        assert_eq!(read, 50, "{status:#}");
        cpu_us += tasks
            .iter()
            .map(|t| t["cpu_us"].as_u64().unwrap())
            .sum::<u64>();
        attempts += tasks.len() as u64;
        let table = weft.ok(&["job", "status", id, "--tasks"]).stdout();
        assert!(
            table.contains("TASK") && table.contains("0.0") && table.contains("succeeded"),
            "{table}"
        );
    }
    assert_eq!(rows[0]["usage"]["cpu_us"].as_u64(), Some(cpu_us));
    assert_eq!(rows[0]["usage"]["attempts"].as_u64(), Some(attempts));
}
