//! Errors of job files and plans, and the source locations they point at.
//!
//! Every error about a job file starts with `FILE:LINE:COLUMN:` (the form editors and terminals
//! link to) and names the field, so the user can go straight to the mistake.

use std::fmt;
use std::path::PathBuf;

use weft_abi::UdfKind;

use crate::RegistryError;

/// A position in a job file: 1-based line and column, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `text`. An offset past the end (or inside a character)
    /// is clamped, since spans come from another crate and a wrong one must not panic.
    pub(crate) fn of(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// `:LINE:COLUMN` after a file name, or nothing when the position is unknown.
struct At(Option<Location>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, ":{at}"),
            None => Ok(()),
        }
    }
}

/// Why a job file cannot be run; [`JobFileError::kind`] says which way.
///
/// Boxed, because the variants carry their full context (file, position, step, the module's
/// functions) and a large `Err` would make every `Result` of the parser that large.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct JobFileError(Box<JobFileErrorKind>);

impl JobFileError {
    pub fn kind(&self) -> &JobFileErrorKind {
        &self.0
    }

    pub fn into_kind(self) -> JobFileErrorKind {
        *self.0
    }
}

impl From<JobFileErrorKind> for JobFileError {
    fn from(kind: JobFileErrorKind) -> JobFileError {
        JobFileError(Box::new(kind))
    }
}

/// The ways a job file can be wrong. Everything here is the user's to fix, except [`Read`] and
/// [`Registry`], which can also be the machine's.
///
/// [`Read`]: JobFileErrorKind::Read
/// [`Registry`]: JobFileErrorKind::Registry
#[derive(Debug, thiserror::Error)]
pub enum JobFileErrorKind {
    #[error("cannot read job file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Not TOML, a value of the wrong type, an unknown or missing key: the toml crate's message,
    /// followed by the offending line with the span underlined.
    #[error("{}{}: {message}{snippet}", origin.display(), At(*at))]
    Toml {
        origin: PathBuf,
        at: Option<Location>,
        message: String,
        snippet: String,
    },

    /// Well-formed TOML that is not a valid job; `field` is the path of the offending key, such as
    /// `input.split_size` or `step 2.partitions`.
    #[error("{}{}: {field}: {message}", origin.display(), At(*at))]
    Invalid {
        origin: PathBuf,
        at: Option<Location>,
        field: String,
        message: String,
    },

    /// The step's module reference names no module of the tenant.
    #[error("{}:{at}: step {step}: {kind} {reference:?}: {detail}", origin.display())]
    UnknownModule {
        origin: PathBuf,
        at: Location,
        step: usize,
        kind: UdfKind,
        reference: String,
        detail: String,
    },

    /// The module exists but exports no function of that name.
    #[error(
        "{}:{at}: step {step}: {kind} {reference:?}: module {module} has no function {function:?} \
         (its functions: {})",
        origin.display(),
        available.join(", ")
    )]
    UnknownFunction {
        origin: PathBuf,
        at: Location,
        step: usize,
        kind: UdfKind,
        reference: String,
        /// `name@version` of the module the reference resolved to.
        module: String,
        function: String,
        /// Every function of the module as `kind name`.
        available: Vec<String>,
    },

    /// The function exists but is of another kind than the step's key.
    #[error(
        "{}:{at}: step {step}: {kind} {reference:?} names a {actual} function",
        origin.display()
    )]
    KindMismatch {
        origin: PathBuf,
        at: Location,
        step: usize,
        kind: UdfKind,
        reference: String,
        /// The kind the registry recorded for the function (a string, as the index stores it).
        actual: String,
    },

    /// The registry itself failed (I/O, a corrupt index): not a mistake in the job file.
    #[error(
        "{}:{at}: step {step}: cannot look up {reference:?} in the module registry",
        origin.display()
    )]
    Registry {
        origin: PathBuf,
        at: Location,
        step: usize,
        reference: String,
        #[source]
        source: RegistryError,
    },
}

/// Why a resolved job cannot be planned over the given input.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cutting the input into splits")]
    Io(#[from] weft_io::Error),
    #[error(
        "the input ({bytes} bytes in {files} files) makes {splits} splits of {split_size} bytes, \
         over the limit of {limit} tasks per stage: raise input.split_size"
    )]
    TooManySplits {
        files: usize,
        bytes: u64,
        splits: u64,
        split_size: u64,
        limit: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(text, 6), Location { line: 2, column: 1 });
        // `=` after a two-byte character is the fourth character of line 2.
        assert_eq!(Location::of(text, 10), Location { line: 2, column: 4 });
        // Inside a character or past the end: clamped, never a panic.
        assert_eq!(Location::of(text, 8), Location { line: 2, column: 2 });
        assert_eq!(Location::of(text, 999), Location { line: 3, column: 1 });
    }
}
