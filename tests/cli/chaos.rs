//! Chaos: a job of two shuffles — a word count, then a histogram of its counts (how many words
//! occur once, twice, …) — runs on a scheduler and three worker processes, and in each trial a
//! worker chosen at random is killed (SIGKILL: no goodbye, its shuffle files unreachable) at a
//! random moment of the job, and a replacement started. Every trial's output must equal the
//! histogram computed here from the input. Trials are seeded: a failure names its seed.
//!
//! `WEFT_CHAOS_TRIALS` (default 20) and `WEFT_CHAOS_SEED` set the run; `scripts/chaos.sh --trials N`
//! is the soak. The summary line gives trials, failures, and the median and worst recovery time
//! (from the kill to the job's end).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::{path, word_counts};

/// A small deterministic generator (xorshift64*), so a trial is replayed from its seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Text of `lines` lines of Zipf-like words (a few very common, many rare), from `seed`.
fn corpus(seed: u64, lines: usize) -> String {
    let mut rng = Rng::new(seed);
    let mut text = String::new();
    for _ in 0..lines {
        for w in 0..8 {
            // A word's number is the smallest of a few draws: small numbers are far more common.
            let n = (0..3).map(|_| rng.below(5_000)).min().unwrap_or(0);
            text.push_str(if w == 0 { "" } else { " " });
            text.push_str(&format!("w{n}"));
        }
        text.push('\n');
    }
    text
}

/// How many words occur how many times: the job's answer, computed without Weft.
fn histogram(text: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut histogram: HashMap<Vec<u8>, u64> = HashMap::new();
    for count in word_counts(text).values() {
        *histogram.entry(count.to_string().into_bytes()).or_default() += 1;
    }
    histogram
}

/// The committed output at `dir` as counts, or what is wrong with it.
fn output_counts(dir: &Path) -> Result<HashMap<Vec<u8>, u64>, String> {
    let mut counts = HashMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        names.push(name.clone());
        if !name.starts_with("part-") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = String::from_utf8_lossy(line);
            let (key, value) = text
                .split_once('\t')
                .ok_or_else(|| format!("{name}: no TAB in {text:?}"))?;
            let value: u64 = value
                .parse()
                .map_err(|_| format!("{name}: {value:?} is not a count"))?;
            if counts.insert(key.as_bytes().to_vec(), value).is_some() {
                return Err(format!("key {key:?} twice"));
            }
        }
    }
    names.sort();
    if !names.iter().any(|n| n == "_SUCCESS") {
        return Err(format!("no _SUCCESS: {names:?}"));
    }
    if let Some(stray) = names
        .iter()
        .find(|n| !(n.starts_with("part-") || *n == "_SUCCESS" || *n == "_WEFT"))
    {
        return Err(format!("{stray} in the output: {names:?}"));
    }
    Ok(counts)
}

fn job_file(input: &Path, output: &Path) -> String {
    format!(
        "name = \"chaos\"\n[input]\npath = {:?}\nsplit_size = \"48KiB\"\n\
         [[step]]\nflat_map = \"wordcount/split_words\"\n\
         [[step]]\nreduce = \"wordcount/sum\"\npartitions = 4\n\
         [[step]]\nmap = \"textkit/by_count\"\n\
         [[step]]\nreduce = \"wordcount/sum\"\npartitions = 3\n\
         [output]\npath = {:?}\npartitions = 2\n",
        path(input),
        path(output)
    )
}

/// Waits for job `id` to end; its final status.
fn wait_for_end(
    cluster: &Cluster,
    id: &str,
    deadline: Duration,
) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    loop {
        let status = cluster.status(id);
        let state = status["state"].as_str().unwrap_or_default().to_owned();
        if ["succeeded", "failed", "cancelled"].contains(&state.as_str()) {
            return Ok(status);
        }
        if started.elapsed() > deadline {
            return Err(format!("still {state} after {deadline:?}: {status:#}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn jobs_finish_exactly_while_workers_are_killed() {
    let trials = env_number("WEFT_CHAOS_TRIALS", 20);
    let seed = env_number("WEFT_CHAOS_SEED", 0x5eed);
    let mut cluster = Cluster::start(3);
    cluster.register("wordcount", weft_examples::WORDCOUNT_RUST);
    cluster.register("textkit", weft_examples::TEXTKIT_RUST);
    let text = corpus(seed, 12_000);
    let input = cluster.write("corpus.txt", &text);
    let want = histogram(text.as_bytes());

    // The job's time on a healthy cluster: the kills fall within it.
    let calm_out = cluster.path("out-calm");
    let job = cluster.write("calm.toml", job_file(&input, &calm_out));
    let started = Instant::now();
    let id = cluster.submit(&job, &[]);
    let status = wait_for_end(&cluster, &id, Duration::from_secs(120)).unwrap();
    let calm = started.elapsed();
    assert_eq!(status["state"], "succeeded", "{status:#}");
    assert_eq!(output_counts(&calm_out), Ok(want.clone()));
    assert_eq!(status["stages"].as_array().map(Vec::len), Some(3));

    let mut rng = Rng::new(seed);
    let mut live: Vec<usize> = (0..3).collect();
    let mut failures = Vec::new();
    let mut recoveries = Vec::new();
    for trial in 0..trials {
        let trial_seed = rng.next();
        let mut trial_rng = Rng::new(trial_seed);
        let out = cluster.path(&format!("out-{trial}"));
        let job = cluster.write(&format!("trial-{trial}.toml"), job_file(&input, &out));
        let id = cluster.submit(&job, &[]);
        let delay = Duration::from_millis(trial_rng.below(calm.as_millis() as u64 * 4 / 5));
        std::thread::sleep(delay);
        let victim = live.remove(trial_rng.below(live.len() as u64) as usize);
        let killed = Instant::now();
        let dead = cluster.kill_worker(victim);
        cluster.add_worker();
        live.push(cluster.workers().len() - 1);
        let outcome = wait_for_end(&cluster, &id, Duration::from_secs(120)).and_then(|status| {
            if status["state"] != "succeeded" {
                return Err(format!("the job {}: {}", status["state"], status["error"]));
            }
            let got = output_counts(&out)?;
            if got != want {
                return Err(format!(
                    "the histogram differs: {} keys, {} expected",
                    got.len(),
                    want.len()
                ));
            }
            Ok(())
        });
        let recovery = killed.elapsed();
        eprintln!(
            "chaos trial {trial} (seed {trial_seed:#x}): killed {} after {delay:?}; {} in {recovery:?}",
            dead.id,
            if outcome.is_ok() { "exact" } else { "FAILED" }
        );
        match outcome {
            Ok(()) => recoveries.push(recovery),
            Err(why) => failures.push(format!("trial {trial} (seed {trial_seed:#x}): {why}")),
        }
    }
    recoveries.sort();
    let median = recoveries
        .get(recoveries.len() / 2)
        .copied()
        .unwrap_or_default();
    let worst = recoveries.last().copied().unwrap_or_default();
    eprintln!(
        "chaos: {trials} trials, {} failures; the job alone {:.2} s; from the kill to the job's \
         end: median {:.2} s, worst {:.2} s",
        failures.len(),
        calm.as_secs_f64(),
        median.as_secs_f64(),
        worst.as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
