//! The Spark peer (`../shared/peers/spark`): one of its jobs run through its `spark.sh`, as a whole
//! `spark-submit` process on `local[N]`, with the runner's threads as N.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::Env;
use crate::measure::run_timed;

/// Runs the peer's `jobs/SCRIPT INPUT DEST` (DEST removed first, as Spark will not overwrite it)
/// and returns its wall time.
pub fn submit(env: &Env, peer: &Path, script: &str, input: &Path, dest: &Path) -> Result<Duration> {
    let _ = std::fs::remove_dir_all(dest);
    run_timed(
        Command::new("bash")
            .arg(peer.join("spark.sh"))
            .arg(script)
            .arg(input)
            .arg(dest)
            .env("SPARK_CORES", env.threads.to_string()),
    )
}
