//! The one error type of weft-io: every variant names the file or pattern it is about, and a
//! reader's errors also give the byte offset, so a message alone locates the problem.

use std::io;
use std::path::PathBuf;

/// A failure to find, read, write or commit job data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("input {pattern:?} does not exist")]
    InputNotFound { pattern: String },

    #[error("input {pattern:?} matches no input files")]
    NoInputFiles { pattern: String },

    #[error("input {pattern:?} is not a valid glob pattern")]
    BadPattern {
        pattern: String,
        #[source]
        source: glob::PatternError,
    },

    /// A directory or file named by (or found through) an input pattern could not be inspected.
    #[error("input {pattern:?}: cannot read {}", path.display())]
    Inspect {
        pattern: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("split size must be at least 1 byte")]
    ZeroSplitSize,

    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {} at byte {offset}", path.display())]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },

    /// A line is too long to be one value of an Arrow `Binary` array (2 GiB).
    #[error("{}: the line at byte {offset} is longer than {limit} bytes", path.display())]
    LineTooLong {
        path: PathBuf,
        offset: u64,
        limit: usize,
    },

    /// A JSON Lines line that is not one JSON value (with `on_error = "fail"`).
    #[error("{}:{line}: not valid JSON ({source}): {start}", path.display())]
    InvalidJson {
        path: PathBuf,
        /// 1-based.
        line: u64,
        offset: u64,
        /// The start of the line, quoted.
        start: String,
        source: serde_json::Error,
    },

    /// A CSV record with another number of fields than the header (with `on_error = "fail"`).
    #[error(
        "{}:{line}: the record has {fields} field{}, the header {expected}: {start}",
        path.display(),
        if *fields == 1 { "" } else { "s" }
    )]
    BadCsvRecord {
        path: PathBuf,
        /// 1-based: the line the record starts on.
        line: u64,
        offset: u64,
        fields: usize,
        expected: usize,
        /// The start of the record, quoted.
        start: String,
    },

    /// Assembling a batch broke an invariant of the reader or writer: a bug in weft-io.
    #[error("{}: internal error while building a batch at byte {offset}: {message}", path.display())]
    Batch {
        path: PathBuf,
        offset: u64,
        message: String,
    },

    #[error("output {} already exists; pass --overwrite to replace it", path.display())]
    OutputExists { path: PathBuf },

    #[error("output {} exists and is not a directory; refusing to replace it", path.display())]
    OutputNotDirectory { path: PathBuf },

    /// `--overwrite` on a directory Weft did not commit, or that holds more than Weft wrote.
    #[error(
        "output {} holds {found}, so it is not an output Weft committed (those hold only `_SUCCESS`, \
         `_WEFT` and part files); --overwrite replaces only those: move or delete it yourself, or \
         choose another output",
        path.display()
    )]
    NotWeftOutput { path: PathBuf, found: String },

    /// The output is, contains or lies inside an input (after resolving `..` and symlinks).
    #[error(
        "output {} {relation} input {}; an output must lie apart from the job's input",
        output.display(),
        input.display()
    )]
    OutputOverlapsInput {
        output: PathBuf,
        input: PathBuf,
        relation: &'static str,
    },

    #[error("output path {} has no directory name", path.display())]
    BadOutputPath { path: PathBuf },

    /// A job picked up again (its scheduler restarted) found its staging directory gone or not one
    /// it could have made.
    #[error("the staging directory {} of output {} {problem}", staging.display(), output.display())]
    BadStaging {
        output: PathBuf,
        staging: PathBuf,
        problem: String,
    },

    /// A path leads outside the data roots its job may use.
    #[error(
        "{} {}outside the directories this job may {access} ({roots}): a tenant's jobs {access} \
         only under the roots the tenants file gives it",
        path.display(),
        if path == real { String::new() } else { format!("leads to {}, ", real.display()) }
    )]
    OutsideRoots {
        path: PathBuf,
        real: PathBuf,
        access: &'static str,
        roots: String,
    },

    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot create directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot rename {} to {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot remove {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The commit itself succeeded (the new output is at its final path), but the output it
    /// replaced could not be deleted and is still at `path`.
    #[error(
        "output committed, but the replaced output at {} could not be removed",
        path.display()
    )]
    RemoveReplaced {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
