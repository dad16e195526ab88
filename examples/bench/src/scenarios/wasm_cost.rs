//! What the sandbox costs (target 2): the same word-count job, same plan, same workers, grouping and
//! shuffle, once with the wordcount guest as WASM and once with the same UDF source compiled natively
//! (the SDK's native build, installed in the workers under the WASM module's id). Both run on an
//! embedded cluster kept up between rounds, so neither pays for compiling or starting.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_host::GuestModule;
use weft_local::{LocalCluster, LocalClusterConfig};
use weft_scheduler::Tenant;

use crate::Env;
use crate::embedded::{registry, runtime, submission};
use crate::measure::{median, secs};
use crate::native::{check_counts, read_counts, word_count};
use crate::report::Report;
use crate::scenarios::wordcount::{Splits, corpus, write_job};

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let data = corpus(env)?;
    let out = env.work.join("out");
    std::fs::create_dir_all(&out)?;
    let reference = word_count(&data, &out.join("native.tsv"), env.threads)?;
    let output = out.join("weft-wasm-cost");
    let job = write_job(env, &data, &output, env.threads as u32, Splits::Balanced)?;
    let registry = registry(env)?;
    let tenant = Tenant::default();
    let submission = submission(&job)?;
    let id = registry
        .resolve(&tenant, "wordcount")
        .context("the wordcount module is not registered")?
        .version
        .id
        .to_string();
    let native = GuestModule::native(&weft_guest::native_udfs![
        weft_example_wordcount::split_words,
        weft_example_wordcount::sum
    ])?;

    let (wasm, native) = runtime()?.block_on(async {
        let start = |preloaded: Vec<(String, GuestModule)>, dir: &str| {
            let work = env.work.join(dir);
            let registry = registry.clone();
            async move {
                let config = LocalClusterConfig {
                    workers: env.threads,
                    preloaded,
                    ..LocalClusterConfig::new(work)
                };
                anyhow::Ok(LocalCluster::start(registry, config).await?)
            }
        };
        let mut clusters = [
            start(Vec::new(), "wasm-cost-wasm").await?,
            start(vec![(id.clone(), native)], "wasm-cost-native").await?,
        ];
        let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        // Round 0 warms up (the WASM workers compile the module); it is not counted.
        for round in 0..=env.runs {
            eprintln!("[bench] wasm-cost round {round}/{}", env.runs);
            for (cluster, times) in clusters.iter_mut().zip(samples.iter_mut()) {
                let started = Instant::now();
                cluster.run(&tenant, submission.clone()).await?;
                if round > 0 {
                    times.push(started.elapsed());
                }
                check_counts("wasm-cost job", &read_counts(&output)?, &reference)?;
            }
        }
        for cluster in clusters {
            cluster.shutdown().await;
        }
        let [wasm, native] = samples;
        anyhow::Ok((median(&wasm), median(&native)))
    })?;

    let mb = env.size / 1_000_000;
    report.row(
        "wasm-cost",
        "word count, UDFs as WASM (embedded, in-process)",
        format!("{:.2} s", secs(wasm)),
        format!("{mb} MB; submit → output committed"),
    );
    report.row(
        "wasm-cost",
        "word count, same UDFs compiled natively",
        format!("{:.2} s", secs(native)),
        "same plan, workers, grouping and shuffle",
    );
    let ratio = secs(wasm) / secs(native);
    report.target(
        2,
        "the WASM cost: WASM / native UDFs, same job",
        format!("{ratio:.2}×"),
        "≤ 1.15×",
        ratio <= 1.15,
    );
    Ok(())
}
