//! The stocks example (`examples/stocks`: CSV quotes with a header, the largest volume of each
//! symbol) as `weft run` with the example's steps (`flat_map stocks/parse` + `reduce stocks/max`)
//! and Weft's default split size, against Spark's `stocks_df.py` and `stocks_rdd.py` on the same
//! file: `weft_datagen::write_stocks_csv`, `symbol,date,open,high,low,close,volume` rows of 500
//! symbols, about `--size` bytes (50 bytes a row). Every output is checked against a plain max by
//! symbol over the CSV, computed here. Target 8: Spark DataFrame / Weft ≥ 5×.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::measure::{median, run_timed, secs, warm};
use crate::native::{Counts, check_table, read_counts};
use crate::report::Report;
use crate::{Env, input};

/// Bytes of a row of `write_stocks_csv`, about: the input has `--size / ROW_BYTES` rows.
const ROW_BYTES: u64 = 50;
/// The seed of the quotes: any fixed value.
const SEED: u64 = 7;

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let rows = (env.size / ROW_BYTES).max(1);
    let name = format!("stocks_{}.csv", crate::size_name(env.size));
    let data = input(env, &name, |path| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        weft_datagen::write_stocks_csv(rows, SEED, &mut file)?;
        Ok(std::io::Write::flush(&mut file)?)
    })?;
    warm(&data)?;
    let out = env.work.join("out");
    std::fs::create_dir_all(&out)?;
    let output = out.join("weft-stocks");
    let job = write_job(env, &data, &output)?;

    let reference = max_volumes(&data)?;
    let mut weft = Vec::new();
    let mut spark_df = Vec::new();
    let mut spark_rdd = Vec::new();
    for round in 1..=env.runs {
        eprintln!("[bench] stocks round {round}/{}", env.runs);
        weft.push(run_timed(
            env.weft()
                .arg("run")
                .arg(&job)
                .arg("--overwrite")
                .args(["--workers", &env.threads.to_string()]),
        )?);
        check_table(
            "weft (stocks)",
            "volumes",
            &read_counts(&output)?,
            &reference,
        )?;
        if let Some(spark) = &env.spark {
            for (script, samples) in [
                ("stocks_df.py", &mut spark_df),
                ("stocks_rdd.py", &mut spark_rdd),
            ] {
                let dest = out.join(format!("spark-{script}"));
                samples.push(crate::spark::submit(env, spark, script, &data, &dest)?);
                check_table(script, "volumes", &read_counts(&dest)?, &reference)?;
            }
        }
    }

    let bytes = std::fs::metadata(&data)?.len();
    let rate = |d: Duration| format!("{:.0} MB/s", bytes as f64 / 1e6 / secs(d));
    let weft = median(&weft);
    let threads = env.threads;
    report.row(
        "stocks",
        format!("weft run, embedded, {threads} workers, default splits"),
        format!("{:.2} s", secs(weft)),
        format!(
            "{:.0} MB, {rows} rows, {} symbols; {}",
            bytes as f64 / 1e6,
            reference.len(),
            rate(weft)
        ),
    );
    if spark_df.is_empty() {
        report.target(
            8,
            "stocks: Spark DataFrame / Weft",
            "not run: the Spark peer is not set up",
            "≥ 5×",
            false,
        );
        return Ok(());
    }
    let (df, rdd) = (median(&spark_df), median(&spark_rdd));
    report.row(
        "stocks",
        format!("Spark DataFrame, local[{threads}]"),
        format!("{:.2} s", secs(df)),
        rate(df),
    );
    report.row(
        "stocks",
        format!("Spark RDD + Python lambdas, local[{threads}]"),
        format!("{:.2} s", secs(rdd)),
        format!("{}; {:.1}× Weft", rate(rdd), secs(rdd) / secs(weft)),
    );
    let x = secs(df) / secs(weft);
    report.target(
        8,
        "stocks: Spark DataFrame / Weft",
        format!("{x:.1}×"),
        "≥ 5×",
        x >= 5.0,
    );
    Ok(())
}

/// The stocks job over `data`, as `examples/stocks/job.toml` with one output partition per worker.
fn write_job(env: &Env, data: &Path, output: &Path) -> Result<PathBuf> {
    let job = format!(
        "name = \"stocks\"\n\n[input]\npath = {data:?}\nformat = \"csv\"\nheader = true\n\n\
         [[step]]\nflat_map = \"stocks/parse\"\n\n[[step]]\nreduce = \"stocks/max\"\n\n\
         [output]\npath = {output:?}\nformat = \"text\"\npartitions = {partitions}\n",
        data = data.display().to_string(),
        output = output.display().to_string(),
        partitions = env.threads,
    );
    let path = env.work.join("weft-stocks.toml");
    std::fs::write(&path, job)?;
    Ok(path)
}

/// The largest volume of each symbol, by a plain reading of the CSV: the header, then rows whose
/// first field is the symbol and seventh the volume. The reference every output must equal.
pub fn max_volumes(data: &Path) -> Result<Counts> {
    let text = std::fs::read(data).with_context(|| format!("cannot read {}", data.display()))?;
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    if lines.next() != Some(b"symbol,date,open,high,low,close,volume".as_slice()) {
        bail!("{}: not the quotes' header", data.display());
    }
    let mut max = Counts::new();
    for line in lines {
        let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        let [symbol, _, _, _, _, _, volume] = fields[..] else {
            bail!("{}: a row without seven fields", data.display());
        };
        let volume: u64 = std::str::from_utf8(volume)
            .ok()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{}: a volume that is not a number", data.display()))?;
        let entry = max.entry(symbol.to_vec()).or_insert(volume);
        *entry = (*entry).max(volume);
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_volumes_keeps_the_largest_of_each_symbol() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("q.csv");
        std::fs::write(
            &data,
            "symbol,date,open,high,low,close,volume\nA,2020-01-02,1,1,1,1,5\n\
             B,2020-01-02,1,1,1,1,7\nA,2020-01-03,1,1,1,1,9\nA,2020-01-06,1,1,1,1,3\n",
        )
        .unwrap();
        let expected: Counts = [(b"A".to_vec(), 9), (b"B".to_vec(), 7)].into();
        assert_eq!(max_volumes(&data).unwrap(), expected);
    }
}
