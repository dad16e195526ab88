//! What a task may use: the limits every guest of a task runs under ([`TaskLimits`]), each named by
//! a [`Limit`] — the key a job file's `[limits]` table and `weft scheduler --limit` use — and how a
//! job's requests are checked against the ceiling it runs under ([`TaskLimits::resolve`]).
//!
//! Hitting a limit fails the task as the guest's fault, with a message naming the limit and its
//! value; the worker enforces them all (weft-host the per-call ones, the executor the per-task ones).

use std::fmt;
use std::time::Duration;

use weft_io::{format_size, parse_size};

/// One limit of a task, by the name a job file's `[limits]` table gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Limit {
    /// `memory`: the largest linear memory a guest may grow to.
    Memory,
    /// `call_time`: the longest one call into a guest may run, time in host calls included.
    CallTime,
    /// `task_time`: the longest a whole task attempt may run.
    TaskTime,
    /// `batch_output`: the most bytes (keys, values and their offsets) one call may return.
    BatchOutput,
    /// `task_output`: the most bytes of records a task may write (its last step's output): keys,
    /// values, and 8 bytes a record for their offsets.
    TaskOutput,
    /// `log`: the bytes of stdout, and of stderr, kept of a task's guests; writes past it are
    /// dropped (the guest's writes still succeed).
    Log,
    /// `stack`: the wasm stack a guest call may use (deep recursion past it traps). A power of
    /// two: a worker keeps one engine per stack size.
    Stack,
}

impl Limit {
    /// Every limit, in the order messages and tables list them.
    pub const ALL: [Limit; 7] = [
        Limit::Memory,
        Limit::CallTime,
        Limit::TaskTime,
        Limit::BatchOutput,
        Limit::TaskOutput,
        Limit::Log,
        Limit::Stack,
    ];

    /// The key of the limit in a job file's `[limits]` table and in `--limit KEY=VALUE`.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::CallTime => "call_time",
            Limit::TaskTime => "task_time",
            Limit::BatchOutput => "batch_output",
            Limit::TaskOutput => "task_output",
            Limit::Log => "log",
            Limit::Stack => "stack",
        }
    }

    /// The limit a key names; the error lists the keys there are.
    pub fn from_key(key: &str) -> Result<Limit, String> {
        Limit::ALL
            .into_iter()
            .find(|l| l.key() == key)
            .ok_or_else(|| format!("unknown limit `{key}` (expected one of {})", Limit::keys()))
    }

    /// Every key, comma-separated, for messages.
    pub fn keys() -> String {
        Limit::ALL.map(Limit::key).join(", ")
    }

    /// Whether the limit is a duration (its values are milliseconds) rather than a byte count.
    pub fn is_time(self) -> bool {
        matches!(self, Limit::CallTime | Limit::TaskTime)
    }

    /// Parses a value as people write it: a size (`64MiB`, `4096`) or a duration (`10s`,
    /// `1m 30s`, `500ms`). Durations are kept in milliseconds.
    pub fn parse_value(self, text: &str) -> Result<u64, String> {
        if self.is_time() {
            let duration = humantime::parse_duration(text.trim())
                .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 10s, 5m, 1h 30m)"))?;
            Ok(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
        } else {
            parse_size(text)
        }
    }

    /// A value of this limit for people: `64 MiB`, `10s`.
    pub fn show(self, value: u64) -> String {
        if value == u64::MAX {
            "unlimited".to_owned()
        } else if self.is_time() {
            humantime::format_duration(Duration::from_millis(value)).to_string()
        } else {
            format_size(value)
        }
    }

    /// The smallest value the limit may be set to: a task needs some memory and some time.
    fn floor(self) -> u64 {
        match self {
            Limit::Memory => 64 << 10,
            Limit::CallTime | Limit::TaskTime => 10,
            Limit::BatchOutput | Limit::TaskOutput | Limit::Log => 0,
            Limit::Stack => MIN_STACK_BYTES,
        }
    }

    /// Whether `value` can be this limit's value at all, whatever the ceiling: a stack size must
    /// be a power of two. The refusal names the value and the rule.
    pub fn check(self, value: u64) -> Result<(), String> {
        if self == Limit::Stack && !value.is_power_of_two() {
            return Err(format!(
                "{} is not a power of two ({} to {}, e.g. 1MiB)",
                self.show(value),
                self.show(MIN_STACK_BYTES),
                self.show(MAX_STACK_BYTES)
            ));
        }
        Ok(())
    }
}

/// The least wasm stack a task may be given: a few hundred frames.
const MIN_STACK_BYTES: u64 = 64 << 10;
/// The most wasm stack a task may be given; a worker's task threads have room for it.
pub const MAX_STACK_BYTES: u64 = 8 << 20;
/// The wasm stack a task gets unless its job asks: wasmtime's default.
pub const DEFAULT_STACK_BYTES: u64 = 512 << 10;

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The most bytes of stdout, and of stderr, a task may keep: what a task report carries (see
/// [`crate::MAX_TASK_OUTPUT`]), so the ceiling of [`Limit::Log`] everywhere.
const MAX_LOG_BYTES: u64 = crate::MAX_TASK_OUTPUT as u64;

/// The limits every guest of a task runs under: what the scheduler asks of the worker's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Largest linear memory a guest may grow to, in bytes.
    pub max_memory_bytes: u64,
    /// Longest a single call into a guest may run before it is interrupted, time spent in host
    /// functions (a WASI sleep) included.
    pub max_call_time: Duration,
    /// Longest the whole task attempt may run.
    pub max_task_time: Duration,
    /// Most bytes one guest call may return: its output records' keys, values and offsets.
    pub max_batch_output_bytes: u64,
    /// Most bytes of records (keys and values) the task may write.
    pub max_task_output_bytes: u64,
    /// Bytes of stdout, and of stderr, kept of the task's guests.
    pub max_log_bytes: u64,
    /// The wasm stack one guest call may use, in bytes (a power of two).
    pub max_stack_bytes: u64,
}

impl Default for TaskLimits {
    /// 1 GiB of memory; 60 s per call and 30 min per task: time for a slow UDF over a large batch
    /// while a runaway one gives its slot back within a minute; 256 MiB out of one call (a
    /// `flat_map` may grow a batch many times, not without bound); 16 GiB written per task; 64 KiB
    /// of each log stream.
    fn default() -> Self {
        TaskLimits {
            max_memory_bytes: 1 << 30,
            max_call_time: Duration::from_secs(60),
            max_task_time: Duration::from_secs(30 * 60),
            max_batch_output_bytes: 256 << 20,
            max_task_output_bytes: 16 << 30,
            max_log_bytes: MAX_LOG_BYTES,
            max_stack_bytes: DEFAULT_STACK_BYTES,
        }
    }
}

impl TaskLimits {
    /// The most any task may ask for: the whole 4 GiB of a 32-bit memory, a day per call and per
    /// task, 2 GiB per call (a batch's offsets are 32-bit), no bound on what a task writes, and
    /// the log a task report carries. A cluster's ceiling starts here; `--limit` lowers it.
    pub fn most() -> TaskLimits {
        TaskLimits {
            max_memory_bytes: 4 << 30,
            max_call_time: Duration::from_secs(24 * 3600),
            max_task_time: Duration::from_secs(24 * 3600),
            max_batch_output_bytes: 2 << 30,
            max_task_output_bytes: u64::MAX,
            max_log_bytes: MAX_LOG_BYTES,
            max_stack_bytes: MAX_STACK_BYTES,
        }
    }

    /// One limit's value: bytes, or milliseconds for a time.
    pub fn get(&self, limit: Limit) -> u64 {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match limit {
            Limit::Memory => self.max_memory_bytes,
            Limit::CallTime => millis(self.max_call_time),
            Limit::TaskTime => millis(self.max_task_time),
            Limit::BatchOutput => self.max_batch_output_bytes,
            Limit::TaskOutput => self.max_task_output_bytes,
            Limit::Log => self.max_log_bytes,
            Limit::Stack => self.max_stack_bytes,
        }
    }

    /// Sets one limit's value (bytes, or milliseconds for a time).
    pub fn set(&mut self, limit: Limit, value: u64) {
        match limit {
            Limit::Memory => self.max_memory_bytes = value,
            Limit::CallTime => self.max_call_time = Duration::from_millis(value),
            Limit::TaskTime => self.max_task_time = Duration::from_millis(value),
            Limit::BatchOutput => self.max_batch_output_bytes = value,
            Limit::TaskOutput => self.max_task_output_bytes = value,
            Limit::Log => self.max_log_bytes = value,
            Limit::Stack => self.max_stack_bytes = value,
        }
    }

    /// Every limit at most `ceiling`'s.
    pub fn capped_by(mut self, ceiling: &TaskLimits) -> TaskLimits {
        for limit in Limit::ALL {
            self.set(limit, self.get(limit).min(ceiling.get(limit)));
        }
        self
    }

    /// A ceiling with `settings` (`--limit KEY=VALUE`) applied over `self`; a value above
    /// [`TaskLimits::most`] or below what any task needs is refused.
    pub fn with_settings(mut self, settings: &[(Limit, u64)]) -> Result<TaskLimits, String> {
        let most = TaskLimits::most();
        for &(limit, value) in settings {
            if value > most.get(limit) {
                return Err(format!(
                    "{limit} = {} is above the most any task may have, {}",
                    limit.show(value),
                    limit.show(most.get(limit))
                ));
            }
            if value < limit.floor() {
                return Err(format!(
                    "{limit} = {} is below the least a task needs, {}",
                    limit.show(value),
                    limit.show(limit.floor())
                ));
            }
            limit
                .check(value)
                .map_err(|why| format!("{limit} = {why}"))?;
            self.set(limit, value);
        }
        Ok(self)
    }

    /// The limits of a job that asks for `requested` (its `[limits]` table): each requested value
    /// where it is given, else `self`'s (the defaults) — every one at most `ceiling`'s. A request
    /// above the ceiling is refused, naming both numbers; `ceiling_of` says whose ceiling it is
    /// (`the cluster`).
    pub fn resolve(
        &self,
        requested: &[(Limit, u64)],
        ceiling: &TaskLimits,
        ceiling_of: &str,
    ) -> Result<TaskLimits, LimitError> {
        let mut limits = self.capped_by(ceiling);
        for &(limit, asked) in requested {
            let most = ceiling.get(limit);
            if asked > most {
                return Err(LimitError::AboveCeiling {
                    limit,
                    asked,
                    ceiling: most,
                    ceiling_of: ceiling_of.to_owned(),
                });
            }
            if asked < limit.floor() {
                return Err(LimitError::BelowFloor { limit, asked });
            }
            limit
                .check(asked)
                .map_err(|why| LimitError::Invalid { limit, why })?;
            limits.set(limit, asked);
        }
        Ok(limits)
    }
}

/// A job's `[limits]` that cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "limits.{limit} = {} is above {ceiling_of}'s ceiling of {}",
        limit.show(*asked),
        limit.show(*ceiling)
    )]
    AboveCeiling {
        limit: Limit,
        asked: u64,
        ceiling: u64,
        ceiling_of: String,
    },
    #[error(
        "limits.{limit} = {} is below the least a task needs, {}",
        limit.show(*asked),
        limit.show(limit.floor())
    )]
    BelowFloor { limit: Limit, asked: u64 },
    /// A value no limit of its kind can have (`why` names the value and the rule).
    #[error("limits.{limit} = {why}")]
    Invalid { limit: Limit, why: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_show_as_written() {
        assert_eq!(Limit::Memory.parse_value("64MiB"), Ok(64 << 20));
        assert_eq!(Limit::CallTime.parse_value("1m 30s"), Ok(90_000));
        assert_eq!(Limit::TaskTime.parse_value("500ms"), Ok(500));
        assert!(
            Limit::CallTime
                .parse_value("ten")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            Limit::Log
                .parse_value("lots")
                .unwrap_err()
                .contains("not a size")
        );
        assert_eq!(Limit::Memory.show(64 << 20), "64 MiB");
        assert_eq!(Limit::CallTime.show(90_000), "1m 30s");
        assert_eq!(Limit::TaskOutput.show(u64::MAX), "unlimited");
        assert_eq!(Limit::from_key("call_time"), Ok(Limit::CallTime));
        let unknown = Limit::from_key("cpu").unwrap_err();
        assert!(
            unknown.contains("`cpu`") && unknown.contains("task_output"),
            "{unknown}"
        );
    }

    #[test]
    fn a_job_gets_what_it_asks_within_the_ceiling() {
        let ceiling = TaskLimits::most()
            .with_settings(&[(Limit::Memory, 256 << 20), (Limit::CallTime, 10_000)])
            .unwrap();
        // Defaults above the ceiling come down to it; the rest stay.
        let limits = TaskLimits::default()
            .resolve(&[], &ceiling, "the cluster")
            .unwrap();
        assert_eq!(limits.max_memory_bytes, 256 << 20);
        assert_eq!(limits.max_call_time, Duration::from_secs(10));
        assert_eq!(limits.max_task_time, TaskLimits::default().max_task_time);

        let asked = [(Limit::Memory, 64 << 20), (Limit::TaskTime, 5_000)];
        let limits = TaskLimits::default()
            .resolve(&asked, &ceiling, "the cluster")
            .unwrap();
        assert_eq!(limits.max_memory_bytes, 64 << 20);
        assert_eq!(limits.max_task_time, Duration::from_secs(5));

        let refused = TaskLimits::default()
            .resolve(&[(Limit::Memory, 1 << 30)], &ceiling, "the cluster")
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "limits.memory = 1 GiB is above the cluster's ceiling of 256 MiB"
        );
        let refused = TaskLimits::default()
            .resolve(&[(Limit::Memory, 1)], &ceiling, "the cluster")
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "limits.memory = 1 B is below the least a task needs, 64 KiB"
        );
    }

    #[test]
    fn a_ceiling_cannot_exceed_what_any_task_may_have() {
        let too_much = TaskLimits::most()
            .with_settings(&[(Limit::Memory, 8 << 30)])
            .unwrap_err();
        assert_eq!(
            too_much,
            "memory = 8 GiB is above the most any task may have, 4 GiB"
        );
        let most = TaskLimits::most();
        for limit in Limit::ALL {
            let mut set = TaskLimits::default();
            set.set(limit, 12_345);
            assert_eq!(set.get(limit), 12_345, "{limit}");
            assert!(
                TaskLimits::default().get(limit) <= most.get(limit),
                "{limit}"
            );
        }
    }

    #[test]
    fn a_stack_is_a_power_of_two_between_64_kib_and_8_mib() {
        let ceiling = TaskLimits::most();
        let ask = |bytes: u64| {
            TaskLimits::default()
                .resolve(&[(Limit::Stack, bytes)], &ceiling, "the cluster")
                .map(|l| l.max_stack_bytes)
                .map_err(|e| e.to_string())
        };
        assert_eq!(ask(1 << 20), Ok(1 << 20));
        assert_eq!(ask(64 << 10), Ok(64 << 10));
        assert_eq!(
            ask(300 << 10),
            Err("limits.stack = 300 KiB is not a power of two (64 KiB to 8 MiB, e.g. 1MiB)".into())
        );
        assert_eq!(
            ask(32 << 10),
            Err("limits.stack = 32 KiB is below the least a task needs, 64 KiB".into())
        );
        assert!(
            ask(16 << 20)
                .unwrap_err()
                .contains("above the cluster's ceiling of 8 MiB")
        );
        assert!(
            TaskLimits::most()
                .with_settings(&[(Limit::Stack, 3 << 20)])
                .unwrap_err()
                .contains("not a power of two")
        );
        assert_eq!(TaskLimits::default().max_stack_bytes, DEFAULT_STACK_BYTES);
    }
}
