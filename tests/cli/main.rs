//! Tests of the real `weft` binary: each runs it as separate processes against fresh data
//! directories — one per test in local mode, a scheduler and workers per test in cluster mode —
//! and checks the answers against references computed here.

mod chaos;
mod cluster;
mod csv;
mod fair;
mod hostile;
mod local;
mod module;
mod recovery;
mod restart;
mod run;
mod tenants;
mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use weft_testkit::output::{assert_same_map, counts_of, part_files, read_output};
pub use weft_testkit::reference::{max_volumes, word_counts};

/// A fresh data directory and a way to run `weft` against it.
#[derive(Debug)]
pub struct Weft {
    home: tempfile::TempDir,
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

    /// Runs `weft ARGS` and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command().args(args).output().unwrap())
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
