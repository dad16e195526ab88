//! Timing: medians of repeated runs, child processes timed as whole processes (what a user waits
//! for), and peak memory as the kernel counts it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    assert!(!samples.is_empty(), "a median needs samples");
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    }
}

/// Seconds, for tables.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs a command to completion and returns its wall time; fails with its stderr if it fails.
pub fn run_timed(command: &mut Command) -> Result<Duration> {
    let shown = format!("{command:?}");
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

/// Peak resident memory of a live process so far (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the status of process {pid}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM line in /proc/PID/status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .context("malformed VmHWM line")?;
    Ok(kib * 1024)
}

/// Reads a file once so that it sits in the page cache: every contender then reads its input from
/// memory, and the first one timed is not penalised for the disk.
pub fn warm(path: &Path) -> Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    std::io::copy(&mut file, &mut std::io::sink())?;
    Ok(())
}
