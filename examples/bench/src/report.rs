//! The table the runner prints: what was measured (medians), and each target with its measured
//! ratio or figure and whether it was met. Markdown, so a run can be pasted into BENCHMARKS.md.

use crate::Env;

#[derive(Debug)]
struct Row {
    scenario: &'static str,
    what: String,
    value: String,
    detail: String,
}

#[derive(Debug)]
struct Target {
    number: u8,
    what: String,
    measured: String,
    goal: String,
    met: bool,
}

/// Everything measured in one run of the runner.
#[derive(Debug)]
pub struct Report {
    header: String,
    rows: Vec<Row>,
    targets: Vec<Target>,
}

impl Report {
    pub fn new(env: &Env) -> Report {
        let header = format!(
            "{}; {}; {} runs per contender (medians); {} threads; inputs in {}",
            today(),
            machine(),
            env.runs,
            env.threads,
            env.work.join("data").display()
        );
        Report {
            header,
            rows: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// One measured figure.
    pub fn row(
        &mut self,
        scenario: &'static str,
        what: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) {
        let row = Row {
            scenario,
            what: what.into(),
            value: value.into(),
            detail: detail.into(),
        };
        eprintln!(
            "[bench] {:<10} {:<44} {:>12}  {}",
            row.scenario, row.what, row.value, row.detail
        );
        self.rows.push(row);
    }

    /// One target of the speed issue, and whether this run met it.
    pub fn target(
        &mut self,
        number: u8,
        what: impl Into<String>,
        measured: impl Into<String>,
        goal: impl Into<String>,
        met: bool,
    ) {
        self.targets.push(Target {
            number,
            what: what.into(),
            measured: measured.into(),
            goal: goal.into(),
            met,
        });
    }

    pub fn print(&self) {
        println!("# weft-bench\n\n{}\n", self.header);
        println!("| scenario | measured | median | detail |\n|---|---|---:|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} |",
                r.scenario, r.what, r.value, r.detail
            );
        }
        if !self.targets.is_empty() {
            println!("\n| # | target | measured | goal | met |\n|---|---|---:|---|---|");
            for t in &self.targets {
                let met = if t.met { "yes" } else { "**no**" };
                println!(
                    "| {} | {} | {} | {} | {met} |",
                    t.number, t.what, t.measured, t.goal
                );
            }
        }
    }
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown date".into(), |s| s.trim().to_owned())
}

/// CPU model, core count and memory, from /proc.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown memory".into(),
            |kib| format!("{:.0} GiB", kib as f64 / (1 << 20) as f64),
        );
    format!("{cpu}, {cores} cores, {memory}")
}
