//! Fixed costs (target 4): a tiny job (10 records) from start to result, as a whole `weft run`
//! process and submitted to an embedded cluster that is already up; a warm task launch (a task's
//! guests instantiated from a module compiled before); and a module's first compile against loading
//! it from the on-disk cache, which is what a restarted worker does instead of compiling.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_host::{Engine, GuestModule, SandboxLimits, UdfKind};
use weft_local::{LocalCluster, LocalClusterConfig};
use weft_scheduler::Tenant;
use weft_task::StepRef;
use weft_worker::Pipeline;

use crate::embedded::{registry, runtime, submission};
use crate::measure::{median, run_timed, secs};
use crate::native::{check_counts, read_counts, word_count};
use crate::report::Report;
use crate::{Env, input};

/// Launches timed per figure: enough for a stable median of sub-millisecond work.
const LAUNCHES: usize = 1000;

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let data = input(env, "tiny.txt", |path| {
        // A line is at most 15 words of at most 11 bytes: 2000 bytes hold more than 10 lines.
        let mut text = Vec::new();
        weft_datagen::zipf_words(2000, 7, &mut text)?;
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').take(10).collect();
        Ok(std::fs::write(path, lines.concat())?)
    })?;
    let out = env.work.join("out");
    std::fs::create_dir_all(&out)?;
    let reference = word_count(&data, &out.join("tiny-native.tsv"), 1)?;
    let job = env.work.join("tiny.toml");
    let output = out.join("weft-tiny");
    std::fs::write(
        &job,
        format!(
            "name = \"tiny\"\n[input]\npath = {:?}\nformat = \"text\"\n[[step]]\n\
             flat_map = \"wordcount/split_words\"\n[[step]]\nreduce = \"wordcount/sum\"\n\
             [output]\npath = {:?}\n",
            data.display().to_string(),
            output.display().to_string()
        ),
    )?;
    let runs = env.runs.max(10);

    // The whole process, as a user runs it: start, plan, run, commit, exit.
    let mut process = Vec::new();
    for _ in 0..runs {
        process.push(run_timed(
            env.weft()
                .arg("run")
                .arg(&job)
                .arg("--overwrite")
                .args(["--workers", &env.threads.to_string()]),
        )?);
        check_counts("weft tiny job", &read_counts(&output)?, &reference)?;
    }
    let process = median(&process);
    report.row(
        "fixed",
        "tiny job (10 records), `weft run` whole process",
        ms(process),
        format!("{} workers; start, plan, run, commit, exit", env.threads),
    );

    // Submit to result on an embedded cluster that is up (what `weft job submit` costs in-process).
    let embedded = tiny_embedded(env, &job, &output, &reference, runs)?;
    report.row(
        "fixed",
        "tiny job (10 records), embedded submit → result",
        ms(embedded),
        "scheduler and workers already running; output committed",
    );
    report.target(
        4,
        "tiny job submit → result, embedded",
        format!("{} (whole process {})", ms(embedded), ms(process)),
        "≤ 50 ms",
        embedded <= Duration::from_millis(50),
    );

    // Warm task launch: what a task does before its first batch, with the module compiled.
    let bytes = std::fs::read(env.wasm("wordcount"))?;
    let engine = Engine::new().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let started = Instant::now();
    let module = GuestModule::new(&engine, &bytes)?;
    let compile = started.elapsed();
    let id = "blake3:bench".to_owned();
    let modules = HashMap::from([(id.clone(), module.clone())]);
    let steps = [
        step(UdfKind::FlatMap, &id, "split_words"),
        step(UdfKind::Reduce, &id, "sum"),
    ];
    let refs: Vec<&StepRef> = steps.iter().collect();
    let limits = SandboxLimits::default();
    let mut launches = Vec::with_capacity(LAUNCHES);
    for _ in 0..LAUNCHES {
        let started = Instant::now();
        let pipeline = Pipeline::new(&modules, &refs, &limits)?;
        launches.push(started.elapsed());
        drop(pipeline);
    }
    let launch = median(&launches);
    report.row(
        "fixed",
        "warm task launch (instantiate the task's guests)",
        format!("{:.0} µs", launch.as_secs_f64() * 1e6),
        format!("median of {LAUNCHES}; wordcount module, 2 steps"),
    );
    report.target(
        4,
        "warm task launch",
        format!("{:.0} µs", launch.as_secs_f64() * 1e6),
        "≤ 1 ms",
        launch <= Duration::from_millis(1),
    );

    // The on-disk cache: what a restarted worker loads instead of compiling.
    let artifact = module.to_artifact()?;
    let mut loads = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        // SAFETY: the artifact was made by this engine a moment ago, in this process.
        let loaded = unsafe { GuestModule::deserialize(&engine, &artifact) }?;
        loads.push(started.elapsed());
        drop(loaded);
    }
    let load = median(&loads);
    report.row(
        "fixed",
        "module first compile (wordcount guest)",
        ms(compile),
        format!("{} KB of wasm", bytes.len() / 1000),
    );
    report.row(
        "fixed",
        "module load from the on-disk cache",
        ms(load),
        format!("{} KB artifact, digest checked", artifact.len() / 1000),
    );
    report.target(
        4,
        "compiled module cached on disk (restart loads, not compiles)",
        format!("load {} vs compile {}", ms(load), ms(compile)),
        "cached",
        load < compile,
    );
    Ok(())
}

fn tiny_embedded(
    env: &Env,
    job: &Path,
    output: &Path,
    reference: &crate::native::Counts,
    runs: u32,
) -> Result<Duration> {
    let registry = registry(env)?;
    let tenant = Tenant::default();
    let submission = submission(job)?;
    runtime()?.block_on(async {
        let mut cluster = LocalCluster::start(
            registry,
            LocalClusterConfig {
                workers: env.threads,
                ..LocalClusterConfig::new(env.work.join("embedded"))
            },
        )
        .await?;
        let mut samples = Vec::new();
        // The first run compiles the module on each worker; the rest show the steady state.
        for _ in 0..=runs {
            let started = Instant::now();
            cluster
                .run(&tenant, submission.clone())
                .await
                .context("the tiny job failed")?;
            samples.push(started.elapsed());
            check_counts("embedded tiny job", &read_counts(output)?, reference)?;
        }
        cluster.shutdown().await;
        anyhow::Ok(median(&samples[1..]))
    })
}

fn step(kind: UdfKind, module: &str, function: &str) -> StepRef {
    StepRef {
        kind,
        module: module.to_owned(),
        function: function.to_owned(),
        label: format!("wordcount/{function}"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", secs(d) * 1e3)
}
