//! `weft scheduler` and `weft worker` as child processes, for the scenarios that must cross a
//! process boundary (shuffle throughput, a worker's peak memory). Each child is killed and reaped
//! when its handle drops, so a failed scenario leaves nothing running.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::Env;

/// A running `weft` process and the URL it printed.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    pub url: String,
}

impl Proc {
    /// Starts `weft ARGS` with `home` as its data directory and waits for its
    /// `... listening on http://ADDRESS` line.
    pub fn start(env: &Env, home: &Path, args: &[&str]) -> Result<Proc> {
        let mut child = Command::new(&env.weft)
            .env("WEFT_HOME", home)
            .env_remove("WEFT_SCHEDULER")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start weft {}", args.join(" ")))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "weft {} did not say where it listens: {line:?}",
                args.join(" ")
            );
        };
        Ok(Proc {
            url: url.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
