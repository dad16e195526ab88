//! Jobs that survive failure (issue 18), with real processes: a `weft scheduler` and `weft worker`s
//! started from the built binary, failures made the way they happen — a guest trapping on one
//! record, workers killed (SIGKILL) one after the other or while their shuffle output is still
//! needed, a worker slowed by SIGSTOP/SIGCONT, a worker cut off the network — and every answer
//! checked against a reference computed here, with the attempt records of `job status --json`
//! saying which task ran again, where, and why.
//!
//! The network partition runs the scheduler and each worker in a network namespace of its own,
//! joined by a bridge in another; it needs root and `ip`, and says it is skipped without them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_testkit::process::Process;
use weft_testkit::wat::{WASI_IMPORTS, guest, napping_map};

use crate::cluster::{
    Cluster, HEARTBEAT_DEADLINE, NAP_NANOS, START_DEADLINE, Worker, all_idle, entries,
    nap_cluster_of, stages, textkit_job, wait_until,
};
use crate::{Run, assert_same_counts, counts_of, path, read_output, run_client, word_counts};

/// How long a whole job may take here before a test gives up on it.
const JOB_DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Job status helpers

/// One attempt record of `job status --json`'s `tasks`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    stage: u64,
    partition: u64,
    attempt: u64,
    worker: String,
    state: String,
    error: String,
}

/// The attempt records of a job status, in the order listed.
fn attempts_of(status: &Value) -> Vec<Attempt> {
    status["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks list: {status:#}"))
        .iter()
        .map(|t| Attempt {
            stage: t["stage"].as_u64().unwrap(),
            partition: t["partition"].as_u64().unwrap(),
            attempt: t["attempt"].as_u64().unwrap(),
            worker: t["worker_id"].as_str().unwrap().to_owned(),
            state: t["state"].as_str().unwrap().to_owned(),
            error: t["error"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// The attempts of each `(stage, partition)`, by attempt number.
fn by_task(attempts: &[Attempt]) -> BTreeMap<(u64, u64), Vec<Attempt>> {
    let mut tasks: BTreeMap<(u64, u64), Vec<Attempt>> = BTreeMap::new();
    for a in attempts {
        tasks
            .entry((a.stage, a.partition))
            .or_default()
            .push(a.clone());
    }
    for list in tasks.values_mut() {
        list.sort_by_key(|a| a.attempt);
    }
    tasks
}

fn ended(status: &Value) -> bool {
    ["succeeded", "failed", "cancelled"].contains(&status["state"].as_str().unwrap_or_default())
}

/// Polls job `id` until `accept` takes its status; panics if the job ends first (what is waited
/// for must happen mid-job) or the deadline passes.
fn wait_for_status(
    cluster: &Cluster,
    id: &str,
    what: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, START_DEADLINE, || {
        let status = cluster.status(id);
        if accept(&status) {
            return Ok(status);
        }
        assert!(!ended(&status), "the job ended before {what}: {status:#}");
        Err(format!("{status:#}"))
    })
}

/// Polls job `id` until it ends; its final status.
fn wait_for_end(cluster: &Cluster, id: &str) -> Value {
    wait_until("the job's end", JOB_DEADLINE, || {
        let status = cluster.status(id);
        if ended(&status) {
            Ok(status)
        } else {
            Err(format!("{status:#}"))
        }
    })
}

/// Asserts that a word count over `text` succeeded exactly: its output holds `text`'s word counts,
/// its counters add up ([`assert_consistent_counts`]) and every task succeeded
/// ([`assert_every_task_succeeded`]).
fn assert_exact_wordcount(
    status: &Value,
    out: &Path,
    text: &str,
    tasks: [u64; 2],
    exactly_once: bool,
) {
    assert_eq!(status["state"], "succeeded", "{status:#}");
    let want = word_counts(text.as_bytes());
    assert_same_counts(&counts_of(read_output(out)), &want);
    assert_consistent_counts(status, tasks, want.len());
    assert_every_task_succeeded(status, tasks, exactly_once);
}

fn stage_u64(status: &Value, stage: usize, field: &str) -> u64 {
    stages(status)[stage][field]
        .as_u64()
        .unwrap_or_else(|| panic!("stage {stage} has no {field}: {status:#}"))
}

/// Asserts a finished two-stage job's counters: every task done, none running, and the shuffle
/// neither lost nor made records (what the map stage's kept results wrote is what the reduce
/// stage's read), the reduce stage writing `records_out` records.
fn assert_consistent_counts(status: &Value, tasks: [u64; 2], records_out: usize) {
    for (stage, total) in tasks.into_iter().enumerate() {
        assert_eq!(stage_u64(status, stage, "tasks_total"), total, "{status:#}");
        assert_eq!(stage_u64(status, stage, "tasks_done"), total, "{status:#}");
        assert_eq!(stage_u64(status, stage, "tasks_running"), 0, "{status:#}");
    }
    assert_eq!(
        stage_u64(status, 0, "records_out"),
        stage_u64(status, 1, "records_in"),
        "the shuffle lost or made records: {status:#}"
    );
    assert_eq!(
        stage_u64(status, 1, "records_out"),
        records_out as u64,
        "{status:#}"
    );
}

/// Asserts every task of a finished job succeeded: at least once, or, when `exactly_once`, once
/// (a task whose output was lost with its worker succeeded once more).
fn assert_every_task_succeeded(status: &Value, tasks: [u64; 2], exactly_once: bool) {
    let by = by_task(&attempts_of(status));
    for (stage, total) in tasks.into_iter().enumerate() {
        for partition in 0..total {
            let attempts = by
                .get(&(stage as u64, partition))
                .cloned()
                .unwrap_or_default();
            let won = attempts.iter().filter(|a| a.state == "succeeded").count();
            assert!(
                if exactly_once { won == 1 } else { won >= 1 },
                "task {stage}.{partition} has {won} succeeded attempts: {attempts:#?}\n{status:#}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// `lines` lines of 24 words `w00`..`w39` each, every line as long as the others (so a split of
/// one line's length holds exactly one line), from `seed`.
fn word_lines(lines: usize, seed: u64) -> String {
    let mut rng = Rng(seed.max(1));
    let mut text = String::new();
    for _ in 0..lines {
        let words: Vec<String> = (0..24).map(|_| format!("w{:02}", rng.below(40))).collect();
        text.push_str(&words.join(" "));
        text.push('\n');
    }
    text
}

/// The job file of a word count over `input` (lines of `line_len` bytes, one map task each) whose
/// two stages both nap: each map task naps, then splits its line into words; each of the
/// `partitions` reduce tasks sums its words' counts, then naps. Writes to `output`.
fn napping_wordcount_job(
    name: &str,
    input: &Path,
    line_len: usize,
    partitions: u32,
    output: &Path,
) -> String {
    format!(
        "name = {name:?}\n[input]\npath = {:?}\nsplit_size = {line_len}\n\
         [[step]]\nmap = \"nap/nap\"\n\
         [[step]]\nflat_map = \"wordcount/split_words\"\n\
         [[step]]\nreduce = \"wordcount/sum\"\n\
         [[step]]\nmap = \"nap/nap\"\n\
         [output]\npath = {:?}\npartitions = {partitions}\n",
        path(input),
        path(output)
    )
}

/// Writes `text` and a [`napping_wordcount_job`] over it into the cluster's directory: the job
/// file and its output directory.
fn write_napping_wordcount(
    cluster: &Cluster,
    name: &str,
    text: &str,
    partitions: u32,
) -> (PathBuf, PathBuf) {
    let line_len = text.find('\n').unwrap() + 1;
    let input = cluster.write(&format!("{name}.txt"), text);
    let out = cluster.path(&format!("results/{name}"));
    let job = cluster.write(
        &format!("{name}.toml"),
        napping_wordcount_job(name, &input, line_len, partitions, &out),
    );
    (job, out)
}

fn worker_index(cluster: &Cluster, id: &str) -> usize {
    cluster
        .workers()
        .iter()
        .position(|w| w.id == id)
        .unwrap_or_else(|| panic!("no worker {id} in {:?}", cluster.workers()))
}

// ---------------------------------------------------------------------------------------------
// 1. A guest trapping on one record, retried up to `[retry] max_attempts`

#[test]
fn a_udf_trapping_on_one_record_fails_the_job_after_max_attempts_and_leaves_no_output() {
    let cluster = Cluster::start(2);
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    cluster.register("textkit", weft_examples::TEXTKIT_RUST);
    let input = cluster.write("boom.txt", "fine\nalso fine\nboom\nnever reached\n");
    std::fs::create_dir_all(cluster.path("results")).unwrap();
    let out = cluster.path("results/boom-out");
    let job = cluster.write(
        "boom.toml",
        textkit_job("boom", &input, "panic_on_boom", &out) + "[retry]\nmax_attempts = 3\n",
    );
    let id = cluster.submit(&job, &[]);
    let status = wait_for_end(&cluster, &id);
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

    // The one map task ran three times, attempts 0, 1 and 2, each failing with the guest's panic;
    // nothing else ran (the reduce stage never started).
    let attempts = attempts_of(&status);
    let numbers: Vec<(u64, u64, u64)> = attempts
        .iter()
        .map(|a| (a.stage, a.partition, a.attempt))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(numbers, [(0, 0, 0), (0, 0, 1), (0, 0, 2)], "{status:#}");
    assert_eq!(attempts.len(), 3, "{status:#}");
    for a in &attempts {
        assert_eq!(a.state, "failed", "{a:#?}");
        assert!(a.error.contains("boom panic"), "{a:#?}");
    }
    assert_eq!(stage_u64(&status, 0, "tasks_failed"), 3, "{status:#}");
    assert_eq!(stage_u64(&status, 0, "tasks_done"), 0, "{status:#}");
    assert_eq!(stage_u64(&status, 1, "tasks_done"), 0, "{status:#}");

    // No output, and nothing beside where it would have been (no `.boom-out.weft-staging-*`).
    assert!(!out.exists(), "{} exists", out.display());
    let left = entries(&cluster.path("results"));
    assert!(left.is_empty(), "left beside the output: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Two workers killed one after the other

#[test]
fn two_workers_killed_one_after_the_other_and_the_job_is_exact() {
    let mut cluster = nap_cluster_of(3);
    // Six map tasks for six slots, then eight reduce tasks: more than the slots left after the
    // kills, so some start only after the second one and need every map output.
    let text = word_lines(6, 2);
    let (job, out) = write_napping_wordcount(&cluster, "twice", &text, 8);
    let id = cluster.submit(&job, &[]);

    wait_for_status(&cluster, &id, "six map tasks running", |s| {
        stages(s)[0]["tasks_running"] == 6
    });
    let first = cluster.kill_worker(0);
    // The job moves on: its map stage done (the first's two tasks again, elsewhere), the reduce
    // stage started. Then a second worker dies, holding map output the reduce stage needs.
    let moved_on = wait_for_status(&cluster, &id, "the reduce stage running", |s| {
        stages(s)[0]["tasks_done"] == 6 && stages(s)[1]["tasks_running"].as_u64() > Some(0)
    });
    let second = cluster.kill_worker(1);
    let survivor = cluster.workers()[2].clone();
    let status = wait_for_end(&cluster, &id);
    assert_exact_wordcount(&status, &out, &text, [6, 8], false);

    let attempts = attempts_of(&status);
    // The first worker's two map attempts were lost with it, and ran again elsewhere.
    let on_first: Vec<&Attempt> = attempts.iter().filter(|a| a.worker == first.id).collect();
    assert_eq!(on_first.len(), 2, "{status:#}");
    for a in &on_first {
        assert_eq!((a.stage, a.state.as_str()), (0, "failed"), "{a:#?}");
        assert!(
            a.error
                .contains(&format!("worker {} at {} was lost", first.id, first.url)),
            "{a:#?}"
        );
    }
    // When the second died, the map output was on it and on the survivor: in the end every map
    // task's kept output, and every reduce task's, is the survivor's.
    let second_had_maps = attempts_of(&moved_on)
        .iter()
        .any(|a| a.stage == 0 && a.state == "succeeded" && a.worker == second.id);
    assert!(second_had_maps, "{moved_on:#}");
    let by = by_task(&attempts);
    for ((stage, partition), list) in &by {
        let last = list.iter().rev().find(|a| a.state == "succeeded").unwrap();
        assert_eq!(
            last.worker, survivor.id,
            "task {stage}.{partition}'s kept attempt is not the survivor's: {list:#?}"
        );
    }
    // The two dead workers are gone from the cluster.
    wait_until("only the survivor listed", HEARTBEAT_DEADLINE, || {
        let workers = cluster.cluster_workers();
        let ids: Vec<&str> = workers
            .iter()
            .map(|w| w["worker_id"].as_str().unwrap())
            .collect();
        if ids == [survivor.id.as_str()] {
            Ok(())
        } else {
            Err(format!("{workers:#?}"))
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 3. The worker holding finished map output killed during the reduce stage

#[test]
fn killing_the_holder_of_finished_map_output_mid_reduce_reruns_only_its_map_tasks() {
    let mut cluster = nap_cluster_of(3);
    // Six map tasks for six slots (two per worker), then eight reduce tasks: more than the slots,
    // so some start after the kill and need every map output.
    let text = word_lines(6, 3);
    let (job, out) = write_napping_wordcount(&cluster, "holder", &text, 8);
    let id = cluster.submit(&job, &[]);

    let before = wait_for_status(&cluster, &id, "the reduce stage running", |s| {
        stages(s)[0]["tasks_done"] == 6 && stages(s)[1]["tasks_running"].as_u64() > Some(0)
    });
    // Every map task ran once; the worker holding the most map output dies.
    let maps: Vec<Attempt> = attempts_of(&before)
        .into_iter()
        .filter(|a| a.stage == 0)
        .collect();
    assert_eq!(maps.len(), 6, "{before:#}");
    assert!(
        maps.iter()
            .all(|a| a.state == "succeeded" && a.attempt == 0),
        "{before:#}"
    );
    let mut held: HashMap<&str, usize> = HashMap::new();
    for a in &maps {
        *held.entry(a.worker.as_str()).or_default() += 1;
    }
    let (victim_id, _) = held.iter().max_by_key(|(id, n)| (**n, *id)).unwrap();
    let victim = cluster.kill_worker(worker_index(&cluster, victim_id));

    let status = wait_for_end(&cluster, &id);
    assert_exact_wordcount(&status, &out, &text, [6, 8], false);

    // Only the map tasks whose output was on the dead worker ran again, each as a new attempt
    // elsewhere; the others kept their one attempt.
    let by = by_task(&attempts_of(&status));
    let mut rerun = 0;
    for first in &maps {
        let list = &by[&(0, first.partition)];
        assert_eq!(&list[0], first, "{list:#?}");
        if first.worker == victim.id {
            rerun += 1;
            assert!(
                list.len() >= 2,
                "map task {} did not run again: {list:#?}",
                first.partition
            );
            for later in &list[1..] {
                assert!(later.attempt > 0 && later.worker != victim.id, "{list:#?}");
            }
            assert!(
                list[1..].iter().any(|a| a.state == "succeeded"),
                "{list:#?}"
            );
        } else {
            assert_eq!(
                list.len(),
                1,
                "map task {} ran again: {list:#?}",
                first.partition
            );
        }
    }
    assert_eq!(rerun, held[victim.id.as_str()]);
    assert!((1..6).contains(&rerun), "{held:?}");
    // No reduce task's kept attempt is the dead worker's.
    for ((stage, partition), list) in by.iter().filter(|((stage, _), _)| *stage == 1) {
        let kept = list.iter().find(|a| a.state == "succeeded").unwrap();
        assert_ne!(
            kept.worker, victim.id,
            "task {stage}.{partition}: {list:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Speculation with a worker slowed by SIGSTOP/SIGCONT

/// A worker process slowed from a thread: stopped `stopped` out of every `stopped + running`.
/// Dropping it stops the cycle and leaves the process running.
struct Slowdown {
    pid: u32,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Slowdown {
    fn start(pid: u32, stopped: Duration, running: Duration) -> Slowdown {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                send_signal(pid, "STOP");
                std::thread::sleep(stopped);
                send_signal(pid, "CONT");
                std::thread::sleep(running);
            }
        });
        Slowdown {
            pid,
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Slowdown {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        send_signal(self.pid, "CONT");
    }
}

/// Rounds of `textkit/burn` per record of the speculation tests: about 0.25 s of one core.
const SPECULATION_ROUNDS: u64 = 75_000_000;

/// Map tasks of the speculation tests' job: six for the healthy workers' four slots (two waves),
/// two for the slowed worker's slots.
const SPECULATION_TASKS: u64 = 8;

/// The speculation tests' set-up: three workers and a long worker timeout (the slowed worker is
/// slow, never lost), `textkit` registered, and an input of [`SPECULATION_TASKS`] lines of about
/// [`SPECULATION_ROUNDS`] rounds each, one map task per line. Returns the cluster and a job
/// `burn/NAME` writing its output to `results/NAME`, with `[retry] speculation` set as asked,
/// and the expected output of every such job.
fn speculation_cluster() -> (Cluster, PathBuf, usize, HashMap<Vec<u8>, Vec<u8>>) {
    let cluster = Cluster::start_with_env(3, &[], &["--worker-timeout", "60s"], &[]);
    cluster.register("textkit", weft_examples::TEXTKIT_RUST);
    let lines: Vec<String> = (0..SPECULATION_TASKS)
        .map(|i| format!("{:015}", SPECULATION_ROUNDS + i))
        .collect();
    let input = cluster.write("rounds.txt", lines.join("\n") + "\n");
    // Keys are `PATH:OFFSET`; `burn` passes each record through.
    let mut want: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut offset = 0;
    for line in &lines {
        want.insert(
            format!("{}:{offset}", path(&input)).into_bytes(),
            line.as_bytes().to_vec(),
        );
        offset += line.len() + 1;
    }
    (cluster, input, lines[0].len() + 1, want)
}

/// Runs a `textkit/burn` job over `input` (a map task per line of `line_len` bytes) with
/// `[retry] speculation` as asked, to its end; checks its output is `want`, and returns its final
/// status and how long it ran (from its start to its end, as the scheduler timed them).
fn run_burn_job(
    cluster: &Cluster,
    input: &Path,
    line_len: usize,
    name: &str,
    speculation: bool,
    want: &HashMap<Vec<u8>, Vec<u8>>,
) -> (Value, Duration) {
    let out = cluster.path(&format!("results/{name}"));
    let file = cluster.write(
        &format!("{name}.toml"),
        format!(
            "name = {name:?}\n[input]\npath = {:?}\nsplit_size = {line_len}\n[[step]]\n\
             map = \"textkit/burn\"\n[output]\npath = {:?}\n[retry]\n\
             speculation = {speculation}\n",
            path(input),
            path(&out)
        ),
    );
    let id = cluster.submit(&file, &[]);
    let status = wait_for_end(cluster, &id);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(&read_output(&out), want, "{name}");
    let took = Duration::from_millis(
        status["finished_ms"].as_u64().unwrap() - status["started_ms"].as_u64().unwrap(),
    );
    // The next job starts on an idle cluster (the slowed worker's killed copy ended).
    wait_until("every worker idle", HEARTBEAT_DEADLINE, || {
        all_idle(&cluster.cluster_workers())
    });
    (status, took)
}

/// The slowed worker's cycle: stopped 900 ms of every second.
fn slow_down(cluster: &Cluster, worker: usize) -> Slowdown {
    Slowdown::start(
        cluster.worker_pid(worker),
        Duration::from_millis(900),
        Duration::from_millis(100),
    )
}

/// Whether every speculated task of a finished job (one with an attempt past 0: no attempt of the
/// speculation test's jobs fails) lists both attempts: the copy, succeeded on a worker other than
/// `slowed`, and the attempt it beat, killed (`cancelled`) on `slowed`. Else what is missing.
fn both_attempts_listed(status: &Value, slowed: &str) -> Result<(), String> {
    let by = by_task(&attempts_of(status));
    let speculated: Vec<&Vec<Attempt>> = by
        .values()
        .filter(|list| list.iter().any(|a| a.attempt > 0))
        .collect();
    if speculated.is_empty() {
        return Err(format!("no speculative attempt: {status:#}"));
    }
    for list in speculated {
        let copy_won = list
            .iter()
            .any(|a| a.attempt > 0 && a.worker != slowed && a.state == "succeeded");
        let beaten = list
            .iter()
            .any(|a| a.attempt == 0 && a.worker == slowed && a.state == "cancelled");
        if !(list.len() == 2 && copy_won && beaten) {
            return Err(format!("not a copy that beat its original: {list:#?}"));
        }
    }
    Ok(())
}

#[test]
fn speculation_outruns_a_slowed_worker_and_the_answer_stays_exact() {
    let (cluster, input, line_len, want) = speculation_cluster();
    let slowed = cluster.workers()[0].clone();
    let _slowdown = slow_down(&cluster, 0);
    let mut times: Vec<(bool, Duration)> = Vec::new();
    for (round, speculation) in [false, true, false, true].into_iter().enumerate() {
        let name = format!("burn-{round}-{}", if speculation { "on" } else { "off" });
        let (mut status, took) =
            run_burn_job(&cluster, &input, line_len, &name, speculation, &want);
        eprintln!(
            "speculation {}: {:.2} s",
            if speculation { "on " } else { "off" },
            took.as_secs_f64()
        );
        times.push((speculation, took));

        if speculation {
            // A straggler on the slowed worker got a second attempt on another worker, which won;
            // the attempt it beat was killed, and is listed too (its report, or, unheard, as
            // killed shortly after the job's end).
            let id = status["job_id"].as_str().unwrap().to_owned();
            status = wait_until(
                "both attempts of each speculated task listed",
                HEARTBEAT_DEADLINE,
                || {
                    let status = cluster.status(&id);
                    both_attempts_listed(&status, &slowed.id).map(|()| status)
                },
            );
        }
        let attempts = attempts_of(&status);
        assert!(attempts.iter().all(|a| a.state != "failed"), "{status:#}");
        let by = by_task(&attempts);
        assert_eq!(by.len() as u64, SPECULATION_TASKS, "{status:#}");
        if !speculation {
            // Each task ran once, the slowed worker's too.
            assert!(
                by.values()
                    .all(|list| list.len() == 1 && list[0].attempt == 0),
                "{status:#}"
            );
            assert!(
                attempts.iter().any(|a| a.worker == slowed.id),
                "the slowed worker ran nothing: {status:#}"
            );
        }
        // The job's usage counts every attempt listed, the beaten ones too.
        assert_eq!(
            status["usage"]["attempts"].as_u64(),
            Some(attempts.len() as u64),
            "{status:#}"
        );
    }
    let total = |on: bool| -> Duration {
        times
            .iter()
            .filter(|(s, _)| *s == on)
            .map(|(_, t)| *t)
            .sum()
    };
    eprintln!(
        "speculation off: {:.2} s in all, on: {:.2} s in all",
        total(false).as_secs_f64(),
        total(true).as_secs_f64()
    );
    assert!(total(true) < total(false), "{times:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. A network partition, with Linux network namespaces

/// The prefix of this test's network namespaces; the process id follows it.
const NETNS_PREFIX: &str = "weftrec-";

/// The subnet of the partition test's hosts: the scheduler is `.1`, worker `i` is `.(10 + i)`.
const SUBNET: &str = "10.77.0";

/// Runs `ip ARGS`; its error, with what it printed, if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process may make network namespaces: root, with `ip` at hand.
fn can_make_namespaces() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?");
    if uid != "0" {
        return Err(format!("uid {uid}"));
    }
    ip(&["netns", "list"]).map_err(|e| format!("no usable `ip`: {e}"))
}

/// Deletes the namespaces an earlier run of this test left behind (killed before it could clean
/// up): those whose process is gone.
fn delete_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(NETNS_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A scheduler and workers each in a network namespace of its own (`weftrec-PID-s`,
/// `weftrec-PID-wN`), each with one veth whose other end is a port of a bridge in a namespace of
/// its own (`weftrec-PID-br`, ports `s` and `wN`): hosts on one LAN, and a worker's link is cut
/// by setting its bridge port down. Client commands run in the scheduler's namespace. Dropping it
/// kills every process and deletes every namespace (and with them the veths and the bridge).
struct NetLab {
    tag: String,
    dir: tempfile::TempDir,
    /// Every namespace made, the bridge's first.
    namespaces: Vec<String>,
    /// The scheduler first, then the workers.
    processes: Vec<Process>,
    scheduler: String,
    workers: Vec<Worker>,
    clients: AtomicUsize,
}

impl NetLab {
    fn start(workers: usize) -> NetLab {
        delete_stale_namespaces();
        let mut lab = NetLab {
            tag: format!("{NETNS_PREFIX}{}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
            namespaces: Vec::new(),
            processes: Vec::new(),
            scheduler: String::new(),
            workers: Vec::new(),
            clients: AtomicUsize::new(0),
        };
        for dir in ["logs", "clients", "results"] {
            std::fs::create_dir_all(lab.path(dir)).unwrap();
        }
        let bridge = lab.ns("br");
        lab.add_namespace(&bridge);
        lab.must(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        lab.must(&["-n", &bridge, "link", "set", "br0", "up"]);
        lab.add_host("s", 1);
        for i in 0..workers {
            lab.add_host(&format!("w{i}"), 10 + i);
        }

        let (ns, data) = (lab.ns("s"), lab.path("scheduler"));
        let listen = format!("{SUBNET}.1:0");
        lab.spawn(
            "scheduler",
            &ns,
            &[
                "scheduler",
                "--listen",
                &listen,
                "--heartbeat-interval",
                "200ms",
                "--worker-timeout",
                "2s",
                "--data-dir",
                path(&data),
            ],
        );
        lab.scheduler = lab.processes[0]
            .wait_for_line(START_DEADLINE, |line| {
                line.strip_prefix("weft scheduler listening on ")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            lab.scheduler,
            format!("http://{SUBNET}.1:{}", port(&lab.scheduler))
        );
        for i in 0..workers {
            let (ns, data) = (lab.ns(&format!("w{i}")), lab.path(&format!("worker-{i}")));
            let (listen, scheduler) = (format!("{SUBNET}.{}:0", 10 + i), lab.scheduler.clone());
            lab.spawn(
                &format!("worker-{i}"),
                &ns,
                &[
                    "worker",
                    "--scheduler",
                    &scheduler,
                    "--listen",
                    &listen,
                    "--slots",
                    "2",
                    "--data-dir",
                    path(&data),
                ],
            );
        }
        for i in 0..workers {
            let worker = lab.processes[i + 1]
                .wait_for_line(START_DEADLINE, |line| {
                    let (id, url) = line
                        .strip_prefix("weft worker ")?
                        .split_once(" listening on ")?;
                    Some(Worker {
                        id: id.to_owned(),
                        url: url.to_owned(),
                    })
                })
                .unwrap_or_else(|e| panic!("{e}"));
            // It advertises its own namespace's address, where the others reach it.
            assert_eq!(
                worker.url,
                format!("http://{SUBNET}.{}:{}", 10 + i, port(&worker.url)),
                "{worker:?}"
            );
            lab.workers.push(worker);
        }
        lab
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let file = self.path(name);
        std::fs::write(&file, bytes).unwrap();
        file
    }

    fn must(&self, args: &[&str]) {
        ip(args).unwrap_or_else(|e| panic!("{e}"));
    }

    fn add_namespace(&mut self, name: &str) {
        self.must(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
    }

    /// A host `name` at `SUBNET.n`: its namespace, and a veth from its `eth0` to the bridge's port
    /// `name`.
    fn add_host(&mut self, name: &str, n: usize) {
        let (ns, bridge) = (self.ns(name), self.ns("br"));
        self.add_namespace(&ns);
        self.must(&[
            "-n", &bridge, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        self.must(&["-n", &bridge, "link", "set", name, "master", "br0"]);
        self.must(&["-n", &bridge, "link", "set", name, "up"]);
        let address = format!("{SUBNET}.{n}/24");
        self.must(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
        self.must(&["-n", &ns, "link", "set", "eth0", "up"]);
        self.must(&["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// `ip netns exec NS weft ...`: `ip` enters the namespace and then becomes `weft`, so the
    /// child's pid is weft's and signals reach it.
    fn weft_in(ns: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_weft")])
            .env_remove("WEFT_HOME")
            .env_remove("WEFT_SCHEDULER")
            .env_remove("WEFT_CLUSTER_SECRET")
            .env_remove("WEFT_TOKEN");
        command
    }

    fn spawn(&mut self, name: &str, ns: &str, args: &[&str]) {
        let log = self.path(&format!("logs/{name}.log"));
        let mut command = NetLab::weft_in(ns);
        command.args(args).env("RUST_BACKTRACE", "1");
        let process = Process::spawn(name, command, &log)
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.processes.push(process);
    }

    /// Runs `weft --scheduler URL ARGS` in the scheduler's namespace, in the lab's directory.
    fn client(&self, args: &[&str]) -> Run {
        let n = self.clients.fetch_add(1, Ordering::Relaxed);
        let mut command = NetLab::weft_in(&self.ns("s"));
        command
            .arg("--scheduler")
            .arg(&self.scheduler)
            .args(args)
            .current_dir(self.dir.path())
            .env("WEFT_HOME", self.path("client-home"));
        run_client(command, &self.path(&format!("clients/{n}")), JOB_DEADLINE)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let run = self.client(&full);
        assert!(
            run.0.status.success(),
            "weft {full:?} failed:\n{}\n{}",
            run.stdout(),
            run.stderr()
        );
        run.json()
    }

    fn status(&self, id: &str) -> Value {
        let status = self.json(&["job", "status", id]);
        assert_eq!(status["job_id"], id, "{status:#}");
        status
    }

    fn cluster_workers(&self) -> Vec<Value> {
        self.json(&["cluster", "workers"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Polls job `id` until `accept` takes its status; panics if the job ends first.
    fn wait_for_status(&self, id: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        wait_until(what, START_DEADLINE, || {
            let status = self.status(id);
            if accept(&status) {
                return Ok(status);
            }
            assert!(!ended(&status), "the job ended before {what}: {status:#}");
            Err(format!("{status:#}"))
        })
    }

    fn wait_for_end(&self, id: &str) -> Value {
        wait_until("the job's end", JOB_DEADLINE, || {
            let status = self.status(id);
            if ended(&status) {
                Ok(status)
            } else {
                Err(format!("{status:#}"))
            }
        })
    }

    /// Sets worker `i`'s bridge port down (`false`) or up (`true`).
    fn link(&self, i: usize, up: bool) {
        let port = format!("w{i}");
        self.must(&[
            "-n",
            &self.ns("br"),
            "link",
            "set",
            &port,
            if up { "up" } else { "down" },
        ]);
    }

    fn log(&self, name: &str) -> String {
        self.processes
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no process named {name}"))
            .log()
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for process in &mut self.processes {
            process.kill();
        }
        if std::thread::panicking() {
            for process in &self.processes {
                eprintln!(
                    "===== {} ({}) =====\n{}",
                    process.name(),
                    process.log_path().display(),
                    process.log()
                );
            }
        }
        self.processes.clear();
        // The hosts' namespaces first (their veths go with them), the bridge's last.
        for ns in self.namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleaning up: {e}");
            }
        }
    }
}

/// The port of a URL `http://HOST:PORT`.
fn port(url: &str) -> &str {
    url.rsplit_once(':').map_or("", |(_, port)| port)
}

#[test]
fn a_worker_cut_off_the_network_is_lost_the_job_is_exact_and_it_rejoins() {
    if let Err(why) = can_make_namespaces() {
        eprintln!("skipped: needs root for network namespaces ({why})");
        return;
    }
    let lab = NetLab::start(3);
    let nap = lab.write(
        "nap.wasm",
        guest(WASI_IMPORTS, &napping_map("nap", NAP_NANOS)),
    );
    for (name, wasm) in [
        ("nap", path(&nap)),
        ("wordcount", weft_examples::WORDCOUNT_RUST),
    ] {
        let run = lab.client(&["module", "register", wasm, "--name", name]);
        assert!(run.0.status.success(), "{}", run.stderr());
    }
    let text = word_lines(6, 5);
    let line_len = text.find('\n').unwrap() + 1;
    let input = lab.write("words.txt", &text);
    let out = lab.path("results/words");
    let job = lab.write(
        "words.toml",
        napping_wordcount_job("words", &input, line_len, 6, &out),
    );
    let run = lab.client(&["job", "submit", path(&job)]);
    assert!(run.0.status.success(), "{}", run.stderr());
    let id = run.stdout().trim().to_owned();

    // Cut worker 0 off while its two map tasks run: they end during the partition, and their
    // reports cannot get through.
    lab.wait_for_status(&id, "six map tasks running", |s| {
        stages(s)[0]["tasks_running"] == 6
    });
    let cut = lab.workers[0].clone();
    lab.link(0, false);
    let cut_at = Instant::now();
    // After the worker timeout it is lost; its tasks run again on the others, and the job moves
    // on to its reduce stage, rather than failing.
    let moved_on = lab.wait_for_status(
        &id,
        "the reduce stage running without the cut worker",
        |s| stages(s)[0]["tasks_done"] == 6 && stages(s)[1]["tasks_running"].as_u64() > Some(0),
    );
    let listed: Vec<String> = lab
        .cluster_workers()
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!listed.contains(&cut.id), "{listed:?}");
    let lost: Vec<Attempt> = attempts_of(&moved_on)
        .into_iter()
        .filter(|a| a.worker == cut.id)
        .collect();
    assert_eq!(lost.len(), 2, "{moved_on:#}");
    for a in &lost {
        assert_eq!(
            (a.stage, a.attempt, a.state.as_str()),
            (0, 0, "failed"),
            "{a:#?}"
        );
        assert!(a.error.contains("was lost"), "{a:#?}");
    }

    // The link is back while the job runs: the worker's late reports (of attempts the job gave
    // up) arrive, and must change nothing; it registers again.
    lab.link(0, true);
    eprintln!("the link was down {:.2} s", cut_at.elapsed().as_secs_f64());
    let status = lab.wait_for_end(&id);
    assert_exact_wordcount(&status, &out, &text, [6, 6], true);
    let by = by_task(&attempts_of(&status));
    for a in &lost {
        // The attempt given up stays failed; the task's kept attempt is a later one.
        let list = &by[&(a.stage, a.partition)];
        assert!(list.contains(a), "{list:#?}");
        let kept = list.iter().find(|a| a.state == "succeeded").unwrap();
        assert!(kept.attempt > 0, "{list:#?}");
    }

    // It is back, idle (its late reports sent), listed at the same address.
    wait_until("the cut worker back and idle", HEARTBEAT_DEADLINE, || {
        let workers = lab.cluster_workers();
        let addresses: Vec<&str> = workers
            .iter()
            .map(|w| w["address"].as_str().unwrap())
            .collect();
        if workers.len() != 3 || !addresses.contains(&cut.url.as_str()) {
            return Err(format!("{workers:#?}"));
        }
        all_idle(&workers)
    });
    // Its late reports changed nothing: the job's status and attempts are as they were.
    let later = lab.status(&id);
    assert_eq!(
        later, status,
        "the status changed after the worker came back"
    );
    let log = lab.log("worker-0");
    eprintln!(
        "worker-0 after the partition:\n{}",
        log.lines()
            .filter(|l| l.contains("WARN") || l.contains("INFO"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // And it takes work again: a second job runs exactly, on every worker.
    let out2 = lab.path("results/again");
    let job2 = lab.write(
        "again.toml",
        napping_wordcount_job("again", &input, line_len, 6, &out2),
    );
    let run = lab.client(&["job", "submit", path(&job2)]);
    assert!(run.0.status.success(), "{}", run.stderr());
    let id2 = run.stdout().trim().to_owned();
    let status = lab.wait_for_end(&id2);
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_same_counts(
        &counts_of(read_output(&out2)),
        &word_counts(text.as_bytes()),
    );
    let workers_used: std::collections::BTreeSet<String> =
        attempts_of(&status).into_iter().map(|a| a.worker).collect();
    assert_eq!(workers_used.len(), 3, "{status:#}");
}
