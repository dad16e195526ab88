//! Tests of the real `weft` binary: each runs it as separate processes against fresh data
//! directories — one per test in local mode, a scheduler and workers per test in cluster mode —
//! and checks the answers against references computed here.

mod cluster;
mod module;
mod run;

use std::collections::HashMap;
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

/// The six ASCII whitespace bytes that separate words in the word-count example.
fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The reference word count: split on the separators, count.
pub fn word_counts(text: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut counts = HashMap::new();
    for word in text.split(|&b| is_separator(b)).filter(|w| !w.is_empty()) {
        *counts.entry(word.to_vec()).or_insert(0) += 1;
    }
    counts
}

/// Every `key<TAB>value` line of every part file of a text output, refusing a key seen twice (two
/// partitions must never hold the same key).
pub fn read_output(dir: &Path) -> HashMap<Vec<u8>, Vec<u8>> {
    assert!(
        dir.join("_SUCCESS").is_file(),
        "{} has no _SUCCESS",
        dir.display()
    );
    let mut records = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line.iter().position(|&b| b == b'\t').expect("a TAB");
            let (key, value) = (line[..tab].to_vec(), line[tab + 1..].to_vec());
            let shown = String::from_utf8_lossy(&key).into_owned();
            assert!(records.insert(key, value).is_none(), "key {shown:?} twice");
        }
    }
    records
}

/// An output of decimal counts as numbers.
pub fn counts_of(output: HashMap<Vec<u8>, Vec<u8>>) -> HashMap<Vec<u8>, u64> {
    output
        .into_iter()
        .map(|(k, v)| {
            let n = std::str::from_utf8(&v).unwrap().parse().unwrap();
            (k, n)
        })
        .collect()
}

/// Compares without printing two maps of thousands of entries: the first few differences.
pub fn assert_same_counts(got: &HashMap<Vec<u8>, u64>, want: &HashMap<Vec<u8>, u64>) {
    if got == want {
        return;
    }
    let mut diffs: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{:?}: want {v}, got {:?}",
                String::from_utf8_lossy(k),
                got.get(k)
            )
        })
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{:?}: not in the input", String::from_utf8_lossy(k))),
        )
        .collect();
    diffs.sort();
    diffs.truncate(10);
    panic!(
        "{} words wanted, {} got; first differences:\n{}",
        want.len(),
        got.len(),
        diffs.join("\n")
    );
}

/// The reference answer of the stocks example: the largest volume (7th column) of each symbol
/// (1st column) of a CSV with a header row.
pub fn max_volumes(csv: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut want: HashMap<Vec<u8>, u64> = HashMap::new();
    for line in std::str::from_utf8(csv).unwrap().lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let volume: u64 = fields[6].parse().unwrap();
        let max = want.entry(fields[0].as_bytes().to_vec()).or_insert(0);
        *max = (*max).max(volume);
    }
    want
}
