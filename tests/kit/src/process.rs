//! A `weft` process as the tests and the benchmark run one: its stdout and stderr in a log file of
//! its own (one open file, so lines interleave in the order they were written), waited on for a
//! line it prints once serving ("... listening on http://ADDRESS"), stopped with SIGTERM as an
//! operator would, and killed and reaped when its handle drops, so a failing test or scenario leaves
//! nothing running.
//!
//! Logs go to files rather than pipes so that waiting can time out without a reader thread per
//! stream, and so they can be shown whole when something fails.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child process and its log.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Set once the child has been waited for, so it is reaped exactly once.
    exit: Option<ExitStatus>,
}

/// Why waiting for a process's line failed; both carry its log so far.
#[derive(Debug)]
pub enum WaitError {
    Exited {
        name: String,
        status: ExitStatus,
        log: String,
    },
    TimedOut {
        name: String,
        after: Duration,
        log: String,
    },
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Exited { name, status, log } => write!(
                f,
                "{name} exited ({status}) before it printed what it was waited for; its log:\n{log}"
            ),
            WaitError::TimedOut { name, after, log } => write!(
                f,
                "{name} did not print what it was waited for within {after:?}; its log:\n{log}"
            ),
        }
    }
}

impl std::error::Error for WaitError {}

impl Process {
    /// Starts `command` (its stdin closed), writing both output streams to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> io::Result<Process> {
        let file = File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            exit: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Polls the log until `parse` accepts one of its complete lines (trailing space trimmed), and
    /// returns what it made of it; an error, with the log, if the process exits first or `deadline`
    /// passes.
    pub fn wait_for_line<T>(
        &mut self,
        deadline: Duration,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, WaitError> {
        let started = Instant::now();
        loop {
            let log = std::fs::read(&self.log).unwrap_or_default();
            // Only lines already ended: a line being written may be cut short.
            let complete = match log.iter().rposition(|&b| b == b'\n') {
                Some(end) => &log[..end],
                None => &[][..],
            };
            let text = String::from_utf8_lossy(complete);
            if let Some(found) = text.lines().find_map(|line| parse(line.trim_end())) {
                return Ok(found);
            }
            if let Some(status) = self.try_wait() {
                return Err(WaitError::Exited {
                    name: self.name.clone(),
                    status,
                    log: String::from_utf8_lossy(&log).into_owned(),
                });
            }
            if started.elapsed() > deadline {
                return Err(WaitError::TimedOut {
                    name: self.name.clone(),
                    after: deadline,
                    log: String::from_utf8_lossy(&log).into_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the process ended, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Whether the process still runs (not exited, nor a zombie waiting to be reaped), read from
    /// `/proc`: callers that share the process cannot reap it.
    pub fn is_running(&self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return false;
        };
        // `PID (COMMAND) STATE …`; the command may itself hold parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    }

    /// Sends `signal` (a name `kill` takes: `INT`, `TERM`, `KILL`…) if the process still runs.
    pub fn signal(&mut self, signal: &str) {
        if self.try_wait().is_none() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Sends SIGTERM (unless it has ended): how an operator stops a process, and what lets it
    /// clean up.
    pub fn terminate(&mut self) {
        if self.try_wait().is_none() {
            // `kill` is the command: the harness has no libc binding.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Waits until `deadline` for the process to end; kills it if it has not. `None`: it had to be
    /// killed.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then up to `grace` for the process to exit, then SIGKILL. `None`: it had to be
    /// killed.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.terminate();
        self.wait_until(Instant::now() + grace)
    }

    /// SIGKILL, as a machine dies: no goodbye. Reaps the process.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address a `weft scheduler` or `weft worker` announces on its first line:
/// `weft scheduler listening on http://ADDRESS` or `weft worker ID listening on http://ADDRESS`.
pub fn listening_url(line: &str) -> Option<&str> {
    let (_, url) = line.split_once(" listening on ")?;
    url.starts_with("http://").then_some(url)
}
