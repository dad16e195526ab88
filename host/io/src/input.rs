//! The input side of a job before any byte is read: which files an input pattern names, how their
//! records are framed, and how they are cut into byte-range splits, one per map task.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// How the bytes of an input file become records: the one vocabulary of input formats, from the
/// job file (`[input] format`, `header`, `delimiter`) through the task protocol to the reader.
/// Text and JSON Lines are line-oriented, CSV record-oriented; see
/// [`SplitReader`](crate::SplitReader) for the rules they share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// Every line is a record.
    Text,
    /// RFC 4180 records (quotes, `""` escapes, quoted newlines) separated by `delimiter`. With
    /// `header`, the file's first record names the columns and is not a record. UDFs receive each
    /// record's fields, unquoted, in the row encoding (`weft_abi::row`; the Rust SDK's `Row`), with
    /// the header's names when there is one.
    Csv {
        header: bool,
        /// The field separator of the file: one ASCII byte other than `"`, CR and LF (see
        /// [`InputFormat::check_delimiter`]).
        delimiter: u8,
    },
    /// JSON Lines: every non-blank line must be one JSON value and is a record, kept raw; lines of
    /// only spaces, tabs and carriage returns are skipped.
    Jsonl,
}

impl InputFormat {
    /// CSV as a job file means it when it sets nothing else: a header row, comma-separated.
    pub const CSV: InputFormat = InputFormat::Csv {
        header: true,
        delimiter: b',',
    };

    /// The name a job file uses for the format: `text`, `csv` or `jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Text => "text",
            InputFormat::Csv { .. } => "csv",
            InputFormat::Jsonl => "jsonl",
        }
    }

    /// Whether `delimiter` can separate CSV fields: one ASCII byte other than a quote, CR or LF
    /// (any of those would make rows impossible to tell apart).
    pub fn check_delimiter(delimiter: u8) -> Result<u8, InvalidDelimiter> {
        if delimiter.is_ascii() && !b"\"\r\n".contains(&delimiter) {
            Ok(delimiter)
        } else {
            Err(InvalidDelimiter(delimiter))
        }
    }
}

impl fmt::Display for InputFormat {
    /// `text`, `jsonl`, `csv`, `csv without header delimited by ';'`: the name, and how a CSV
    /// input differs from [`InputFormat::CSV`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let InputFormat::Csv { header, delimiter } = *self {
            if !header {
                f.write_str(" without header")?;
            }
            if delimiter != b',' {
                write!(f, " delimited by {:?}", char::from(delimiter))?;
            }
        }
        Ok(())
    }
}

/// What a reader does with a record it cannot decode (a line that is not JSON, a CSV record whose
/// field count differs from its header's): Spark's `FAILFAST`, `DROPMALFORMED` and
/// `badRecordsPath`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnError {
    /// The task, and the job, fail with an error naming the file, the line and its start.
    #[default]
    Fail,
    /// The record is dropped and counted.
    Skip,
    /// The record is dropped, counted, and kept with its file, line and reason for the job's
    /// `_bad_records/` (see [`BadRecord`](crate::BadRecord)).
    Quarantine,
}

impl OnError {
    /// The name a job file uses: `fail`, `skip` or `quarantine`.
    pub fn name(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
            OnError::Quarantine => "quarantine",
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OnError {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        [OnError::Fail, OnError::Skip, OnError::Quarantine]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// The unknown name a format was asked for by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}")]
pub struct UnknownFormat(pub String);

/// A byte that cannot be a CSV delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{:?} is not one ASCII character other than '\"', CR or LF", char::from(*.0))]
pub struct InvalidDelimiter(pub u8);

impl FromStr for InputFormat {
    type Err = UnknownFormat;

    /// A format by its [`name`](InputFormat::name); `csv` is [`InputFormat::CSV`].
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        [InputFormat::Text, InputFormat::CSV, InputFormat::Jsonl]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// One input file and its size when it was resolved (splits are planned from this size).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputFile {
    pub path: PathBuf,
    pub size: u64,
}

/// Expands an input pattern into the files it names, sorted by path.
///
/// - A path to a file (or a symlink to one) names that file.
/// - A path to a directory names the regular files directly inside it; subdirectories are not
///   descended into, and hidden files (names starting with `.` or `_`, such as a job output's
///   `_SUCCESS` marker or a staging directory) are skipped, as Hadoop's input formats do.
/// - Otherwise, if the pattern contains `*`, `?` or `[`, it is a glob (`*` does not cross `/`
///   and does not match a leading `.`); the regular files it matches, less hidden ones, are named.
///
/// A path that does not exist, a pattern that names no file, and a directory that cannot be read
/// are errors naming the pattern. Paths keep the pattern's form (relative stays relative).
pub fn resolve_inputs(pattern: &str) -> Result<Vec<InputFile>> {
    let inspect = |path: &Path, source| Error::Inspect {
        pattern: pattern.to_owned(),
        path: path.to_owned(),
        source,
    };
    let literal = Path::new(pattern);
    let mut files = match fs::metadata(literal) {
        Ok(meta) if meta.is_dir() => list_dir(pattern, literal)?,
        Ok(meta) => vec![InputFile {
            path: literal.to_owned(),
            size: meta.len(),
        }],
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !pattern.contains(['*', '?', '[']) {
                return Err(Error::InputNotFound {
                    pattern: pattern.to_owned(),
                });
            }
            expand_glob(pattern)?
        }
        Err(e) => return Err(inspect(literal, e)),
    };
    if files.is_empty() {
        return Err(Error::NoInputFiles {
            pattern: pattern.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// Files starting with `.` or `_` are bookkeeping (markers, staging and temporary files), not data.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .map(|name| {
            let name = name.as_encoded_bytes();
            name.starts_with(b".") || name.starts_with(b"_")
        })
        .unwrap_or(false)
}

fn list_dir(pattern: &str, dir: &Path) -> Result<Vec<InputFile>> {
    let inspect = |path: &Path, source| Error::Inspect {
        pattern: pattern.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| inspect(dir, e))? {
        let path = entry.map_err(|e| inspect(dir, e))?.path();
        if is_hidden(&path) {
            continue;
        }
        // `fs::metadata` follows symlinks, so a link to a file is read like the file.
        let meta = fs::metadata(&path).map_err(|e| inspect(&path, e))?;
        if meta.is_file() {
            files.push(InputFile {
                path,
                size: meta.len(),
            });
        }
    }
    Ok(files)
}

fn expand_glob(pattern: &str) -> Result<Vec<InputFile>> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(pattern, options).map_err(|source| Error::BadPattern {
        pattern: pattern.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| Error::Inspect {
            pattern: pattern.to_owned(),
            path: e.path().to_owned(),
            source: e.into(),
        })?;
        if is_hidden(&path) {
            continue;
        }
        let meta = fs::metadata(&path).map_err(|source| Error::Inspect {
            pattern: pattern.to_owned(),
            path: path.clone(),
            source,
        })?;
        if meta.is_file() {
            files.push(InputFile {
                path,
                size: meta.len(),
            });
        }
    }
    Ok(files)
}

impl From<(PathBuf, u64)> for InputFile {
    fn from((path, size): (PathBuf, u64)) -> InputFile {
        InputFile { path, size }
    }
}

/// A byte range of one input file: the unit of work of one map task.
///
/// A split owns the records whose line *starts* in `start..start + length`; see
/// [`SplitReader`](crate::SplitReader).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InputSplit {
    pub path: PathBuf,
    pub start: u64,
    pub length: u64,
}

impl InputSplit {
    /// The whole of a file, as one split.
    pub fn whole(file: &InputFile) -> InputSplit {
        InputSplit {
            path: file.path.clone(),
            start: 0,
            length: file.size,
        }
    }

    /// The first byte past the range.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.length)
    }
}

/// Cuts every file into consecutive splits of `split_size` bytes (the last one of a file shorter),
/// in the order of `files`. A CSV file longer than one split is read once to cut it only where a
/// record starts (a quoted field may hold newlines; see `csv.rs`), so its splits are of about
/// `split_size` bytes, and fewer where one record is longer than that.
///
/// An empty file gives no split: it has no records, and a task for it would only cost a slot.
pub fn plan_splits(
    files: &[InputFile],
    split_size: u64,
    format: InputFormat,
) -> Result<Vec<InputSplit>> {
    if split_size == 0 {
        return Err(Error::ZeroSplitSize);
    }
    let mut splits = Vec::new();
    for file in files {
        // Every `split_size` bytes; for CSV, moved to where a record starts (see `csv.rs`).
        let nominal: Vec<u64> = (1..file.size.div_ceil(split_size))
            .map(|k| k * split_size)
            .collect();
        let mut bounds = match format {
            InputFormat::Csv { delimiter, .. } if !nominal.is_empty() => {
                crate::csv::record_starts(&file.path, delimiter, &nominal)?
            }
            _ => nominal,
        };
        bounds.insert(0, 0);
        bounds.push(file.size);
        bounds.dedup();
        for pair in bounds.windows(2) {
            let (start, end) = (pair[0], pair[1].min(file.size));
            if end > start {
                splits.push(InputSplit {
                    path: file.path.clone(),
                    start,
                    length: end - start,
                });
            }
        }
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> InputFile {
        InputFile {
            path: path.into(),
            size,
        }
    }

    #[test]
    fn splits_cover_each_file_exactly() {
        let files = [file("a", 10), file("empty", 0), file("b", 3)];
        let got: Vec<_> = plan_splits(&files, 4, InputFormat::Text)
            .unwrap()
            .into_iter()
            .map(|s| (s.path.to_string_lossy().into_owned(), s.start, s.length))
            .collect();
        let want = [("a", 0, 4), ("a", 4, 4), ("a", 8, 2), ("b", 0, 3)]
            .map(|(p, s, l)| (p.to_owned(), s, l));
        assert_eq!(got, want);
    }

    #[test]
    fn zero_split_size_is_an_error() {
        assert!(matches!(
            plan_splits(&[file("a", 1)], 0, InputFormat::Text),
            Err(Error::ZeroSplitSize)
        ));
    }

    #[test]
    fn format_names_round_trip() {
        for name in ["text", "csv", "jsonl"] {
            assert_eq!(name.parse::<InputFormat>().unwrap().name(), name);
        }
        assert_eq!("csv".parse::<InputFormat>(), Ok(InputFormat::CSV));
        assert!("tsv".parse::<InputFormat>().is_err());
        let semicolons = InputFormat::Csv {
            header: false,
            delimiter: b';',
        };
        assert_eq!(
            semicolons.to_string(),
            "csv without header delimited by ';'"
        );
    }

    #[test]
    fn delimiters_that_would_blur_rows_are_refused() {
        for ok in [b',', b';', b'\t', b'|', b' '] {
            assert_eq!(InputFormat::check_delimiter(ok), Ok(ok));
        }
        for bad in [b'"', b'\r', b'\n', 0xE9] {
            assert_eq!(
                InputFormat::check_delimiter(bad),
                Err(InvalidDelimiter(bad))
            );
        }
    }

    #[test]
    fn hidden_names() {
        assert!(is_hidden(Path::new("out/_SUCCESS")));
        assert!(is_hidden(Path::new(".staging")));
        assert!(!is_hidden(Path::new("_dir/part-00000")));
    }
}
