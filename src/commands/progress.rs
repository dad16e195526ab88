//! Live progress of a job, for `weft run` and `weft job watch`: on a terminal, a bar per stage that
//! moves with the bytes its tasks read (running tasks report as they read, through their workers'
//! heartbeats), with records, tasks, elapsed time and an estimate of the time left; elsewhere, a
//! plain line per stage when it changes, at most once a second per stage (and always its last).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weft_scheduler::jobs::{JobStatus, StageStatus};

use super::run::bytes;

/// Where plain lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Stdout,
    Stderr,
}

/// Shows a job's progress as its status changes.
pub struct Progress {
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
    lines: Lines,
    /// Per stage: the last line printed, and when.
    last: Vec<(String, Instant)>,
    /// The first failure to print (stdout closed), returned by `finish`.
    failed: Option<anyhow::Error>,
}

/// How often a plain line of one stage is printed at most.
const LINE_EVERY: Duration = Duration::from_secs(1);

impl Progress {
    /// Bars when stderr is a terminal, else plain lines to `lines`.
    pub fn new(lines: Lines) -> Progress {
        Progress {
            bars: std::io::stderr().is_terminal().then(|| {
                (
                    MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
                    Vec::new(),
                )
            }),
            lines,
            last: Vec::new(),
            failed: None,
        }
    }

    pub fn show(&mut self, status: &JobStatus) {
        match &mut self.bars {
            Some((multi, bars)) => {
                for (i, st) in status.stages.iter().enumerate() {
                    if bars.len() <= i {
                        let bar = multi.add(ProgressBar::new(1));
                        bar.set_style(bar_style());
                        bar.set_prefix(format!("stage {}", st.stage));
                        bars.push(bar);
                    }
                    let (position, length) = position(st);
                    let bar = &bars[i];
                    bar.set_length(length.max(1));
                    bar.set_position(position.min(length));
                    bar.set_message(summary(st));
                    if st.tasks_total > 0 && st.tasks_done == st.tasks_total {
                        bar.finish();
                    }
                }
            }
            None => {
                for (i, st) in status.stages.iter().enumerate() {
                    let line = format!("stage {}: {}", st.stage, summary(st));
                    let finished = st.tasks_done == st.tasks_total || status.state.is_final();
                    let due = match self.last.get(i) {
                        None => true,
                        Some((last, at)) => {
                            *last != line && (finished || at.elapsed() >= LINE_EVERY)
                        }
                    };
                    if !due {
                        continue;
                    }
                    let printed = match self.lines {
                        Lines::Stdout => outln!("{line}"),
                        Lines::Stderr => writeln!(std::io::stderr(), "{line}").map_err(Into::into),
                    };
                    if let Err(e) = printed {
                        self.failed.get_or_insert(e);
                    }
                    let entry = (line, Instant::now());
                    match self.last.get_mut(i) {
                        Some(slot) => *slot = entry,
                        None => self.last.push(entry),
                    }
                }
            }
        }
    }

    /// Ends the bars; the first failure to print, if any.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if let Some((multi, bars)) = &self.bars {
            for bar in bars {
                bar.abandon();
            }
            let _ = multi.clear();
        }
        self.failed.take().map_or(Ok(()), Err)
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{bar:30}] {percent:>3}% {msg}  {elapsed_precise} left ~{eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// How far a stage is, and out of what: bytes read of its input when that is known, else tasks.
fn position(st: &StageStatus) -> (u64, u64) {
    if st.bytes_total > 0 {
        let done = if st.tasks_done == st.tasks_total {
            st.bytes_total
        } else {
            st.bytes_in + st.bytes_in_running
        };
        (done, st.bytes_total)
    } else {
        (u64::from(st.tasks_done), u64::from(st.tasks_total))
    }
}

/// `3/17 tasks done, 4 running; 120000 records, 12.0 MB of 40.0 MB in`
fn summary(st: &StageStatus) -> String {
    let mut text = format!(
        "{}/{} tasks done, {} running",
        st.tasks_done, st.tasks_total, st.tasks_running
    );
    if st.tasks_failed > 0 {
        text.push_str(&format!(", {} failed", st.tasks_failed));
    }
    let records = st.records_in + st.records_in_running;
    let read = st.bytes_in + st.bytes_in_running;
    text.push_str(&format!("; {records} records, {} in", bytes(read)));
    if st.bytes_total > 0 {
        text.push_str(&format!(" of {}", bytes(st.bytes_total)));
    }
    if st.records_skipped > 0 {
        text.push_str(&format!(", {} skipped", st.records_skipped));
    }
    text
}
