//! `weft scheduler` and `weft worker` as child processes, for the scenarios that must cross a
//! process boundary (shuffle throughput, a worker's peak memory), on the tests' process harness
//! (`weft_testkit::process`): each child logs to a file of its own under the work directory, and
//! is killed and reaped when its handle drops, so a failed scenario leaves nothing running.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use weft_testkit::process::{Process, listening_url};

use crate::Env;

/// How long a process may take to say where it listens.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running `weft` process and the URL it printed.
#[derive(Debug)]
pub struct Proc {
    process: Process,
    pub url: String,
}

impl Proc {
    /// Starts `weft ARGS` with `home` as its data directory (its log is `home/COMMAND.log`) and
    /// waits for its `... listening on http://ADDRESS` line.
    pub fn start(env: &Env, home: &Path, args: &[&str]) -> Result<Proc> {
        let mut command = Command::new(&env.weft);
        command
            .env("WEFT_HOME", home)
            .env_remove("WEFT_SCHEDULER")
            .args(args);
        std::fs::create_dir_all(home)?;
        let log = home.join(format!("{}.log", args.first().copied().unwrap_or("weft")));
        let mut process = Process::spawn(&args.join(" "), command, &log)
            .with_context(|| format!("cannot start weft {}", args.join(" ")))?;
        let url = process.wait_for_line(START_DEADLINE, |line| {
            listening_url(line).map(str::to_owned)
        })?;
        Ok(Proc { process, url })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
