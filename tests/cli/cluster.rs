//! Cluster mode with real processes: a `weft scheduler` and `weft worker`s started from the built
//! binary on port 0, driven by `weft --scheduler URL` client commands as a user would drive them,
//! with the answers checked against references computed here.
//!
//! Each process writes stdout and stderr to its own file under the test's `logs/`; addresses are
//! read from the "listening on" line there, and every log is printed when a test fails. Dropping a
//! [`Cluster`] stops and reaps every process, panicking test or not.

use std::collections::BTreeSet;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_testkit::process::Process;

use crate::{
    NO_ROOM_FOR_THE_POOL_KIB, Run, assert_same_counts, counts_of, max_volumes, part_files, path,
    read_output, run_client, under_address_space, word_counts,
};

/// How long a process may take to say it is listening. Generous: a debug build on a loaded
/// two-core machine, with other tests' clusters starting beside it, can take seconds.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long a process gets to exit after SIGTERM before it is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The longest any client command may run (`job watch` and `job submit --wait` of a whole job
/// included). A hung client would otherwise hang the whole test binary, with no log printed.
const CLIENT_DEADLINE: Duration = Duration::from_secs(180);

/// How long what a worker reports in its heartbeats (free slots, running tasks, compiled modules)
/// may take to show in `cluster workers`.
pub(crate) const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(20);

/// Task slots per worker: more than one, so a worker runs tasks side by side.
const SLOTS: usize = 2;

/// A worker as it announced itself on stdout.
#[derive(Debug, Clone)]
pub struct Worker {
    pub id: String,
    pub url: String,
}

/// A scheduler and its workers, each a `weft` process with its own data directory, all under one
/// temporary directory that also holds the test's inputs, outputs and logs.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    scheduler: String,
    workers: Vec<Worker>,
    /// The scheduler first, then the workers in start order.
    processes: Vec<Process>,
    /// Numbers the client commands' output files.
    clients: AtomicUsize,
    /// The address space each server process may map (`ulimit -v`, KiB), if limited.
    address_space_kib: Option<u64>,
    /// Environment variables every server process gets (`WEFT_CLUSTER_SECRET`).
    server_env: Vec<(String, String)>,
    /// More arguments for every worker.
    worker_extra: Vec<String>,
    /// The scheduler's arguments, to start it again the same way.
    scheduler_args: Vec<String>,
    /// Processes replaced by a restart, kept for their logs.
    retired: Vec<Process>,
}

impl Cluster {
    /// Starts a scheduler and `workers` workers with [`SLOTS`] slots each, and returns once every
    /// one has said it is listening.
    pub fn start(workers: usize) -> Cluster {
        Cluster::start_with(workers, None, &[], &[], &[])
    }

    /// As [`Cluster::start`], with the scheduler and workers each under `ulimit -v KIB`.
    pub fn start_with_address_space(workers: usize, kib: u64) -> Cluster {
        Cluster::start_with(workers, Some(kib), &[], &[], &[])
    }

    /// As [`Cluster::start`], with `env` set for the scheduler and every worker, and more
    /// arguments for the scheduler and for each worker.
    pub fn start_with_env(
        workers: usize,
        env: &[(&str, &str)],
        scheduler_args: &[&str],
        worker_args: &[&str],
    ) -> Cluster {
        Cluster::start_with(workers, None, scheduler_args, worker_args, env)
    }

    fn start_with(
        workers: usize,
        address_space_kib: Option<u64>,
        extra: &[&str],
        worker_extra: &[&str],
        env: &[(&str, &str)],
    ) -> Cluster {
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            scheduler: String::new(),
            workers: Vec::new(),
            processes: Vec::new(),
            clients: AtomicUsize::new(0),
            address_space_kib,
            server_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            worker_extra: worker_extra.iter().map(|a| (*a).to_owned()).collect(),
            scheduler_args: Vec::new(),
            retired: Vec::new(),
        };
        std::fs::create_dir_all(cluster.path("logs")).unwrap();
        std::fs::create_dir_all(cluster.path("clients")).unwrap();

        // `cluster` already owns each child as it is spawned, so a start that panics half-way
        // still stops the ones that did start.
        let data = cluster.path("scheduler");
        let mut args = vec![
            "scheduler",
            "--listen",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "200ms",
            "--data-dir",
            path(&data),
        ];
        // A short worker timeout, unless the test sets its own.
        if !extra.contains(&"--worker-timeout") {
            args.extend_from_slice(&["--worker-timeout", "2s"]);
        }
        args.extend_from_slice(extra);
        cluster.scheduler_args = args.iter().map(|a| (*a).to_owned()).collect();
        cluster.spawn("scheduler", &args);
        let line = cluster.wait_for_line(0, |line| {
            line.strip_prefix("weft scheduler listening on ")
                .map(str::to_owned)
        });
        assert!(
            line.starts_with("http://127.0.0.1:") || line.starts_with("https://127.0.0.1:"),
            "{line:?}"
        );
        cluster.scheduler = line;

        // Spawned together, then awaited, so their start-up overlaps.
        for _ in 0..workers {
            cluster.spawn_worker();
        }
        for i in 0..workers {
            cluster.await_worker(i + 1);
        }
        let ids: BTreeSet<&str> = cluster.workers.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(
            ids.len(),
            workers,
            "worker ids repeat: {:?}",
            cluster.workers
        );
        cluster
    }

    /// Starts one more worker (`worker-N`, N counting every worker started) and returns once it
    /// listens: a replacement for one that died.
    pub fn add_worker(&mut self) -> Worker {
        let index = self.processes.len();
        self.spawn_worker();
        self.await_worker(index)
    }

    fn spawn_worker(&mut self) {
        let n = self.processes.len() - 1;
        let data = self.path(&format!("worker-{n}"));
        let (scheduler, slots) = (self.scheduler.clone(), SLOTS.to_string());
        let mut args = vec![
            "worker",
            "--scheduler",
            &scheduler,
            "--listen",
            "127.0.0.1:0",
            "--slots",
            &slots,
            "--data-dir",
            path(&data),
        ];
        let extra = self.worker_extra.clone();
        args.extend(extra.iter().map(String::as_str));
        self.spawn(&format!("worker-{n}"), &args);
    }

    /// Waits for the worker that is process `index` to say where it listens.
    fn await_worker(&mut self, index: usize) -> Worker {
        let worker = self.wait_for_line(index, |line| {
            let rest = line.strip_prefix("weft worker ")?;
            let (id, url) = rest.split_once(" listening on ")?;
            Some(Worker {
                id: id.to_owned(),
                url: url.to_owned(),
            })
        });
        assert!(
            worker.url.starts_with("http://127.0.0.1:")
                || worker.url.starts_with("https://127.0.0.1:"),
            "{worker:?}"
        );
        self.workers.push(worker.clone());
        worker
    }

    /// A path in the test's directory (inputs, outputs, job files).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the test's directory and returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let file = self.path(name);
        std::fs::write(&file, bytes).unwrap();
        file
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = self.path(&format!("logs/{name}.log"));
        let mut command = match self.address_space_kib {
            Some(kib) => under_address_space(kib, env!("CARGO_BIN_EXE_weft")),
            None => Command::new(env!("CARGO_BIN_EXE_weft")),
        };
        command
            .args(args)
            .env_remove("WEFT_HOME")
            .env_remove("WEFT_SCHEDULER")
            .env_remove("WEFT_CLUSTER_SECRET")
            .env_remove("WEFT_TOKEN")
            .env("RUST_BACKTRACE", "1")
            .envs(self.server_env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn(name, command, &log)
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.processes.push(process);
    }

    /// Waits for process `index` to print a line `parse` accepts, and returns what it made of it.
    /// Panics, with the log, if the process exits first or the deadline passes.
    fn wait_for_line<T>(&mut self, index: usize, parse: impl Fn(&str) -> Option<T>) -> T {
        self.processes[index]
            .wait_for_line(START_DEADLINE, parse)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Runs `weft --scheduler URL ARGS` in the test's directory (so relative paths are relative to
    /// it) and returns its output, whatever the exit status.
    pub fn client(&self, args: &[&str]) -> Run {
        self.client_with_env(&[], args)
    }

    /// [`Cluster::client`] with `env` set (`WEFT_TOKEN`).
    pub fn client_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        self.client_to(&self.scheduler, env, args)
    }

    /// The scheduler's URL.
    pub fn url(&self) -> &str {
        &self.scheduler
    }

    /// [`Cluster::client_with_env`] of the scheduler at `url` (the scheduler's own, or another
    /// spelling of it).
    pub fn client_to(&self, url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
        let n = self.clients.fetch_add(1, Ordering::Relaxed);
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .arg("--scheduler")
            .arg(url)
            .args(args)
            .current_dir(self.dir.path())
            // Somewhere harmless should a client command wrongly reach for a local data directory,
            // rather than the user's own.
            .env("WEFT_HOME", self.path("client-home"))
            .env_remove("WEFT_SCHEDULER")
            .env_remove("WEFT_TOKEN")
            .envs(env.iter().copied());
        run_client(
            command,
            &self.path(&format!("clients/{n}")),
            CLIENT_DEADLINE,
        )
    }

    /// `job watch ID` to the job's end, expecting it to succeed (exit 0); what it printed.
    pub fn watch_to_success(&self, id: &str) -> Run {
        let watch = self.client(&["job", "watch", id]);
        assert_eq!(
            watch.code(),
            Some(0),
            "{}\n{}",
            watch.stdout(),
            watch.stderr()
        );
        watch
    }

    /// Runs a client command and expects success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.client(args);
        assert!(
            run.0.status.success(),
            "weft --scheduler {} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.scheduler,
            run.0.status,
            run.stdout(),
            run.stderr()
        );
        run
    }

    /// Runs `weft --scheduler URL --json ARGS`, expects success, and returns the parsed stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        self.ok(&full).json()
    }

    /// Registers a module through the scheduler and returns its id.
    pub fn register(&self, name: &str, wasm: &str) -> String {
        let id = self
            .ok(&["module", "register", wasm, "--name", name])
            .stdout()
            .trim()
            .to_owned();
        assert!(id.starts_with("blake3:"), "{id:?}");
        id
    }

    /// Registers the example modules, as `weft_with_examples` does locally.
    pub fn register_examples(&self) {
        for (name, wasm) in [
            ("wordcount", weft_examples::WORDCOUNT_RUST),
            ("stocks", weft_examples::STOCKS_RUST),
            ("textkit", weft_examples::TEXTKIT_RUST),
        ] {
            self.register(name, wasm);
        }
    }

    /// `job submit` without waiting: the new job's id.
    pub fn submit(&self, job: &Path, extra: &[&str]) -> String {
        let mut args = vec!["job", "submit", path(job)];
        args.extend_from_slice(extra);
        let id = self.ok(&args).stdout().trim().to_owned();
        assert!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "{id:?}"
        );
        id
    }

    /// `--json job status`, checked against the status contract.
    pub fn status(&self, job_id: &str) -> Value {
        let status = self.json(&["job", "status", job_id]);
        assert_status_shape(&status);
        assert_eq!(status["job_id"], job_id, "{status:#}");
        status
    }

    /// `--json cluster workers`, checked against its contract.
    pub fn cluster_workers(&self) -> Vec<Value> {
        let workers = self.json(&["cluster", "workers"]);
        let workers = workers
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {workers:#}"))
            .clone();
        for worker in &workers {
            assert_worker_shape(worker);
        }
        workers
    }

    /// Sends SIGTERM to every process still running, waits up to [`STOP_GRACE`] for each, kills
    /// those still running, and returns how each ended (`None`: it had to be killed).
    fn stop_all(&mut self) -> Vec<(String, Option<ExitStatus>)> {
        for process in &mut self.processes {
            process.terminate();
        }
        let deadline = Instant::now() + STOP_GRACE;
        self.processes
            .iter_mut()
            .map(|p| (p.name().to_owned(), p.wait_until(deadline)))
            .collect()
    }

    /// Stops every process with SIGTERM and expects each to exit with status 0 within
    /// [`STOP_GRACE`], as `weft scheduler` and `weft worker` promise.
    pub fn stop_expecting_clean_exits(&mut self) {
        let ended = self.stop_all();
        let unclean: Vec<String> = ended
            .iter()
            .filter(|(_, status)| !status.is_some_and(|s| s.success()))
            .map(|(name, status)| match status {
                Some(status) => format!("{name} exited with {status}"),
                None => format!("{name} was still running {STOP_GRACE:?} after SIGTERM"),
            })
            .collect();
        assert!(unclean.is_empty(), "{}", unclean.join("; "));
    }

    /// Kills worker `i` with SIGKILL, as a machine dies: no goodbye, no reports.
    pub fn kill_worker(&mut self, i: usize) -> Worker {
        self.processes[i + 1].kill();
        self.workers[i].clone()
    }

    /// Sends SIGTERM to worker `i`: how an operator stops one (it drains first).
    pub fn terminate_worker(&mut self, i: usize) -> Worker {
        self.processes[i + 1].terminate();
        self.workers[i].clone()
    }

    /// Waits until `deadline` for worker `i` to exit; `None` if it had to be killed.
    pub fn wait_for_worker_exit(&mut self, i: usize, deadline: Instant) -> Option<ExitStatus> {
        self.processes[i + 1].wait_until(deadline)
    }

    /// Kills the scheduler with SIGKILL, as its machine dies, and starts it again on the same
    /// address with the same arguments and data directory (its log continues in
    /// `scheduler-N.log`); returns once it listens.
    pub fn crash_and_restart_scheduler(&mut self) {
        self.processes[0].kill();
        let address = self
            .scheduler
            .split_once("://")
            .map_or(self.scheduler.as_str(), |(_, a)| a)
            .to_owned();
        let mut args = self.scheduler_args.clone();
        let listen = args.iter().position(|a| a == "--listen").unwrap() + 1;
        args[listen] = address;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = format!("scheduler-{}", self.retired.len() + 2);
        self.spawn(&name, &args);
        let restarted = self.processes.pop().unwrap();
        let old = std::mem::replace(&mut self.processes[0], restarted);
        self.retired.push(old);
        let url = self.wait_for_line(0, |line| {
            line.strip_prefix("weft scheduler listening on ")
                .map(str::to_owned)
        });
        assert_eq!(url, self.scheduler, "restarted on the same address");
    }

    /// The process id of worker `i`, for signals sent from another thread.
    pub(crate) fn worker_pid(&self, i: usize) -> u32 {
        self.processes[i + 1].pid()
    }

    /// Sends `signal` (`STOP`, `CONT`…) to worker `i`.
    pub fn signal_worker(&mut self, i: usize, signal: &str) -> Worker {
        self.processes[i + 1].signal(signal);
        self.workers[i].clone()
    }

    /// Panics, naming `after`, unless every process of the cluster is still running.
    pub fn assert_running(&self, after: &str) {
        for process in &self.processes {
            assert!(
                process.is_running(),
                "{} is no longer running after {after}",
                process.name()
            );
        }
    }

    /// What process `name` (`scheduler`, `worker-0`, ...) has written so far.
    pub fn log(&self, name: &str) -> String {
        self.processes
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no process named {name}"))
            .log()
    }

    fn print_logs(&self) {
        for process in self.retired.iter().chain(&self.processes) {
            eprintln!(
                "===== {} ({}) =====\n{}",
                process.name(),
                process.log_path().display(),
                process.log()
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        // After stopping, so the logs are complete. Only on failure: passing tests stay quiet.
        if std::thread::panicking() {
            eprintln!("cluster at {}", self.scheduler);
            self.print_logs();
        }
    }
}

/// Polls `probe` every 100 ms until it returns `Ok`, and panics with `what` and the last `Err`
/// (what was seen instead) if `deadline` passes first.
pub(crate) fn wait_until<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match probe() {
            Ok(found) => return found,
            Err(seen) if started.elapsed() > deadline => {
                panic!("{what} did not happen within {deadline:?}; last seen:\n{seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn is_uint(value: &Value) -> bool {
    value.as_u64().is_some()
}

fn is_uint_or_null(value: &Value) -> bool {
    value.is_null() || is_uint(value)
}

/// Checks every field of the `job status --json` contract, with its type.
fn assert_status_shape(status: &Value) {
    let ok = status["job_id"].is_string()
        && status["tenant"].is_string()
        && status["name"].is_string()
        && ["queued", "running", "succeeded", "failed", "cancelled"]
            .contains(&status["state"].as_str().unwrap_or(""))
        && (status["error"].is_null() || status["error"].is_string())
        && status["output"].is_string()
        && is_uint(&status["submitted_ms"])
        && is_uint_or_null(&status["started_ms"])
        && is_uint_or_null(&status["finished_ms"])
        && status["stages"].is_array();
    assert!(ok, "not a job status: {status:#}");
    for stage in status["stages"].as_array().unwrap() {
        let ok = is_uint(&stage["stage"])
            && stage["parents"]
                .as_array()
                .is_some_and(|p| p.iter().all(is_uint))
            && stage["steps"]
                .as_array()
                .is_some_and(|s| s.iter().all(Value::is_string))
            && [
                "tasks_total",
                "tasks_done",
                "tasks_running",
                "tasks_failed",
                "records_in",
                "records_out",
                "bytes_in",
                "bytes_out",
                "remote_fetches",
            ]
            .iter()
            .all(|field| is_uint(&stage[field]));
        assert!(ok, "not a stage status: {stage:#}\nin {status:#}");
    }
    // A finished job has an end, and only a failed one an error.
    let state = status["state"].as_str().unwrap();
    if ["succeeded", "failed", "cancelled"].contains(&state) {
        assert!(is_uint(&status["finished_ms"]), "{status:#}");
    }
    // A failed job says why and a succeeded one has nothing to say; the contract leaves a
    // cancelled job's error open.
    if state == "failed" {
        assert!(status["error"].is_string(), "{status:#}");
    }
    if state == "succeeded" {
        assert!(status["error"].is_null(), "{status:#}");
    }
    if let (Some(submitted), Some(started)) = (
        status["submitted_ms"].as_u64(),
        status["started_ms"].as_u64(),
    ) {
        assert!(submitted <= started, "{status:#}");
        if let Some(finished) = status["finished_ms"].as_u64() {
            assert!(started <= finished, "{status:#}");
        }
    }
}

/// Checks every field of the `cluster workers --json` contract, with its type.
fn assert_worker_shape(worker: &Value) {
    let ok = worker["worker_id"].is_string()
        && worker["address"].is_string()
        && worker["hostname"].is_string()
        && is_uint(&worker["slots"])
        && is_uint(&worker["free_slots"])
        && worker["running"].is_array()
        && is_uint(&worker["memory_bytes"])
        && worker["engine_hash"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
        && worker["compiled_modules"]
            .as_array()
            .is_some_and(|m| m.iter().all(Value::is_string))
        && is_uint(&worker["last_seen_ms_ago"])
        && is_uint(&worker["registered_ms"]);
    assert!(ok, "not a worker: {worker:#}");
    assert!(
        worker["free_slots"].as_u64() <= worker["slots"].as_u64(),
        "{worker:#}"
    );
}

/// Whether every worker is idle: nothing running, every slot free.
pub(crate) fn all_idle(workers: &[Value]) -> Result<(), String> {
    let idle = workers.iter().all(|w| {
        w["running"].as_array().is_some_and(Vec::is_empty) && w["free_slots"] == w["slots"]
    });
    if idle {
        Ok(())
    } else {
        Err(format!("{workers:#?}"))
    }
}

/// The stage statuses of a job status, by stage number.
pub(crate) fn stages(status: &Value) -> &[Value] {
    status["stages"].as_array().unwrap()
}

/// The same job file as `examples/wordcount/job.toml`, with splits small enough that a few MB make
/// several map tasks, and `partitions` output parts (and reduce tasks).
fn wordcount_job(split_size: u64, partitions: u32) -> String {
    format!(
        r#"name = "wordcount"
[input]
path = "data/*.txt"
format = "text"
split_size = {split_size}
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = "out"
format = "text"
partitions = {partitions}
"#
    )
}

/// A map-then-word-count job over `input` whose map step is `textkit/FUNCTION`.
pub(crate) fn textkit_job(name: &str, input: &Path, function: &str, output: &Path) -> String {
    format!(
        r#"name = "{name}"
[input]
path = {input:?}
[[step]]
map = "textkit/{function}"
[[step]]
flat_map = "wordcount/split_words"
[[step]]
reduce = "wordcount/sum"
[output]
path = {output:?}
"#,
        input = path(input),
        output = path(output),
    )
}

/// How many splits of `split_size` bytes a file of `len` bytes is cut into.
fn splits(len: usize, split_size: u64) -> u64 {
    (len as u64).div_ceil(split_size)
}

/// Asserts a finished job's stage counts: every task done, none running or failed, and
/// `tasks` tasks per stage.
fn assert_all_done(status: &Value, tasks: &[u64]) {
    let stages = stages(status);
    assert_eq!(stages.len(), tasks.len(), "{status:#}");
    for (i, (stage, &total)) in stages.iter().zip(tasks).enumerate() {
        assert_eq!(stage["stage"], i as u64, "{status:#}");
        assert_eq!(stage["tasks_total"], total, "stage {i}: {status:#}");
        assert_eq!(stage["tasks_done"], total, "stage {i}: {status:#}");
        assert_eq!(stage["tasks_running"], 0, "stage {i}: {status:#}");
        assert_eq!(stage["tasks_failed"], 0, "stage {i}: {status:#}");
    }
}

/// Asserts the two stages of a map/reduce job: the reduce stage reads the map stage, each shows
/// its function, what the map stage wrote is what the reduce stage read, and the reduce stage
/// wrote `records_out` records.
fn assert_map_reduce_stages(status: &Value, map: &str, reduce: &str, records_out: usize) {
    let stages = stages(status);
    assert_eq!(stages[0]["parents"], serde_json::json!([]), "{status:#}");
    assert_eq!(stages[1]["parents"], serde_json::json!([0]), "{status:#}");
    let shows = |stage: &Value, function: &str| {
        stage["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains(function))
    };
    assert!(shows(&stages[0], map), "{map} not in stage 0: {status:#}");
    assert!(
        shows(&stages[1], reduce),
        "{reduce} not in stage 1: {status:#}"
    );
    assert!(stages[0]["records_in"].as_u64() > Some(0), "{status:#}");
    assert!(stages[0]["bytes_in"].as_u64() > Some(0), "{status:#}");
    assert_eq!(
        stages[0]["records_out"], stages[1]["records_in"],
        "the shuffle lost or made records: {status:#}"
    );
    assert_eq!(stages[1]["records_out"], records_out as u64, "{status:#}");
}

/// Whether two paths name the same existing file or directory (the product may spell an absolute
/// path differently, e.g. through a symlink).
fn same_path(a: &Path, b: &Path) -> bool {
    a.canonicalize().unwrap() == b.canonicalize().unwrap()
}

/// Every entry of a directory (empty if it does not exist).
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `job watch`'s output ends with the outcome: `word` on a line after the last progress
/// line (`stage N: ...`). Not simply the last line: a failure's message may go on over several
/// lines, with what the guest wrote to stderr.
pub(crate) fn ends_with_outcome(text: &str, word: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let after = lines
        .iter()
        .rposition(|l| l.starts_with("stage "))
        .map_or(0, |i| i + 1);
    lines[after..].iter().any(|l| l.contains(word))
}

#[test]
fn a_scheduler_and_three_worker_processes_run_wordcount_and_stocks_exactly() {
    let mut cluster = Cluster::start(3);
    cluster.register_examples();

    // Word count: 3 MiB in 512 KiB splits, six map tasks for six slots on three processes, and
    // four reduce tasks reading every map task's blocks.
    let corpus = weft_datagen::wordcount_corpus(3 << 20, 17);
    let input = cluster.write("corpus.txt", &corpus);
    let split_size = 512 << 10;
    let job = cluster.write("wordcount.toml", wordcount_job(split_size, 4));
    let out = cluster.path("wordcount-out");
    let run = cluster.client(&[
        "--json",
        "job",
        "submit",
        path(&job),
        "--input",
        path(&input),
        "--output",
        path(&out),
        "--wait",
    ]);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    // --wait prints the final status.
    let waited = run.json();
    assert_status_shape(&waited);
    assert_eq!(waited["state"], "succeeded", "{waited:#}");
    assert_eq!(waited["name"], "wordcount", "{waited:#}");
    assert!(
        same_path(Path::new(waited["output"].as_str().unwrap()), &out),
        "{waited:#}"
    );
    let wordcount_id = waited["job_id"].as_str().unwrap().to_owned();

    let want = word_counts(&corpus);
    assert_same_counts(&counts_of(read_output(&out)), &want);
    assert_eq!(part_files(&out).len(), 4);

    let status = cluster.status(&wordcount_id);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_all_done(&status, &[splits(corpus.len(), split_size), 4]);
    assert!(stages(&status)[0]["tasks_total"].as_u64() >= Some(6));
    assert_map_reduce_stages(&status, "split_words", "sum", want.len());
    // Six map tasks for six slots on three processes: unless one process ran them all, every
    // reduce task needs blocks that another process wrote, and fetches them from it.
    assert!(
        stages(&status)[1]["remote_fetches"].as_u64() > Some(0),
        "no shuffle block crossed between worker processes: {status:#}"
    );

    // Stocks: a CSV with a header, semicolon-delimited (the delimiter travels from the job file
    // through the plan and the protocol to the reader in another process, which hands the UDF
    // comma-separated rows), in four splits, three output parts.
    let csv: Vec<u8> = weft_datagen::stocks_csv(20_000, 5)
        .into_iter()
        .map(|b| if b == b',' { b';' } else { b })
        .collect();
    let quotes = cluster.write("quotes.csv", &csv);
    let stocks_split = (csv.len() as u64).div_ceil(4);
    let job = cluster.write(
        "stocks.toml",
        format!(
            "name = \"stocks\"\n[input]\npath = {:?}\nformat = \"csv\"\nheader = true\n\
             delimiter = \";\"\nsplit_size = {stocks_split}\n[[step]]\nflat_map = \"stocks/parse\"\n\
             [[step]]\nreduce = \"stocks/max\"\n[output]\npath = \"max-volume\"\n\
             partitions = 3\n",
            path(&quotes)
        ),
    );
    let out = cluster.path("max-volume");
    let run = cluster.client(&["--json", "job", "submit", path(&job), "--wait"]);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let stocks_id = run.json()["job_id"].as_str().unwrap().to_owned();
    let want = max_volumes(&csv, b';');
    assert_eq!(want.len(), weft_datagen::SYMBOLS);
    assert_same_counts(&counts_of(read_output(&out)), &want);
    assert_eq!(part_files(&out).len(), 3);
    let status = cluster.status(&stocks_id);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_all_done(&status, &[4, 3]);
    assert_map_reduce_stages(&status, "parse", "max", want.len());

    // Both jobs are listed, finished.
    let list = cluster.json(&["job", "list"]);
    let list = list.as_array().unwrap_or_else(|| panic!("{list:#}"));
    for id in [&wordcount_id, &stocks_id] {
        let listed = list
            .iter()
            .find(|s| s["job_id"] == id.as_str())
            .unwrap_or_else(|| panic!("job {id} not in {list:#?}"));
        assert_status_shape(listed);
        assert_eq!(listed["state"], "succeeded", "{listed:#}");
    }

    // Every worker process registered, took part (so compiled a module) and is idle again. Free
    // slots and compiled modules arrive with heartbeats, hence the polling.
    let announced: BTreeSet<(String, String)> = cluster
        .workers()
        .iter()
        .map(|w| (w.id.clone(), w.url.clone()))
        .collect();
    let workers = wait_until(
        "3 idle workers with compiled modules",
        HEARTBEAT_DEADLINE,
        || {
            let workers = cluster.cluster_workers();
            all_idle(&workers)?;
            let compiled = workers.iter().all(|w| {
                w["compiled_modules"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty())
            });
            if workers.len() == 3 && compiled {
                Ok(workers)
            } else {
                Err(format!("{workers:#?}"))
            }
        },
    );
    let listed: BTreeSet<(String, String)> = workers
        .iter()
        .map(|w| {
            let field = |name: &str| w[name].as_str().unwrap().to_owned();
            (field("worker_id"), field("address"))
        })
        .collect();
    assert_eq!(listed, announced, "{workers:#?}");
    for worker in &workers {
        assert_eq!(worker["slots"], SLOTS as u64, "{worker:#}");
    }
    // One binary on one machine: one engine.
    let hashes: BTreeSet<&str> = workers
        .iter()
        .map(|w| w["engine_hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), 1, "{workers:#?}");

    // SIGTERM stops every process cleanly.
    cluster.stop_expecting_clean_exits();
}

#[test]
fn two_jobs_submitted_at_once_both_finish_exactly() {
    let cluster = Cluster::start(2);
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    // Two inputs with different words under the same module, steps and stage numbers: a block
    // of one job read by the other would show in the counts.
    let first = weft_datagen::wordcount_corpus(1 << 20, 3);
    let second = weft_datagen::wordcount_corpus(1 << 20, 4);
    cluster.write("first.txt", &first);
    cluster.write("second.txt", &second);
    let job = cluster.write("wordcount.toml", wordcount_job(256 << 10, 3));

    // Relative paths: relative to the client's working directory (the test's directory).
    let first_id = cluster.submit(&job, &["--input", "first.txt", "--output", "first-out"]);
    let second_id = cluster.json(&[
        "job",
        "submit",
        path(&job),
        "--input",
        "second.txt",
        "--output",
        "second-out",
    ])["job_id"]
        .as_str()
        .expect("{\"job_id\": ...}")
        .to_owned();
    assert_ne!(first_id, second_id);

    for id in [&first_id, &second_id] {
        let watch = cluster.client(&["job", "watch", id]);
        assert_eq!(
            watch.code(),
            Some(0),
            "job {id}:\n{}\n{}",
            watch.stdout(),
            watch.stderr()
        );
    }
    for (id, input, out) in [
        (&first_id, &first, "first-out"),
        (&second_id, &second, "second-out"),
    ] {
        let status = cluster.status(id);
        assert_eq!(status["state"], "succeeded", "{status:#}");
        assert_all_done(&status, &[splits(input.len(), 256 << 10), 3]);
        // The client made the relative --output absolute.
        let output = Path::new(status["output"].as_str().unwrap());
        assert!(output.is_absolute(), "{status:#}");
        assert!(same_path(output, &cluster.path(out)), "{status:#}");
        assert_same_counts(
            &counts_of(read_output(&cluster.path(out))),
            &word_counts(input),
        );
    }
}

#[test]
fn under_an_address_space_limit_the_servers_say_they_run_without_the_pool_and_jobs_stay_exact() {
    let cluster = Cluster::start_with_address_space(1, NO_ROOM_FOR_THE_POOL_KIB);
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    let corpus = weft_datagen::wordcount_corpus(512 << 10, 5);
    cluster.write("in.txt", &corpus);
    let job = cluster.write("wordcount.toml", wordcount_job(128 << 10, 2));
    let id = cluster.submit(&job, &["--input", "in.txt", "--output", "limited-out"]);
    cluster.watch_to_success(&id);
    assert_same_counts(
        &counts_of(read_output(&cluster.path("limited-out"))),
        &word_counts(&corpus),
    );
    // Both engines fell back (the scheduler's validates modules at registration), and said why.
    for name in ["scheduler", "worker-0"] {
        let log = cluster.log(name);
        assert!(
            log.contains("guests run without the instance pool")
                && log.contains("could not be reserved"),
            "{name}:\n{log}"
        );
    }
}

#[test]
fn cancel_leaves_no_running_tasks_and_no_output() {
    let cluster = Cluster::start(2);
    cluster.register("textkit", weft_examples::TEXTKIT_RUST);
    // Forty records of BURN_ROUNDS rounds each, one per map task (a split per line), each an
    // hour of work in one guest call: the running tasks end only because the kill interrupts the
    // call itself.
    let line = format!("{BURN_ROUNDS:013}\n");
    let input = cluster.write("burn.txt", line.repeat(40));
    let out = cluster.path("results/out");
    let job = cluster.write(
        "burn.toml",
        format!(
            "name = \"burn\"\n[input]\npath = {:?}\nsplit_size = {}\n[[step]]\n\
             map = \"textkit/burn\"\n[output]\npath = {:?}\n",
            path(&input),
            line.len(),
            path(&out)
        ),
    );
    let id = cluster.submit(&job, &[]);

    let running = wait_until("the burn job running tasks", START_DEADLINE, || {
        let status = cluster.status(&id);
        let running: u64 = stages(&status)
            .iter()
            .map(|s| s["tasks_running"].as_u64().unwrap())
            .sum();
        match status["state"].as_str().unwrap() {
            "running" if running > 0 => Ok(status),
            "queued" | "running" => Err(format!("{status:#}")),
            _ => panic!("the burn job ended before it was cancelled: {status:#}"),
        }
    });
    assert_eq!(stages(&running)[0]["tasks_total"], 40, "{running:#}");

    cluster.ok(&["job", "cancel", &id]);
    let status = cluster.status(&id);
    assert_eq!(
        status["state"], "cancelled",
        "right after cancel: {status:#}"
    );
    assert!(
        stages(&status)[0]["tasks_done"].as_u64() < Some(40),
        "every task ran: {status:#}"
    );

    // The workers stop the tasks they were running and free their slots...
    wait_until(
        "every worker idle after the cancel",
        HEARTBEAT_DEADLINE,
        || all_idle(&cluster.cluster_workers()),
    );
    // ...and the job stays cancelled, with nothing running and nothing left on disk: neither the
    // output nor a staging directory beside it.
    let status = cluster.status(&id);
    assert_eq!(status["state"], "cancelled", "{status:#}");
    for stage in stages(&status) {
        assert_eq!(stage["tasks_running"], 0, "{status:#}");
    }
    assert!(!out.exists(), "{} exists", out.display());
    let left = entries(&cluster.path("results"));
    assert!(left.is_empty(), "left beside the output: {left:?}");

    let listed = cluster.json(&["job", "list"]);
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["job_id"] == id.as_str())
        .unwrap_or_else(|| panic!("job {id} not listed: {listed:#}"));
    assert_eq!(listed["state"], "cancelled", "{listed:#}");
    // Watching a cancelled job reports it and fails.
    let watch = cluster.client(&["job", "watch", &id]);
    assert_eq!(
        watch.code(),
        Some(1),
        "{}\n{}",
        watch.stdout(),
        watch.stderr()
    );
    assert!(
        ends_with_outcome(&watch.stdout(), "cancelled")
            || ends_with_outcome(&watch.stderr(), "cancelled"),
        "{}\n{}",
        watch.stdout(),
        watch.stderr()
    );
}

/// Rounds of `textkit/burn` per record: about an hour of one core in wasmtime (about 4 ns a
/// round, measured on the two-core development machine).
const BURN_ROUNDS: u64 = 1_000_000_000_000;

#[test]
fn watch_shows_progress_and_exits_with_the_outcome() {
    let cluster = Cluster::start(2);
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    cluster.register("textkit", weft_examples::TEXTKIT_RUST);

    let corpus = weft_datagen::wordcount_corpus(256 << 10, 8);
    cluster.write("corpus.txt", &corpus);
    let job = cluster.write("wordcount.toml", wordcount_job(64 << 10, 2));
    let id = cluster.submit(&job, &["--input", "corpus.txt", "--output", "out"]);
    let watch = cluster.client(&["job", "watch", &id]);
    let (stdout, stderr) = (watch.stdout(), watch.stderr());
    assert_eq!(watch.code(), Some(0), "{stdout}\n{stderr}");
    for stage in ["stage 0", "stage 1"] {
        assert!(stdout.contains(stage), "{stage:?} not in:\n{stdout}");
    }
    assert!(ends_with_outcome(&stdout, "succeeded"), "{stdout}");
    assert_same_counts(
        &counts_of(read_output(&cluster.path("out"))),
        &word_counts(&corpus),
    );

    // The guest panics on the third line: the job fails, and the watch says where and why.
    let input = cluster.write("boom.txt", "fine\nalso fine\nboom\nnever reached\n");
    let job = cluster.write(
        "boom.toml",
        textkit_job("boom", &input, "panic_on_boom", &cluster.path("boom-out")),
    );
    let id = cluster.submit(&job, &[]);
    let watch = cluster.client(&["job", "watch", &id]);
    let (stdout, stderr) = (watch.stdout(), watch.stderr());
    assert_eq!(watch.code(), Some(1), "{stdout}\n{stderr}");
    let both = format!("{stdout}\n{stderr}");
    for needle in ["textkit", "panic_on_boom", "boom panic"] {
        assert!(both.contains(needle), "{needle:?} not in:\n{both}");
    }
    assert!(
        ends_with_outcome(&stdout, "failed") || ends_with_outcome(&stderr, "failed"),
        "{both}"
    );
    assert!(!cluster.path("boom-out").exists());
}

#[test]
fn logs_show_guest_stderr_of_a_failed_task() {
    let cluster = Cluster::start(2);
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    cluster.register("textkit", weft_examples::TEXTKIT_RUST);
    let input = cluster.write("boom.txt", "fine\nalso fine\nboom\nnever reached\n");
    let out = cluster.path("boom-out");
    let job = cluster.write(
        "boom.toml",
        textkit_job("boom", &input, "panic_on_boom", &out),
    );

    let run = cluster.client(&["--json", "job", "submit", path(&job), "--wait"]);
    assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout(), run.stderr());
    // The first JSON document here; that it is the only one is checked last, so that the logs
    // are checked whatever follows it.
    let status: Value = serde_json::Deserializer::from_slice(&run.0.stdout)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no JSON in: {}", run.stdout()))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()));
    assert_status_shape(&status);
    assert_eq!(status["state"], "failed", "{status:#}");
    let error = status["error"].as_str().unwrap();
    for needle in [
        "stage 0",
        "partition 0",
        "textkit",
        "panic_on_boom",
        "boom panic",
    ] {
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
    assert!(
        stages(&status)[0]["tasks_failed"].as_u64() > Some(0),
        "{status:#}"
    );
    assert!(!out.exists());
    let id = status["job_id"].as_str().unwrap();

    // The guest's panic message is what it wrote to stderr; the logs keep it, for the whole job
    // and for its one map task.
    let logs = cluster.ok(&["job", "logs", id]).stdout();
    assert!(logs.contains("boom panic"), "{logs}");
    let task = cluster.ok(&["job", "logs", id, "--task", "0.0"]).stdout();
    assert!(task.contains("boom panic"), "{task}");

    // `--wait --json` prints the final status, and only that: one JSON document, even for a job
    // that failed.
    let _ = run.json();
}

/// How long `nap/nap` naps per batch.
pub(crate) const NAP_NANOS: u64 = 1_500_000_000;

/// Two workers, and the modules of the tests that stop a worker mid-job: `nap/nap`, a map that
/// naps [`NAP_NANOS`] per batch (so its tasks are running when the worker goes), and `wordcount`.
fn nap_cluster() -> Cluster {
    nap_cluster_of(2)
}

/// [`nap_cluster`] with `workers` workers.
pub(crate) fn nap_cluster_of(workers: usize) -> Cluster {
    use weft_testkit::wat::{WASI_IMPORTS, guest, napping_map};
    let cluster = Cluster::start(workers);
    let nap = cluster.write(
        "nap.wasm",
        guest(WASI_IMPORTS, &napping_map("nap", NAP_NANOS)),
    );
    cluster.register("nap", path(&nap));
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    cluster
}

/// A job `name` of four napping map tasks over the lines `1` to `4`, then a shuffle into
/// `wordcount/sum`: its file, and its output directory ([`assert_numbers`] checks it).
fn nap_then_sum_job(cluster: &Cluster, name: &str) -> (PathBuf, PathBuf) {
    let input = cluster.write("numbers.txt", "1\n2\n3\n4\n");
    let out = cluster.path(&format!("results/{name}"));
    let file = cluster.write(
        &format!("{name}.toml"),
        format!(
            "name = {name:?}\n[input]\npath = {:?}\nsplit_size = 2\n[[step]]\n\
             map = \"nap/nap\"\n[[step]]\nreduce = \"wordcount/sum\"\n[output]\n\
             path = {:?}\npartitions = 2\n",
            path(&input),
            path(&out)
        ),
    );
    (file, out)
}

/// Panics unless the output of a [`nap_then_sum_job`] holds each of `1` to `4` once.
pub(crate) fn assert_numbers(out: &Path) {
    let mut got: Vec<Vec<u8>> = read_output(out).into_values().collect();
    got.sort();
    assert_eq!(got, [b"1", b"2", b"3", b"4"]);
}

/// Waits until job `id`'s four map tasks all run.
fn wait_for_four_running(cluster: &Cluster, id: &str) {
    wait_until("four tasks running", START_DEADLINE, || {
        let status = cluster.status(id);
        match stages(&status)[0]["tasks_running"].as_u64() {
            Some(4) => Ok(()),
            _ => Err(format!("{status:#}")),
        }
    });
}

#[test]
fn a_worker_killed_mid_job_loses_its_tasks_to_the_live_one_and_the_job_is_exact() {
    let mut cluster = nap_cluster();
    // Four tasks of 1.5 s, one per line: they are running, two per worker, when one dies.
    let lines: Vec<String> = (0..4).map(|i| format!("line {i:05}")).collect();
    let input = cluster.write("lines.txt", lines.join("\n") + "\n");
    let out = cluster.path("results/out");
    let job = cluster.write(
        "nap.toml",
        format!(
            "name = \"nap\"\n[input]\npath = {:?}\nsplit_size = {}\n[[step]]\n\
             map = \"nap/nap\"\n[output]\npath = {:?}\n",
            path(&input),
            lines[0].len() + 1,
            path(&out)
        ),
    );
    let id = cluster.submit(&job, &[]);
    wait_for_four_running(&cluster, &id);
    let dead = cluster.kill_worker(0);
    cluster.watch_to_success(&id);
    // Every line once, though two of the tasks ran twice.
    let mut got: Vec<Vec<u8>> = read_output(&out).into_values().collect();
    got.sort();
    let want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
    let status = cluster.status(&id);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let stage = &stages(&status)[0];
    assert_eq!(
        (stage["tasks_done"].as_u64(), stage["tasks_failed"].as_u64()),
        (Some(4), Some(2))
    );
    // The lost attempts are listed, with why; their next attempts ran on the live worker.
    let tasks = status["tasks"].as_array().unwrap();
    let lost: Vec<&Value> = tasks.iter().filter(|t| t["state"] == "failed").collect();
    assert_eq!(lost.len(), 2, "{status:#}");
    for t in &lost {
        assert_eq!(t["worker_id"], dead.id.as_str());
        let error = t["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("worker {} at {} was lost", dead.id, dead.url)),
            "{error}"
        );
        // Noticed when its connection closed, not a worker timeout later.
        assert!(
            error.contains("its connection to the scheduler closed"),
            "{error}"
        );
    }
    for t in tasks.iter().filter(|t| t["state"] == "succeeded") {
        let rerun = lost.iter().any(|l| l["partition"] == t["partition"]);
        if rerun {
            assert_eq!(t["attempt"], 1, "{t:#}");
            assert_eq!(t["worker_id"], cluster.workers()[1].id.as_str(), "{t:#}");
        }
    }
    // The dead worker is gone from the cluster; the live one is idle again.
    wait_until(
        "the live worker idle, the dead one gone",
        HEARTBEAT_DEADLINE,
        || {
            let workers = cluster.cluster_workers();
            let ids: Vec<&str> = workers
                .iter()
                .map(|w| w["worker_id"].as_str().unwrap())
                .collect();
            if ids != [cluster.workers()[1].id.as_str()] {
                return Err(format!("{workers:#?}"));
            }
            all_idle(&workers)
        },
    );
}

#[test]
fn a_draining_worker_finishes_its_tasks_serves_its_blocks_then_exits_0() {
    let mut cluster = nap_cluster();
    // Four map tasks of 1.5 s, two per worker, then a shuffle: the reduce reads every map's block.
    let (job, out) = nap_then_sum_job(&cluster, "drain");
    let id = cluster.submit(&job, &[]);
    wait_for_four_running(&cluster, &id);
    let draining = cluster.terminate_worker(0);
    cluster.watch_to_success(&id);
    assert_numbers(&out);
    // No work was lost: the draining worker finished its two tasks, and no reduce task went to it;
    // the reduce read its blocks from it.
    let status = cluster.status(&id);
    let (map, reduce) = (&stages(&status)[0], &stages(&status)[1]);
    assert_eq!(map["tasks_failed"], 0, "{status:#}");
    assert_eq!(reduce["tasks_failed"], 0, "{status:#}");
    let tasks = status["tasks"].as_array().unwrap();
    let on_drained = |stage: u64| {
        tasks
            .iter()
            .filter(|t| t["stage"] == stage && t["worker_id"] == draining.id.as_str())
            .count()
    };
    assert_eq!((on_drained(0), on_drained(1)), (2, 0), "{status:#}");
    assert!(reduce["remote_fetches"].as_u64() >= Some(1), "{status:#}");
    // Its blocks released with the job, it exits, cleanly.
    let exit = cluster.wait_for_worker_exit(0, Instant::now() + HEARTBEAT_DEADLINE);
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    assert!(cluster.log("worker-0").contains("drained"));
}

#[test]
fn a_stopped_worker_is_lost_then_comes_back_clean() {
    let mut cluster = nap_cluster();
    let (file, out) = nap_then_sum_job(&cluster, "stopped");
    let id = cluster.submit(&file, &[]);
    wait_for_four_running(&cluster, &id);
    // Frozen (SIGSTOP), it stops heartbeating: after the worker timeout it is lost, and its
    // tasks run again on the other worker. The answer is exact.
    let frozen = cluster.signal_worker(0, "STOP");
    cluster.watch_to_success(&id);
    assert_numbers(&out);
    let status = cluster.status(&id);
    let lost: Vec<&Value> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "failed")
        .collect();
    assert_eq!(lost.len(), 2, "{status:#}");
    assert!(lost.iter().all(|t| t["worker_id"] == frozen.id.as_str()));
    // Thawed, it hears it is unknown, registers again, and is told to kill what it still ran:
    // it is back, idle, and the next job runs on both workers, exactly.
    cluster.signal_worker(0, "CONT");
    wait_until(
        "the thawed worker back and idle",
        HEARTBEAT_DEADLINE,
        || {
            let workers = cluster.cluster_workers();
            if workers.len() != 2 {
                return Err(format!("{workers:#?}"));
            }
            all_idle(&workers)
        },
    );
    let (file, out) = nap_then_sum_job(&cluster, "thawed");
    let id = cluster.submit(&file, &[]);
    cluster.watch_to_success(&id);
    assert_numbers(&out);
    let status = cluster.status(&id);
    assert_eq!(stages(&status)[0]["tasks_failed"], 0, "{status:#}");
    cluster.assert_running("a stop and a continue");
}

/// A guest failing with a 10 MiB message fails its job with the start of it; the job's status and
/// every user's `job list` still work (the message is cut where the host reads it).
#[test]
fn a_huge_guest_error_does_not_break_job_status_or_list() {
    let cluster = Cluster::start(1);
    let wasm = cluster.write(
        "shout.wasm",
        weft_testkit::wat::guest("", weft_testkit::wat::HUGE_ERROR_MAP),
    );
    cluster.register("shout", path(&wasm));
    let input = cluster.write("in.txt", "one line\n");
    let job = cluster.write(
        "shout.toml",
        format!(
            "name = \"shout\"\n[input]\npath = {:?}\n[[step]]\nmap = \"shout/shout\"\n\
             [output]\npath = {:?}\n",
            path(&input),
            path(&cluster.path("out"))
        ),
    );
    let id = cluster.submit(&job, &[]);
    let status = wait_until("the job fails", START_DEADLINE, || {
        let status = cluster.status(&id);
        match status["state"].as_str().unwrap() {
            "failed" => Ok(status),
            other => Err(other.to_owned()),
        }
    });
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains("xxxxxxxx") && error.contains("the guest's message is 10485760 bytes"),
        "{}",
        &error[error.len().saturating_sub(300)..]
    );
    assert!(error.len() < 64 << 10, "{} bytes", error.len());
    let list = cluster.json(&["job", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
}

#[test]
fn a_cancel_wakes_sleeping_guests_and_every_slot_serves_again() {
    use weft_testkit::wat::{WASI_IMPORTS, guest, napping_map, sleep_map};
    let cluster = Cluster::start(2);
    let wasm = cluster.write(
        "sleepy.wasm",
        guest(
            WASI_IMPORTS,
            &format!("{}{}", sleep_map(), napping_map("second", 1_000_000_000)),
        ),
    );
    cluster.register("sleepy", path(&wasm));
    // Nine tasks, one line each.
    let line = "a line of its own\n";
    let input = cluster.write("nine.txt", line.repeat(9));
    let job = |name: &str, function: &str| {
        cluster.write(
            &format!("{name}.toml"),
            format!(
                "name = {name:?}\n[input]\npath = {:?}\nsplit_size = {}\n[[step]]\n\
                 map = \"sleepy/{function}\"\n[output]\npath = {:?}\n",
                path(&input),
                line.len(),
                path(&cluster.path(&format!("{name}-out")))
            ),
        )
    };

    // Every slot asleep for an hour in a host function; the cancel wakes them all.
    let id = cluster.submit(&job("asleep", "sleep"), &[]);
    wait_until("four sleeping tasks", START_DEADLINE, || {
        let status = cluster.status(&id);
        match stages(&status)[0]["tasks_running"].as_u64() {
            Some(4) => Ok(()),
            _ => Err(format!("{status:#}")),
        }
    });
    let started = Instant::now();
    cluster.ok(&["job", "cancel", &id]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the cancel took {took:?}");
    wait_until(
        "every worker idle after the cancel",
        HEARTBEAT_DEADLINE,
        || all_idle(&cluster.cluster_workers()),
    );

    // Then a job of nine one-second tasks runs on all four slots at once, as the scheduler's own
    // slot accounting shows (a stage's `tasks_running` may briefly count a task whose end is still
    // on its way beside the one launched in its place).
    let id = cluster.submit(&job("napping", "second"), &[]);
    let mut most = 0;
    let status = loop {
        let busy: usize = cluster
            .cluster_workers()
            .iter()
            .map(|w| w["running"].as_array().map_or(0, Vec::len))
            .sum();
        most = most.max(busy);
        let status = cluster.status(&id);
        if status["state"] != "running" && status["state"] != "queued" {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(most, 4, "at most {most} tasks ran at once on 4 free slots");
}
