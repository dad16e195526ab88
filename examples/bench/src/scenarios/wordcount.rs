//! Word count over the Zipf corpus: Weft embedded (`weft run`, a whole process from start to
//! committed output) against Spark DataFrame and RDD (`spark-submit`, whole processes), against the
//! tuned native count of the native peer (`tuned`: every core, the machine's limit) if given,
//! against the runner's own hand-written native count on every core (the reference), and the
//! peer's single-core program if given. Targets 1 and 3.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::measure::{median, run_timed, secs, warm};
use crate::native::{Counts, check_counts, read_counts, word_count};
use crate::report::Report;
use crate::{Env, input};

/// The seed of the corpus: any fixed value; 42 as in the Spark peer's `gen.py`.
const SEED: u64 = 42;

/// The corpus of `--size` bytes, generated once.
pub fn corpus(env: &Env) -> Result<PathBuf> {
    let data = input(
        env,
        &format!("words_{}.txt", crate::size_name(env.size)),
        |path| {
            let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
            weft_datagen::zipf_words(env.size, SEED, &mut file)?;
            std::io::Write::flush(&mut file)?;
            Ok(())
        },
    )?;
    warm(&data)?;
    Ok(data)
}

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let mb = env.size / 1_000_000;
    let data = corpus(env)?;
    let out = env.work.join("out");
    std::fs::create_dir_all(&out)?;
    // One reduce task per worker, as Spark's RDD API defaults to (`spark.default.parallelism`), and
    // no split size: what a user's job file gets (issue 19 measures the default).
    let job = write_job(
        env,
        &data,
        &out.join("weft-wordcount"),
        env.threads as u32,
        Splits::Default,
    )?;

    let mut reference: Option<Counts> = None;
    let mut native = Vec::new();
    let mut peer = Vec::new();
    let mut tuned = Vec::new();
    let mut weft = Vec::new();
    let mut spark_df = Vec::new();
    let mut spark_rdd = Vec::new();
    for round in 1..=env.runs {
        eprintln!("[bench] wordcount round {round}/{}", env.runs);
        // The reference comes from our own native count; every contender is checked against it.
        let started = Instant::now();
        let counts = word_count(&data, &out.join("native.tsv"), env.threads)?;
        native.push(started.elapsed());
        match &reference {
            Some(r) => check_counts("native", &counts, r)?,
            None => reference = Some(counts),
        }
        let reference = reference.as_ref().context("no reference")?;

        if let Some(program) = &env.native_peer {
            let dest = out.join("native-peer.tsv");
            peer.push(run_timed(
                std::process::Command::new(program).arg(&data).arg(&dest),
            )?);
            check_counts("native peer", &read_counts(&dest)?, reference)?;
        }

        if let Some(program) = &env.tuned_peer {
            let dest = out.join("tuned-peer.tsv");
            tuned.push(run_timed(
                std::process::Command::new(program).arg(&data).arg(&dest),
            )?);
            check_counts("tuned native peer", &read_counts(&dest)?, reference)?;
        }

        let dest = out.join("weft-wordcount");
        weft.push(run_timed(
            env.weft()
                .arg("run")
                .arg(&job)
                .arg("--overwrite")
                .args(["--workers", &env.threads.to_string()]),
        )?);
        check_counts("weft", &read_counts(&dest)?, reference)?;

        if let Some(spark) = &env.spark {
            for (script, samples) in [("wc_df.py", &mut spark_df), ("wc_rdd.py", &mut spark_rdd)] {
                let dest = out.join(format!("spark-{script}"));
                samples.push(crate::spark::submit(env, spark, script, &data, &dest)?);
                check_counts(script, &read_counts(&dest)?, reference)?;
            }
        }
    }

    let words: u64 = reference.as_ref().map_or(0, |r| r.values().sum());
    let size = format!("{mb} MB, {words} words");
    let rate = |d: Duration| format!("{:.0} MB/s", env.size as f64 / 1e6 / secs(d));
    let threads = env.threads;
    let native = median(&native);
    let weft = median(&weft);
    report.row(
        "wordcount",
        format!("native, hand-written, {threads} threads"),
        format!("{:.2} s", secs(native)),
        format!("{size}; {}", rate(native)),
    );
    if !peer.is_empty() {
        let peer = median(&peer);
        report.row(
            "wordcount",
            "native peer program",
            format!("{:.2} s", secs(peer)),
            rate(peer),
        );
    }
    if !tuned.is_empty() {
        let tuned = median(&tuned);
        report.row(
            "wordcount",
            "tuned native peer, every core (the machine's limit)",
            format!("{:.2} s", secs(tuned)),
            rate(tuned),
        );
    }
    report.row(
        "wordcount",
        format!("weft run, embedded, {threads} workers"),
        format!("{:.2} s", secs(weft)),
        format!(
            "{}; whole process, output committed; {:.2}× the hand-written native",
            rate(weft),
            secs(weft) / secs(native)
        ),
    );
    if tuned.is_empty() {
        report.target(
            3,
            "word count: Weft / tuned native",
            "not run: no tuned native peer (--tuned-peer)",
            "≤ 1.5×",
            false,
        );
    } else {
        let ratio = secs(weft) / secs(median(&tuned));
        report.target(
            3,
            "word count: Weft / tuned native (every core)",
            format!("{ratio:.2}×"),
            "≤ 1.5×",
            ratio <= 1.5,
        );
    }
    if spark_df.is_empty() {
        report.target(
            1,
            "word count: Spark / Weft",
            "not run: the Spark peer is not set up",
            "DataFrame ≥ 8×, RDD ≥ 20×",
            false,
        );
        return Ok(());
    }
    let (df, rdd) = (median(&spark_df), median(&spark_rdd));
    report.row(
        "wordcount",
        format!("Spark DataFrame, local[{threads}]"),
        format!("{:.2} s", secs(df)),
        rate(df),
    );
    report.row(
        "wordcount",
        format!("Spark RDD + Python lambdas, local[{threads}]"),
        format!("{:.2} s", secs(rdd)),
        rate(rdd),
    );
    let (x_df, x_rdd) = (secs(df) / secs(weft), secs(rdd) / secs(weft));
    report.target(
        1,
        "word count: Spark DataFrame / Weft",
        format!("{x_df:.1}×"),
        "≥ 8×",
        x_df >= 8.0,
    );
    report.target(
        1,
        "word count: Spark RDD / Weft",
        format!("{x_rdd:.1}×"),
        "≥ 20×",
        x_rdd >= 20.0,
    );
    Ok(())
}

/// How the word-count job splits its input.
#[derive(Debug, Clone, Copy)]
pub enum Splits {
    /// At most Weft's default split size (at least 8 MiB), at least four per worker, and a multiple
    /// of the workers in number, so that no last, lonely task leaves cores idle: the speed
    /// scenarios.
    Balanced,
    /// Weft's default split size, as a job file that does not say.
    Default,
}

/// The word-count job over `data`, its reduce in `partitions` tasks, its input split as `splits`
/// says.
///
/// Balanced splits are sized by the file, not by the size asked for: a generated file ends at the
/// first line break past that size, and splits of exactly a share of the size asked for left a
/// last split of a few bytes, a ninth task on two workers.
pub fn write_job(
    env: &Env,
    data: &Path,
    output: &Path,
    partitions: u32,
    splits: Splits,
) -> Result<PathBuf> {
    write_job_with(env, data, output, partitions, splits, "wordcount")
}

/// As [`write_job`], with the steps' UDFs from the word-count module registered as `module`.
pub fn write_job_with(
    env: &Env,
    data: &Path,
    output: &Path,
    partitions: u32,
    splits: Splits,
    module: &str,
) -> Result<PathBuf> {
    let split_size = match splits {
        Splits::Default => String::new(),
        Splits::Balanced => {
            let threads = env.threads.max(1) as u64;
            let size = std::fs::metadata(data)
                .with_context(|| format!("cannot read the size of {}", data.display()))?
                .len();
            let splits = size
                .div_ceil(weft_scheduler::job::MAX_SPLIT_SIZE)
                .max(4 * threads)
                .next_multiple_of(threads);
            format!("split_size = \"{}B\"\n", size.div_ceil(splits).max(8 << 20))
        }
    };
    let job = format!(
        "name = \"wordcount\"\n\n[input]\npath = {data:?}\nformat = \"text\"\n{split_size}\n\
         [[step]]\nflat_map = \"{module}/split_words\"\n\n[[step]]\nreduce = \"{module}/sum\"\n\
         partitions = {partitions}\n\n[output]\npath = {output:?}\n",
        data = data.display().to_string(),
        output = output.display().to_string(),
    );
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("wordcount");
    let path = env.work.join(format!("{name}.toml"));
    std::fs::write(&path, job)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_a_multiple_of_the_workers_over_the_file_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        // A 1 GB corpus ends a few bytes past its size, at a line break; sparse, so no bytes written.
        let data = dir.path().join("words.txt");
        std::fs::File::create(&data)
            .unwrap()
            .set_len(1_000_000_068)
            .unwrap();
        let env = Env {
            runs: 1,
            size: 1_000_000_000,
            threads: 2,
            work: dir.path().to_owned(),
            weft: PathBuf::new(),
            wasm_dir: PathBuf::new(),
            home: PathBuf::new(),
            spark: None,
            native_peer: None,
            tuned_peer: None,
            shuffle_size: 0,
            memory_budget: 0,
        };
        let job = write_job(&env, &data, &dir.path().join("out"), 2, Splits::Balanced).unwrap();
        let text = std::fs::read_to_string(job).unwrap();
        let split: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("split_size = \""))
            .and_then(|v| v.strip_suffix("B\""))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no split_size in {text}"));
        assert_eq!(1_000_000_068u64.div_ceil(split), 8, "split {split}");
    }
}
