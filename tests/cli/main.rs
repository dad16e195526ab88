//! Tests of the real `weft` binary: each runs it as a separate process against a fresh data
//! directory.

mod module;
mod run;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("WEFT_HOME");
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
