//! Tests of the real `weft` binary: each runs it as separate processes against fresh data
//! directories — one per test in local mode, a scheduler and workers per test in cluster mode —
//! and checks the answers against references computed here.

mod chaos;
mod cluster;
mod csv;
mod fair;
mod hostile;
mod local;
mod matrix;
mod module;
mod recovery;
mod restart;
mod run;
mod tenants;
mod tls;
mod udf;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use weft_testkit::output::{assert_same_map, counts_of, part_files, read_output};
pub use weft_testkit::reference::{max_volumes, word_counts};

/// A fresh data directory and a way to run `weft` against it.
#[derive(Debug)]
pub struct Weft {
    home: tempfile::TempDir,
    /// Where [`Weft::run`] keeps what commands print (apart from `home`, which tests list), and
    /// the number of the next.
    outputs: tempfile::TempDir,
    runs: AtomicUsize,
}

impl Default for Weft {
    fn default() -> Self {
        Weft::new()
    }
}

impl Weft {
    pub fn new() -> Weft {
        Weft {
            home: tempfile::tempdir().unwrap(),
            outputs: tempfile::tempdir().unwrap(),
            runs: AtomicUsize::new(0),
        }
    }

    /// The data directory (`--data-dir`). It does not exist until a command writes to it.
    pub fn data_dir(&self) -> PathBuf {
        self.home.path().join("data")
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub fn command(&self) -> Command {
        self.with_data_dir(Command::new(env!("CARGO_BIN_EXE_weft")))
    }

    /// As [`Weft::command`], with the process's address space capped at `kib` (`ulimit -v`).
    pub fn command_under_address_space(&self, kib: u64) -> Command {
        self.with_data_dir(under_address_space(kib, env!("CARGO_BIN_EXE_weft")))
    }

    fn with_data_dir(&self, mut cmd: Command) -> Command {
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("WEFT_HOME")
            .env_remove("WEFT_SCHEDULER");
        cmd
    }

    /// Runs `weft ARGS` and returns its output, whatever the exit status; panics, with what it
    /// printed, if it has not ended within [`RUN_DEADLINE`] (a hung `weft` fails its test rather
    /// than holding the whole test binary).
    pub fn run(&self, args: &[&str]) -> Run {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let mut command = self.command();
        command.args(args);
        run_client(
            command,
            &self.outputs.path().join(n.to_string()),
            RUN_DEADLINE,
        )
    }

    /// Runs `weft ARGS` and expects success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert!(
            run.0.status.success(),
            "weft {args:?} failed:\n{}",
            run.stderr()
        );
        run
    }
}

/// The longest a `weft` command of a test may run.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// Runs a client `command` to its end, its stdout and stderr into `{base}.stdout` and
/// `{base}.stderr` (files rather than pipes, so that waiting can time out without a reader thread
/// per stream), and returns what it printed; kills it and panics, with its output, past `deadline`.
pub(crate) fn run_client(mut command: Command, base: &Path, deadline: Duration) -> Run {
    let [stdout_path, stderr_path] = ["stdout", "stderr"].map(|ext| base.with_extension(ext));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {deadline:?}; it printed:\n{}\n{}",
                String::from_utf8_lossy(&std::fs::read(&stdout_path).unwrap_or_default()),
                String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap_or_default()),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run(Output {
        status,
        stdout: std::fs::read(&stdout_path).unwrap(),
        stderr: std::fs::read(&stderr_path).unwrap(),
    })
}

/// Address space, in KiB, too small for an engine's instance pool (it reserves 4 GiB per instance)
/// and plenty for a `weft` process and its guests' memories mapped one by one.
pub const NO_ROOM_FOR_THE_POOL_KIB: u64 = 4 << 20;

/// `program` started by bash under `ulimit -v KIB`. bash then becomes the program (`exec`), so the
/// child's pid is the program's and signals reach it.
pub fn under_address_space(kib: u64, program: &str) -> Command {
    let mut bash = Command::new("bash");
    bash.args(["-c", &format!("ulimit -v {kib} && exec \"$@\""), "bash"])
        .arg(program);
    bash
}

#[derive(Debug)]
pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }

    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `weft_testkit::output::assert_same_map` for counts, as most tests compare them.
pub fn assert_same_counts(got: &HashMap<Vec<u8>, u64>, want: &HashMap<Vec<u8>, u64>) {
    assert_same_map(got, want, "counts");
}
