//! The word count with each language's guest (`examples/wordcount/<language>`, the same UDFs in
//! Rust, C, Zig and AssemblyScript): `weft run` over the Zipf corpus, each language's module
//! registered under its own name, the runs alternating round after round, beside the tuned native
//! count when given. What a UDF author pays for their language.
//!
//! The modules are `wordcount_<language>.wasm` in `--wasm-dir` (`scripts/bench.sh` builds them
//! with `weft udf build`), the Rust one `weft_example_wordcount.wasm`; a language whose module is
//! missing is reported as not run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::Env;
use crate::measure::{median, run_timed, secs};
use crate::native::{check_counts, read_counts, word_count};
use crate::report::Report;
use crate::scenarios::wordcount::{Splits, corpus, write_job_with};

/// The languages, each with the file of its module in `--wasm-dir`.
const LANGUAGES: [(&str, &str); 4] = [
    ("rust", "weft_example_wordcount.wasm"),
    ("c", "wordcount_c.wasm"),
    ("zig", "wordcount_zig.wasm"),
    ("assemblyscript", "wordcount_assemblyscript.wasm"),
];

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let data = corpus(env)?;
    let out = env.work.join("out");
    std::fs::create_dir_all(&out)?;
    let mut contenders: Vec<(&str, PathBuf, Vec<Duration>)> = Vec::new();
    for (language, file) in LANGUAGES {
        let wasm = env.wasm_dir.join(file);
        if !wasm.is_file() {
            report.row(
                "languages",
                format!("word count, {language} guest"),
                "not run",
                format!("no module at {}", wasm.display()),
            );
            continue;
        }
        let module = format!("wordcount_{language}");
        run_timed(
            env.weft()
                .args(["module", "register"])
                .arg(&wasm)
                .args(["--name", &module]),
        )?;
        let dest = out.join(format!("weft-{module}"));
        let job = write_job_with(
            env,
            &data,
            &dest,
            env.threads as u32,
            Splits::Default,
            &module,
        )?;
        contenders.push((language, job, Vec::new()));
    }

    let reference = word_count(&data, &out.join("native-languages.tsv"), env.threads)?;
    let mut tuned = Vec::new();
    for round in 1..=env.runs {
        eprintln!("[bench] languages round {round}/{}", env.runs);
        if let Some(program) = &env.tuned_peer {
            let dest = out.join("tuned-peer.tsv");
            tuned.push(run_timed(
                std::process::Command::new(program).arg(&data).arg(&dest),
            )?);
            check_counts("tuned native peer", &read_counts(&dest)?, &reference)?;
        }
        for (language, job, samples) in &mut contenders {
            samples.push(run_timed(
                env.weft()
                    .arg("run")
                    .arg(&*job)
                    .arg("--overwrite")
                    .arg("--quiet")
                    .args(["--workers", &env.threads.to_string()]),
            )?);
            let dest = out.join(format!("weft-wordcount_{language}"));
            check_counts(
                &format!("{language} guest"),
                &read_counts(&dest)?,
                &reference,
            )?;
        }
    }

    let mb = env.size / 1_000_000;
    let tuned = (!tuned.is_empty()).then(|| median(&tuned));
    if let Some(tuned) = tuned {
        report.row(
            "languages",
            "tuned native peer, every core",
            format!("{:.2} s", secs(tuned)),
            format!("{mb} MB"),
        );
    }
    let rust = contenders
        .iter()
        .find(|(l, ..)| *l == "rust")
        .map(|(.., s)| median(s));
    for (language, _, samples) in &contenders {
        let time = median(samples);
        let mut detail = Vec::new();
        if let Some(rust) = rust {
            detail.push(format!("{:.2}× the Rust guest", secs(time) / secs(rust)));
        }
        if let Some(tuned) = tuned {
            detail.push(format!("{:.2}× the tuned native", secs(time) / secs(tuned)));
        }
        report.row(
            "languages",
            format!("weft run, {language} guest, {} workers", env.threads),
            format!("{:.2} s", secs(time)),
            detail.join("; "),
        );
    }
    Ok(())
}
