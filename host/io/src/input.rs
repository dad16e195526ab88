//! The input side of a job before any byte is read: which files an input pattern names, how their
//! records are framed, and how they are cut into byte-range splits, one per map task.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// How the bytes of an input file become records. Every format is line-oriented; see
/// [`SplitReader`](crate::SplitReader) for the line and key rules they share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// Every line is a record.
    Text,
    /// Every line is a record, kept raw (UDFs split the fields). With `header`, the file's first
    /// line names the columns and is not a record.
    Csv { header: bool },
    /// JSON Lines: every non-blank line must be one JSON value and is a record, kept raw; lines of
    /// only spaces, tabs and carriage returns are skipped.
    Jsonl,
}

impl InputFormat {
    /// The names [`FromStr`] accepts, for CLI help.
    pub const NAMES: &'static [&'static str] = &["text", "csv", "csv-header", "jsonl"];
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::Text => "text",
            InputFormat::Csv { header: false } => "csv",
            InputFormat::Csv { header: true } => "csv-header",
            InputFormat::Jsonl => "jsonl",
        })
    }
}

/// The unknown name a format was asked for by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}")]
pub struct UnknownFormat(pub String);

impl FromStr for InputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        match s {
            "text" => Ok(InputFormat::Text),
            "csv" => Ok(InputFormat::Csv { header: false }),
            "csv-header" => Ok(InputFormat::Csv { header: true }),
            "jsonl" => Ok(InputFormat::Jsonl),
            _ => Err(UnknownFormat(s.to_owned())),
        }
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
/// in the order of `files`.
///
/// An empty file gives no split: it has no records, and a task for it would only cost a slot.
pub fn plan_splits(files: &[InputFile], split_size: u64) -> Result<Vec<InputSplit>> {
    if split_size == 0 {
        return Err(Error::ZeroSplitSize);
    }
    let mut splits = Vec::new();
    for file in files {
        let mut start = 0;
        while start < file.size {
            let length = split_size.min(file.size - start);
            splits.push(InputSplit {
                path: file.path.clone(),
                start,
                length,
            });
            start += length;
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
        let got: Vec<_> = plan_splits(&files, 4)
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
            plan_splits(&[file("a", 1)], 0),
            Err(Error::ZeroSplitSize)
        ));
    }

    #[test]
    fn format_names_round_trip() {
        for name in InputFormat::NAMES {
            assert_eq!(name.parse::<InputFormat>().unwrap().to_string(), *name);
        }
        assert!("tsv".parse::<InputFormat>().is_err());
    }

    #[test]
    fn hidden_names() {
        assert!(is_hidden(Path::new("out/_SUCCESS")));
        assert!(is_hidden(Path::new(".staging")));
        assert!(!is_hidden(Path::new("_dir/part-00000")));
    }
}
