//! [`JobSpec`]: a job file parsed and checked as far as possible without the module registry.
//!
//! Parsing happens in two passes. serde and the `toml` crate read the file into `Raw*` structs that
//! keep the byte span of every value (`Spanned`), which catches syntax errors, wrong types and
//! unknown keys with the toml crate's own message and position. The second pass checks what TOML's
//! types cannot express (exactly one kind per step, ranges, formats, references) and reports each
//! problem at the span of the value it is about.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use weft_abi::UdfKind;
pub use weft_io::{InputFormat, OnError, OutputFormat};
pub use weft_task::{Limit, ShuffleCompression};

use super::error::{JobFileError, JobFileErrorKind, Location};
use crate::registry::ModuleRef;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The largest split an automatic split size chooses (Spark's `spark.sql.files.maxPartitionBytes`,
/// the same default): large enough that what a task costs besides reading (starting its guest,
/// growing its combiner's table, writing and then shuffling one record per distinct key) is small
/// next to reading the split. A 1 GB word count on two cores ran about 7 % faster with it than with
/// 64 MiB splits, and 2.2× faster than with 8 MiB ones.
pub const MAX_SPLIT_SIZE: u64 = 128 * MIB;

/// What opening a file and starting a task on it is reckoned to cost, in bytes one could have read
/// meanwhile (Spark's `spark.sql.files.openCostInBytes`, the same default). An automatic split is
/// never smaller, so a small input is not cut into pieces whose tasks cost more than they read, and
/// each file counts as this much more input when the bytes are shared among the slots.
pub const SPLIT_OPEN_COST: u64 = 4 * MIB;

/// The most tasks one stage may have: the bound on `partitions` and on the number of input splits.
/// It keeps a typo (`partitions = 10000000`, `split_size = 1`) from making a plan too large to hold
/// or schedule; real jobs stay far below it.
pub const MAX_TASKS_PER_STAGE: u32 = 100_000;

/// The most attempts a job may ask of a task that fails by its own code.
pub const MAX_ATTEMPTS: u32 = 10;

/// The most characters of a job name; names appear in status lines, so they are kept short.
const MAX_NAME_LEN: usize = 128;

/// A job file, parsed and checked. Paths are already made relative to the job file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub input: InputSpec,
    /// In the order of the file; never empty.
    pub steps: Vec<StepSpec>,
    pub output: OutputSpec,
    pub shuffle: ShuffleSpec,
    /// `[limits]`: what the job asks for in place of the cluster's defaults, in the order of
    /// [`Limit::ALL`]; granted or refused against its ceiling at submission.
    pub limits: Vec<RequestedLimit>,
    /// `[retry] max_attempts`: how many times a task failing by its own code may run; `None`:
    /// the cluster's default.
    pub max_attempts: Option<u32>,
    /// `[retry] speculation`: whether stragglers get a second attempt; `None`: the cluster's
    /// setting.
    pub speculation: Option<bool>,
    /// The file name given to [`JobSpec::parse`]; every later error about the job starts with it.
    pub origin: PathBuf,
}

/// `[input]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// A file, a directory or a glob, for weft-io to expand into files.
    pub path: PathBuf,
    pub format: InputFormat,
    /// `input.split_size`: bytes per split, at least 1; `None` when the job file sets none, and
    /// the size is chosen for the cluster's slots when the job is planned
    /// ([`automatic_split_size`](super::automatic_split_size)).
    pub split_size: Option<u64>,
    /// What map tasks do with a malformed record: `on_error = "fail" | "skip" | "quarantine"`.
    pub on_error: OnError,
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// The output directory.
    pub path: PathBuf,
    pub format: OutputFormat,
    /// Partitions of every shuffle whose step sets none (so, usually, the number of output parts).
    pub partitions: u32,
}

/// `[shuffle]`: how the job's shuffles are written. The table is optional, and every key in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShuffleSpec {
    /// The codec of every shuffle file of the job.
    pub compression: ShuffleCompression,
}

/// A limit's value as TOML gives it: a string with a unit, or an integer of bytes for a size.
pub(crate) fn limit_value(limit: Limit, value: &toml::Value) -> Result<u64, String> {
    let value = limit_number(limit, value)?;
    limit.check(value)?;
    Ok(value)
}

fn limit_number(limit: Limit, value: &toml::Value) -> Result<u64, String> {
    match value {
        toml::Value::String(text) => limit.parse_value(text),
        toml::Value::Integer(n) if !limit.is_time() => {
            u64::try_from(*n).map_err(|_| format!("{n} is not a size"))
        }
        toml::Value::Integer(n) => Err(format!(
            "{n} has no unit: write a duration as a string, e.g. \"10s\" or \"5m\""
        )),
        other => Err(format!(
            "expected a {} as a string, not a {}",
            if limit.is_time() { "duration" } else { "size" },
            other.type_str()
        )),
    }
}

/// One key of `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLimit {
    pub limit: Limit,
    /// Bytes, or milliseconds for a time.
    pub value: u64,
    /// The value in the file, where a refusal points.
    pub at: Location,
}

/// One `[[step]]`, before its module is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    /// 1-based position in the job file: messages say "step 2", as a user counts.
    pub number: usize,
    pub kind: UdfKind,
    /// The module reference as written: `NAME`, `NAME@VERSION`, `NAME@TAG` or `blake3:HEX`.
    pub module: String,
    pub function: String,
    /// `reduce`/`group_reduce` only: the partitions of the shuffle this step reads.
    pub partitions: Option<u32>,
    /// The step's `[[step]]` header.
    pub at: Location,
    /// The `MODULE/FUNCTION` string, where resolution errors point.
    pub reference_at: Location,
}

impl StepSpec {
    /// `MODULE/FUNCTION`, as written in the job file.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.module, self.function)
    }

    /// Whether the step needs the records of each key together, which means a shuffle before it.
    pub fn is_wide(&self) -> bool {
        self.kind.is_grouped()
    }
}

impl JobSpec {
    /// Reads and parses the job file at `path`.
    pub fn from_file(path: &Path) -> Result<JobSpec, JobFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobFileErrorKind::Read {
            path: path.to_owned(),
            source,
        })?;
        JobSpec::parse(&text, path)
    }

    /// Parses a job file's text. `origin` is the file's path: errors start with it, and relative
    /// input and output paths are taken relative to its directory.
    pub fn parse(text: &str, origin: &Path) -> Result<JobSpec, JobFileError> {
        let parser = Parser { text, origin };
        let raw: RawJob = toml::from_str(text).map_err(|e| parser.toml_error(&e))?;
        parser.check(raw)
    }

    /// Replaces the input path (`weft run --input`). The path is taken as given: a command-line
    /// path is relative to the working directory, not to the job file.
    pub fn with_input(mut self, path: impl Into<PathBuf>) -> JobSpec {
        self.input.path = path.into();
        self
    }

    /// Replaces the output directory (`weft run --output`), taken as given like [`with_input`].
    ///
    /// [`with_input`]: JobSpec::with_input
    pub fn with_output(mut self, path: impl Into<PathBuf>) -> JobSpec {
        self.output.path = path.into();
        self
    }

    /// Whether any step needs a shuffle.
    pub fn has_wide_step(&self) -> bool {
        self.steps.iter().any(StepSpec::is_wide)
    }
}

// The file as serde reads it. Every value the second pass may complain about is `Spanned`, so the
// complaint can point at it.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Spanned<String>,
    input: RawInput,
    /// `[[step]]` tables; optional here so that a job without steps gets our message, not serde's.
    #[serde(default)]
    step: Option<Spanned<Vec<Spanned<RawStep>>>>,
    output: RawOutput,
    shuffle: Option<RawShuffle>,
    /// Keys are checked against [`Limit`] in the second pass, so an unknown one gets the list.
    limits: Option<BTreeMap<String, Spanned<toml::Value>>>,
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    /// Signed, so that `0` and `-1` get the same range message.
    max_attempts: Option<Spanned<i64>>,
    speculation: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    path: Spanned<String>,
    format: Option<Spanned<String>>,
    header: Option<Spanned<bool>>,
    delimiter: Option<Spanned<String>>,
    /// An integer or a string with a unit, so neither serde type fits alone.
    split_size: Option<Spanned<toml::Value>>,
    on_error: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    map: Option<Spanned<String>>,
    filter: Option<Spanned<String>>,
    flat_map: Option<Spanned<String>>,
    reduce: Option<Spanned<String>>,
    group_reduce: Option<Spanned<String>>,
    /// Signed, so that `0` and `-1` get the same range message.
    partitions: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    path: Spanned<String>,
    format: Option<Spanned<String>>,
    partitions: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShuffle {
    compression: Option<Spanned<String>>,
}

/// The text being parsed and its name, for turning spans into located errors.
struct Parser<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl Parser<'_> {
    fn location(&self, span: Range<usize>) -> Location {
        Location::of(self.text, span.start)
    }

    fn invalid(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> JobFileError {
        JobFileErrorKind::Invalid {
            origin: self.origin.to_owned(),
            at: span.map(|s| self.location(s)),
            field: field.into(),
            message: message.into(),
        }
        .into()
    }

    fn toml_error(&self, error: &toml::de::Error) -> JobFileError {
        let span = error.span();
        JobFileErrorKind::Toml {
            origin: self.origin.to_owned(),
            at: span.clone().map(|s| self.location(s)),
            message: error.message().to_owned(),
            snippet: span.map(|s| snippet(self.text, s)).unwrap_or_default(),
        }
        .into()
    }

    fn check(&self, raw: RawJob) -> Result<JobSpec, JobFileError> {
        let name = self.name(&raw.name)?;
        let input = self.input(raw.input)?;
        let steps = self.steps(raw.step)?;
        let has_wide_step = steps.iter().any(StepSpec::is_wide);
        let output = self.output(raw.output, has_wide_step)?;
        let shuffle = self.shuffle(raw.shuffle, has_wide_step)?;
        let limits = self.limits(raw.limits.unwrap_or_default())?;
        let speculation = raw.retry.as_ref().and_then(|r| r.speculation);
        let max_attempts = match raw.retry.and_then(|r| r.max_attempts) {
            None => None,
            Some(n) => Some(
                u32::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                    .ok_or_else(|| {
                        self.invalid(
                            Some(n.span()),
                            "retry.max_attempts",
                            format!(
                                "{} is not between 1 and {MAX_ATTEMPTS} (1: no retry)",
                                n.get_ref()
                            ),
                        )
                    })?,
            ),
        };
        Ok(JobSpec {
            name,
            input,
            steps,
            output,
            shuffle,
            limits,
            max_attempts,
            speculation,
            origin: self.origin.to_owned(),
        })
    }

    fn name(&self, name: &Spanned<String>) -> Result<String, JobFileError> {
        let value = name.get_ref();
        let ok = !value.is_empty()
            && value.chars().count() <= MAX_NAME_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !ok {
            return Err(self.invalid(
                Some(name.span()),
                "name",
                format!(
                    "{value:?} is not a valid job name: use 1-{MAX_NAME_LEN} characters of \
                     A-Z, a-z, 0-9, '_', '-' and '.'"
                ),
            ));
        }
        Ok(value.clone())
    }

    fn input(&self, raw: RawInput) -> Result<InputSpec, JobFileError> {
        let path = self.path(&raw.path, "input.path")?;
        let format_name = raw.format.as_ref().map_or("text", |f| f.get_ref().as_str());
        let Ok(mut format) = format_name.parse::<InputFormat>() else {
            return Err(self.invalid(
                raw.format.as_ref().map(Spanned::span),
                "input.format",
                format!("unknown input format {format_name:?} (expected text, csv or jsonl)"),
            ));
        };
        // `header` and `delimiter` only mean something for csv; elsewhere they are a mistake the
        // user should hear about rather than an option silently ignored.
        if let Some(header) = &raw.header {
            match &mut format {
                InputFormat::Csv { header: h, .. } => *h = *header.get_ref(),
                _ => return Err(self.csv_only(header.span(), "input.header", format_name)),
            }
        }
        if let Some(delimiter) = &raw.delimiter {
            match &mut format {
                InputFormat::Csv { delimiter: d, .. } => *d = self.delimiter(delimiter)?,
                _ => return Err(self.csv_only(delimiter.span(), "input.delimiter", format_name)),
            }
        }
        let split_size = raw
            .split_size
            .as_ref()
            .map(|size| self.split_size(size))
            .transpose()?;
        let on_error = match &raw.on_error {
            None => OnError::Fail,
            Some(name) => name.get_ref().parse::<OnError>().map_err(|_| {
                self.invalid(
                    Some(name.span()),
                    "input.on_error",
                    format!(
                        "{:?} is not one of \"fail\", \"skip\" or \"quarantine\"",
                        name.get_ref()
                    ),
                )
            })?,
        };
        Ok(InputSpec {
            path,
            format,
            split_size,
            on_error,
        })
    }

    fn csv_only(&self, span: Range<usize>, field: &str, format: &str) -> JobFileError {
        self.invalid(
            Some(span),
            field,
            format!("applies only to format = \"csv\" (this input is {format:?})"),
        )
    }

    fn delimiter(&self, raw: &Spanned<String>) -> Result<u8, JobFileError> {
        match raw.get_ref().as_bytes() {
            [b] if InputFormat::check_delimiter(*b).is_ok() => Ok(*b),
            _ => Err(self.invalid(
                Some(raw.span()),
                "input.delimiter",
                format!(
                    "{:?} is not one ASCII character other than '\"', CR or LF",
                    raw.get_ref()
                ),
            )),
        }
    }

    fn limits(
        &self,
        raw: BTreeMap<String, Spanned<toml::Value>>,
    ) -> Result<Vec<RequestedLimit>, JobFileError> {
        let mut limits = Vec::new();
        for (key, value) in raw {
            let field = format!("limits.{key}");
            let limit = Limit::from_key(&key)
                .map_err(|message| self.invalid(Some(value.span()), &field, message))?;
            let parsed = limit_value(limit, value.get_ref());
            let value_at = value.span();
            let value =
                parsed.map_err(|message| self.invalid(Some(value_at.clone()), &field, message))?;
            limits.push(RequestedLimit {
                limit,
                value,
                at: self.location(value_at),
            });
        }
        limits.sort_by_key(|l| l.limit);
        Ok(limits)
    }

    fn split_size(&self, raw: &Spanned<toml::Value>) -> Result<u64, JobFileError> {
        let size = match raw.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).ok(),
            toml::Value::String(s) => weft_io::parse_size(s).ok(),
            _ => None,
        };
        let given = match raw.get_ref() {
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::String(s) => format!("{s:?}"),
            other => format!("a {}", other.type_str()),
        };
        match size {
            Some(size) if size >= 1 => Ok(size),
            _ => Err(self.invalid(
                Some(raw.span()),
                "input.split_size",
                format!(
                    "{given} is not a size: write at least 1 byte, as an integer or as a string \
                     with a unit: KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), \
                     e.g. \"64MiB\" or \"1MB\""
                ),
            )),
        }
    }

    fn steps(
        &self,
        raw: Option<Spanned<Vec<Spanned<RawStep>>>>,
    ) -> Result<Vec<StepSpec>, JobFileError> {
        let no_steps = |span| self.invalid(span, "step", "a job needs at least one [[step]]");
        let raw = raw.ok_or_else(|| no_steps(None))?;
        if raw.get_ref().is_empty() {
            return Err(no_steps(Some(raw.span())));
        }
        raw.into_inner()
            .into_iter()
            .enumerate()
            .map(|(i, step)| self.step(i + 1, step))
            .collect()
    }

    fn step(&self, number: usize, raw: Spanned<RawStep>) -> Result<StepSpec, JobFileError> {
        let header_span = raw.span();
        let at = self.location(header_span.clone());
        let raw = raw.into_inner();
        let given: Vec<(UdfKind, Spanned<String>)> = [
            (UdfKind::Map, raw.map),
            (UdfKind::Filter, raw.filter),
            (UdfKind::FlatMap, raw.flat_map),
            (UdfKind::Reduce, raw.reduce),
            (UdfKind::GroupReduce, raw.group_reduce),
        ]
        .into_iter()
        .filter_map(|(kind, value)| Some((kind, value?)))
        .collect();
        let [(kind, reference)] = <[_; 1]>::try_from(given).map_err(|given: Vec<_>| {
            let found = if given.is_empty() {
                "found none".to_owned()
            } else {
                let kinds: Vec<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
                format!("found: {}", kinds.join(", "))
            };
            self.invalid(
                Some(header_span.clone()),
                format!("step {number}"),
                format!(
                    "a step needs exactly one of map, filter, flat_map, reduce, group_reduce \
                     ({found})"
                ),
            )
        })?;

        let field = format!("step {number}.{kind}");
        let (module, function) = self.reference(&reference, &field)?;

        let partitions = match &raw.partitions {
            None => None,
            Some(p) if !kind.is_grouped() => {
                return Err(self.invalid(
                    Some(p.span()),
                    format!("step {number}.partitions"),
                    format!(
                        "only a reduce or group_reduce step has partitions (this is a {kind} step)"
                    ),
                ));
            }
            Some(p) => Some(self.partitions(p, &format!("step {number}.partitions"))?),
        };
        Ok(StepSpec {
            number,
            kind,
            module,
            function,
            partitions,
            at,
            reference_at: self.location(reference.span()),
        })
    }

    /// Splits `MODULE/FUNCTION` and checks both halves. Module names and references cannot contain
    /// `/`, so the split is unambiguous.
    fn reference(
        &self,
        raw: &Spanned<String>,
        field: &str,
    ) -> Result<(String, String), JobFileError> {
        let text = raw.get_ref();
        let bad = |message: String| self.invalid(Some(raw.span()), field, message);
        let Some((module, function)) = text.split_once('/') else {
            return Err(bad(format!(
                "{text:?} is not MODULE/FUNCTION (e.g. \"wordcount/split_words\" or \
                 \"wordcount@2/sum\")"
            )));
        };
        ModuleRef::parse(module).map_err(|e| bad(e.to_string()))?;
        if !weft_abi::is_valid_udf_name(function) {
            return Err(bad(format!(
                "{function:?} in {text:?} is not a function name (ASCII letters, digits and '_')"
            )));
        }
        Ok((module.to_owned(), function.to_owned()))
    }

    fn partitions(&self, raw: &Spanned<i64>, field: &str) -> Result<u32, JobFileError> {
        match u32::try_from(*raw.get_ref()) {
            Ok(n) if (1..=MAX_TASKS_PER_STAGE).contains(&n) => Ok(n),
            _ => Err(self.invalid(
                Some(raw.span()),
                field,
                format!(
                    "must be from 1 to {MAX_TASKS_PER_STAGE} (got {})",
                    raw.get_ref()
                ),
            )),
        }
    }

    fn output(&self, raw: RawOutput, has_wide_step: bool) -> Result<OutputSpec, JobFileError> {
        let path = self.path(&raw.path, "output.path")?;
        let format_name = raw.format.as_ref().map_or("text", |f| f.get_ref().as_str());
        let Ok(format) = format_name.parse::<OutputFormat>() else {
            return Err(self.invalid(
                raw.format.as_ref().map(Spanned::span),
                "output.format",
                format!("unknown output format {format_name:?} (expected text, jsonl or csv)"),
            ));
        };
        let partitions = match &raw.partitions {
            None => 1,
            // Without a shuffle the output has one part per input split; a partition count could
            // only be ignored, and a user who wrote one expects it to count.
            Some(p) if !has_wide_step => {
                return Err(self.invalid(
                    Some(p.span()),
                    "output.partitions",
                    "has no effect in a job without a reduce or group_reduce step (it writes one \
                     part per input split); remove it",
                ));
            }
            Some(p) => self.partitions(p, "output.partitions")?,
        };
        Ok(OutputSpec {
            path,
            format,
            partitions,
        })
    }

    fn shuffle(
        &self,
        raw: Option<RawShuffle>,
        has_wide_step: bool,
    ) -> Result<ShuffleSpec, JobFileError> {
        let Some(raw) = raw.and_then(|r| r.compression) else {
            return Ok(ShuffleSpec::default());
        };
        let field = "shuffle.compression";
        let compression = match raw.get_ref().parse::<ShuffleCompression>() {
            Ok(compression) => compression,
            Err(e) => return Err(self.invalid(Some(raw.span()), field, e.to_string())),
        };
        // As with output.partitions: a setting that cannot take effect is a mistake to point out.
        if !has_wide_step {
            return Err(self.invalid(
                Some(raw.span()),
                field,
                "has no effect in a job without a reduce or group_reduce step (it has no \
                 shuffle); remove it",
            ));
        }
        Ok(ShuffleSpec { compression })
    }

    /// A non-empty path, made relative to the job file's directory unless absolute.
    fn path(&self, raw: &Spanned<String>, field: &str) -> Result<PathBuf, JobFileError> {
        if raw.get_ref().trim().is_empty() {
            return Err(self.invalid(Some(raw.span()), field, "must not be empty"));
        }
        let path = Path::new(raw.get_ref());
        Ok(match self.origin.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        })
    }
}

/// The line of `text` that `span` starts on, with the span underlined, in the layout the toml crate
/// (and rustc) use:
///
/// ```text
///   |
/// 4 | foo = 1
///   | ^^^
/// ```
fn snippet(text: &str, span: Range<usize>) -> String {
    let at = Location::of(text, span.start);
    let line = text
        .split('\n')
        .nth(at.line - 1)
        .unwrap_or("")
        .trim_end_matches('\r');
    // Tabs before the span are copied so the carets line up in a terminal.
    let pad: String = line
        .chars()
        .take(at.column - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let rest = line.chars().count().saturating_sub(at.column - 1);
    let width = text
        .get(span.clone())
        .map_or(1, |s| s.lines().next().unwrap_or("").chars().count())
        .clamp(1, rest.max(1));
    let gutter = " ".repeat(at.line.to_string().len());
    format!(
        "\n{gutter} |\n{} | {line}\n{gutter} | {pad}{}",
        at.line,
        "^".repeat(width)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_underline_the_span() {
        let text = "a = 1\n\tfoo = 2\n";
        assert_eq!(snippet(text, 7..10), "\n  |\n2 | \tfoo = 2\n  | \t^^^");
        // An empty span at the end still gets one caret.
        assert_eq!(snippet(text, 16..16), "\n  |\n3 | \n  | ^");
    }
}
