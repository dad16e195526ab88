//! `weft-bench`: Weft's benchmark runner. It generates its inputs deterministically, runs every
//! contender of a scenario in turn, round after round (so drift on a shared machine hits all of them
//! alike), checks every output against a reference, and prints medians and the ratios the speed
//! targets are stated in. See BENCHMARKS.md for how to run it and what it measured.
//!
//! ```sh
//! scripts/bench.sh                       # builds everything, runs every scenario on 1 GB
//! target/release/weft-bench --size 100MB --runs 3 --only wordcount,fixed
//! ```
//!
//! Scenarios: `wordcount` (Weft embedded vs Spark DataFrame and RDD vs the tuned native count and
//! the runner's own, targets 1 and 3), `wasm-cost` (the same job with the UDFs as WASM and compiled
//! natively, target 2), `fixed` (tiny job, warm task launch, compiled-module cache, target 4),
//! `shuffle` (cross-process fetch with and without compression against a raw copy, target 5),
//! `memory` (a reduce over several times a worker's memory budget, target 6), `heavy` (a word count
//! over 10 million distinct words per GB vs Spark DataFrame, target 7), `stocks` (the stocks
//! example's CSV job vs Spark DataFrame and RDD, target 8), `languages` (the word count with the
//! guest in each SDK's language: Rust, C, Zig, AssemblyScript).

mod embedded;
mod measure;
mod native;
mod procs;
mod report;
mod scenarios;
mod spark;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::report::Report;

/// Runs Weft's benchmarks and prints a table of medians and ratios.
#[derive(Debug, Parser)]
#[command(name = "weft-bench", version)]
struct Cli {
    /// Size of the word-count corpus (B, KB, MB, GB, KiB, MiB, GiB), and of the shuffle-heavy
    /// text and the stocks CSV.
    #[arg(long, default_value = "1GB", value_parser = weft_datagen::parse_size)]
    size: u64,

    /// Runs of each contender; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,

    /// Scenarios to run, comma-separated: wordcount, wasm-cost, fixed, shuffle, memory, heavy,
    /// stocks, languages. Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,

    /// Where inputs, outputs and Weft's data directory go (inputs are kept between runs).
    #[arg(long, default_value = "/tmp/weft-bench")]
    work: PathBuf,

    /// The `weft` binary. Default: `weft` next to this program.
    #[arg(long)]
    weft: Option<PathBuf>,

    /// Directory of the example guests (`weft_example_wordcount.wasm`, ...), built with
    /// `cargo build --profile guest --target wasm32-wasip1`.
    #[arg(long, default_value = "target/wasm32-wasip1/guest")]
    wasm_dir: PathBuf,

    /// The Spark peer (`../shared/peers/spark`); it is run when its venv exists (its `setup.sh`).
    #[arg(long, default_value = "../shared/peers/spark")]
    spark_peer: PathBuf,

    /// Do not run Spark even when the peer is set up.
    #[arg(long)]
    no_spark: bool,

    /// A native word-count program to run beside ours (e.g. `../shared/peers/native-wordcount`,
    /// built with cargo): `PROGRAM IN OUT` writing `word<TAB>count` lines.
    #[arg(long)]
    native_peer: Option<PathBuf>,

    /// The tuned native word count to measure Weft against, the machine's limit (`tuned` of
    /// `../shared/peers/native-wordcount`, on every core): `PROGRAM IN OUT` writing
    /// `word<TAB>count` lines. Without it, the Weft / tuned native target says it was not run.
    #[arg(long)]
    tuned_peer: Option<PathBuf>,

    /// Threads (and Weft workers) to use. Default: the number of CPUs.
    #[arg(long)]
    threads: Option<usize>,

    /// Text whose word records make the shuffle scenario's map output (about 2.2 bytes of Arrow
    /// IPC per byte of text).
    #[arg(long, default_value = "64MB", value_parser = weft_datagen::parse_size)]
    shuffle_size: u64,

    /// The bounded-memory scenario's worker budget (`weft worker --memory`); its input has
    /// distinct words in proportion (7 million for 64 MiB), so the reduce's input stays ≥ 4× the
    /// budget at any size.
    #[arg(long, default_value = "64MiB", value_parser = weft_datagen::parse_size)]
    memory_budget: u64,

    /// Internal: serve FILE once over loopback TCP (the raw copy of the shuffle scenario).
    #[arg(long, hide = true, value_name = "FILE")]
    serve_raw: Option<PathBuf>,
}

/// What every scenario needs.
#[derive(Debug)]
pub struct Env {
    pub runs: u32,
    pub size: u64,
    pub threads: usize,
    pub work: PathBuf,
    pub weft: PathBuf,
    pub wasm_dir: PathBuf,
    /// `WEFT_HOME` of the runs, with the examples registered.
    pub home: PathBuf,
    pub spark: Option<PathBuf>,
    pub native_peer: Option<PathBuf>,
    pub tuned_peer: Option<PathBuf>,
    /// Bytes of text behind the shuffle scenario's map output.
    pub shuffle_size: u64,
    /// The bounded-memory scenario's worker budget, in bytes.
    pub memory_budget: u64,
}

impl Env {
    /// A `weft` command with this benchmark's data directory.
    pub fn weft(&self) -> Command {
        let mut command = Command::new(&self.weft);
        command
            .env("WEFT_HOME", &self.home)
            .env_remove("WEFT_SCHEDULER");
        command
    }

    /// The guest module of an example.
    pub fn wasm(&self, example: &str) -> PathBuf {
        self.wasm_dir.join(format!("weft_example_{example}.wasm"))
    }
}

const SCENARIOS: [&str; 8] = [
    "wordcount",
    "wasm-cost",
    "fixed",
    "shuffle",
    "memory",
    "heavy",
    "stocks",
    "languages",
];

fn main() -> Result<()> {
    // Its shuffle fetch runs as a reduce task does, in a process with the worker's allocator.
    weft_worker::tune_malloc();
    let cli = Cli::parse();
    if let Some(file) = &cli.serve_raw {
        return scenarios::shuffle::serve_raw(file);
    }
    for name in &cli.only {
        if !SCENARIOS.contains(&name.as_str()) {
            bail!(
                "--only: unknown scenario {name:?} (known: {})",
                SCENARIOS.join(", ")
            );
        }
    }
    let wanted = |name: &str| cli.only.is_empty() || cli.only.iter().any(|n| n == name);
    let env = setup(&cli)?;
    let mut report = Report::new(&env);
    if wanted("wordcount") {
        scenarios::wordcount::run(&env, &mut report)?;
    }
    if wanted("wasm-cost") {
        scenarios::wasm_cost::run(&env, &mut report)?;
    }
    if wanted("fixed") {
        scenarios::fixed::run(&env, &mut report)?;
    }
    if wanted("shuffle") {
        scenarios::shuffle::run(&env, &mut report)?;
    }
    if wanted("memory") {
        scenarios::memory::run(&env, &mut report)?;
    }
    if wanted("heavy") {
        scenarios::heavy::run(&env, &mut report)?;
    }
    if wanted("stocks") {
        scenarios::stocks::run(&env, &mut report)?;
    }
    if wanted("languages") {
        scenarios::languages::run(&env, &mut report)?;
    }
    report.print();
    Ok(())
}

fn setup(cli: &Cli) -> Result<Env> {
    let weft = match &cli.weft {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .join("weft"),
    };
    if !weft.is_file() {
        bail!(
            "no weft binary at {} (build it with `cargo build --release -p weft`, or pass --weft)",
            weft.display()
        );
    }
    // The bounded-memory scenario's words are six letters, 309 million of them; a 1 GiB budget asks
    // for 224 million distinct words at twice the base scale.
    if !(1 << 20..=1 << 30).contains(&cli.memory_budget) {
        bail!(
            "--memory-budget: {} bytes is outside what the scenario supports (1 MiB to 1 GiB)",
            cli.memory_budget
        );
    }
    std::fs::create_dir_all(&cli.work)
        .with_context(|| format!("cannot create {}", cli.work.display()))?;
    let work = cli.work.canonicalize()?;
    let home = work.join("home");
    let spark = spark_peer(&cli.spark_peer, cli.no_spark);
    let env = Env {
        runs: cli.runs,
        size: cli.size,
        threads: cli
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        work,
        weft,
        wasm_dir: cli.wasm_dir.clone(),
        home,
        spark,
        native_peer: cli.native_peer.clone(),
        tuned_peer: cli.tuned_peer.clone(),
        shuffle_size: cli.shuffle_size,
        memory_budget: cli.memory_budget,
    };
    for example in ["wordcount", "textkit", "stocks"] {
        let wasm = env.wasm(example);
        if !wasm.is_file() {
            bail!(
                "no guest module at {} (build the examples with `cargo build --profile guest \
                 --target wasm32-wasip1 -p weft-example-{example}`, or pass --wasm-dir)",
                wasm.display()
            );
        }
        // Registering the same bytes again is a no-op, so this is idempotent.
        measure::run_timed(
            env.weft()
                .args(["module", "register"])
                .arg(&wasm)
                .args(["--name", example]),
        )?;
    }
    Ok(env)
}

/// The Spark peer's directory if it is set up (its venv exists) and wanted.
fn spark_peer(dir: &Path, disabled: bool) -> Option<PathBuf> {
    if disabled || !dir.join("spark.sh").is_file() {
        return None;
    }
    let home = std::env::var_os("PEER_HOME")
        .map_or_else(|| PathBuf::from("/tmp/weft-spark-peer"), PathBuf::from);
    home.join("venv/bin/python")
        .is_file()
        .then(|| dir.canonicalize().ok())
        .flatten()
}

/// A size as an input's file name shows it: `1000MB`, or bytes where it is not whole megabytes.
pub fn size_name(bytes: u64) -> String {
    if bytes.is_multiple_of(1_000_000) {
        format!("{}MB", bytes / 1_000_000)
    } else {
        format!("{bytes}B")
    }
}

/// Generates `name` in the work directory's `data/` once (the generators are deterministic, so a
/// file already there is the same file) and returns its path.
pub fn input(env: &Env, name: &str, generate: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let dir = env.work.join("data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    if !path.is_file() {
        eprintln!("[bench] generating {}", path.display());
        let tmp = dir.join(format!("{name}.tmp"));
        generate(&tmp)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}
