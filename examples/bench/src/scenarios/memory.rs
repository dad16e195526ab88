//! Bounded memory (target 6): a word count over text with millions of distinct words, on one
//! `weft worker` process with one slot and a small memory budget (`--memory`), so the reduce task's
//! shuffle input is several times the budget and the task must spill sorted runs to disk. The job
//! must still give the exact counts, and the worker's peak resident memory (`VmHWM`) must stay
//! within the budget plus a constant: the process itself, the guest's linear memory and the batches
//! in flight.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::measure::{peak_rss, run_timed, secs};
use crate::native::{check_counts, read_counts, word_count};
use crate::procs::Proc;
use crate::report::Report;
use crate::scenarios::wordcount::{Splits, write_job};
use crate::{Env, input};

/// Distinct words of the text for each 64 MiB of the worker's budget, each about three times, so
/// map-side combining barely shrinks the text: about 4.5 bytes of shuffle input per byte of budget.
const DISTINCT_PER_64_MIB: u64 = 7_000_000;
/// Occurrences of each distinct word, on average; 10 words to a line.
const WORDS_PER_DISTINCT: u64 = 3;
/// What the process may use beyond the budget, whatever the input size: its code and runtime
/// (~12 MiB idle), the guests' linear memories (a guest's memory holds a batch in and its output and
/// never shrinks), the map side's per-partition write buffers (4 MiB each), Arrow batches being
/// decoded, a merge's one batch per run, and the allocator's slack. The scenario runs twice, the
/// second time on twice the input, to show the peak does not follow the input.
const CONSTANT: u64 = 192 << 20;

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    // Twice the words (and distinct words) on the second run: a bounded reduce keeps the same peak.
    let mut peaks = Vec::new();
    for scale in [1, 2] {
        let (input_bytes, peak) = run_once(env, report, scale)?;
        peaks.push((input_bytes, peak));
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let budget = env.memory_budget;
    let (small, large) = (peaks[0], peaks[1]);
    report.target(
        6,
        "bounded memory: reduce input ≥ 4× budget, peak RSS",
        format!(
            "input {:.1}× / {:.1}× budget: peak {:.0} / {:.0} MiB",
            small.0 as f64 / budget as f64,
            large.0 as f64 / budget as f64,
            mib(small.1),
            mib(large.1)
        ),
        format!("≤ budget {:.0} + {:.0} MiB", mib(budget), mib(CONSTANT)),
        small.0 >= 4 * budget && small.1.max(large.1) <= budget + CONSTANT,
    );
    Ok(())
}

/// Writes `words` words drawn uniformly from `distinct` six-letter words (`aaaaaa`, `aaaaab`, ...;
/// at most 26⁶), ten to a line, one space apart, every line ending in `\n`: the shape every word
/// count here (Weft, Spark's `split(value, " ")`, the native count) splits alike. Deterministic.
pub fn distinct_words(path: &Path, distinct: u64, words: u64) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..words {
        // xorshift64*: a deterministic stream of word numbers below `distinct`.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let n = state.wrapping_mul(0x2545_F491_4F6C_DD1D) % distinct;
        let mut word = [b'a'; 6];
        let mut x = n;
        for letter in word.iter_mut().rev() {
            *letter = b'a' + (x % 26) as u8;
            x /= 26;
        }
        file.write_all(&word)?;
        file.write_all(if i % 10 == 9 || i + 1 == words {
            b"\n"
        } else {
            b" "
        })?;
    }
    Ok(file.flush()?)
}

/// One run over `scale` times the base text; returns the reduce stage's shuffle input and the
/// worker's peak RSS.
fn run_once(env: &Env, report: &mut Report, scale: u64) -> Result<(u64, u64)> {
    // The budget is at most 1 GiB (`main` checks), so this neither overflows nor runs out of
    // six-letter words.
    let distinct = scale * (env.memory_budget * DISTINCT_PER_64_MIB / (64 << 20)).max(1);
    let words = WORDS_PER_DISTINCT * distinct;
    let name = format!("distinct_words_{distinct}.txt");
    let data = input(env, &name, |path| distinct_words(path, distinct, words))?;
    let out = env.work.join("out");
    std::fs::create_dir_all(&out)?;
    let reference = word_count(&data, &out.join("distinct-native.tsv"), env.threads)?;
    let output = out.join(format!("weft-memory-x{scale}"));
    // One reduce task: all of the shuffle input goes through one grouper, against one budget. The
    // input is split at Weft's default size, as in a job file that sets none.
    let job = write_job(env, &data, &output, 1, Splits::Default)?;

    let home = env.work.join("memory-home");
    let _ = std::fs::remove_dir_all(&home);
    let scheduler = Proc::start(env, &home, &["scheduler", "--listen", "127.0.0.1:0"])?;
    let budget = env.memory_budget.to_string();
    let worker = Proc::start(
        env,
        &home,
        &[
            "worker",
            "--scheduler",
            &scheduler.url,
            "--listen",
            "127.0.0.1:0",
            "--slots",
            "1",
            "--memory",
            &budget,
        ],
    )?;
    // The modules go to the scheduler's registry, as a user would register them.
    run_timed(
        env.weft()
            .args(["--scheduler", &scheduler.url, "module", "register"])
            .arg(env.wasm("wordcount"))
            .args(["--name", "wordcount"]),
    )?;
    let baseline = peak_rss(worker.pid())?;
    let started = Instant::now();
    let status = std::process::Command::new(&env.weft)
        .env("WEFT_HOME", &home)
        .args([
            "--scheduler",
            &scheduler.url,
            "--json",
            "job",
            "submit",
            "--wait",
        ])
        .arg(&job)
        .arg("--overwrite")
        .output()
        .context("cannot run weft job submit")?;
    let elapsed = started.elapsed();
    if !status.status.success() {
        bail!(
            "the bounded-memory job failed:\n{}{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let peak = peak_rss(worker.pid())?;
    drop(worker);
    drop(scheduler);
    check_counts("bounded-memory job", &read_counts(&output)?, &reference)?;
    let json: serde_json::Value = serde_json::from_slice(&status.stdout)
        .context("weft job submit --json printed no status")?;
    let shuffle_in = json["stages"]
        .as_array()
        .and_then(|stages| stages.last())
        .and_then(|s| s["bytes_in"].as_u64())
        .context("no reduce stage in the job status")?;

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    report.row(
        "memory",
        format!("reduce over {:.0} MiB of shuffle input", mib(shuffle_in)),
        format!("{:.0} MiB peak", mib(peak)),
        format!(
            "budget {:.0} MiB (1 slot); {:.1}× the budget; idle worker {:.0} MiB; {:.1} s; {} distinct words",
            mib(env.memory_budget),
            shuffle_in as f64 / env.memory_budget as f64,
            mib(baseline),
            secs(elapsed),
            reference.len()
        ),
    );
    Ok((shuffle_in, peak))
}
