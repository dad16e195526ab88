//! Weft's job input and output: the storage side of a data-parallel job, in the style of Hadoop's
//! input formats and output committers.
//!
//! # Brief overview
//! - [`resolve_inputs`] turns an input pattern (a file, a directory or a glob) into sorted
//!   [`InputFile`]s; [`plan_splits`] cuts them into byte-range [`InputSplit`]s, one per map task.
//! - [`SplitReader`] reads one split in an [`InputFormat`] (text, CSV, JSON Lines) as batches of
//!   [`weft_batch::Records`], the batch type UDFs consume. Lines are assigned to splits by
//!   Hadoop's rule (a line belongs to the split holding its first byte), so any split size gives
//!   every line exactly once. Keys are `"{path}:{byte offset}"`.
//! - [`PartWriter`] writes one partition's records as `part-NNNNN` in an [`OutputFormat`].
//! - [`OutputCommitter`] stages a job's parts in a hidden directory and renames it into place with
//!   a `_SUCCESS` marker only on commit, so a failed job never leaves a partial output.
//! - [`AtomicFile`] / [`write_atomically`]: a file that appears whole or not at all, with the one
//!   fsync policy every published file of Weft follows (parts, registry blobs, worker caches).
//!
//! Every failure is an [`Error`] naming the path (and, for reads, the byte offset) involved.

mod atomic;
mod commit;
mod csv;
mod error;
mod input;
mod output;
mod paths;
mod reader;
mod roots;

pub use atomic::{AtomicFile, write_atomically};
pub use commit::{
    BAD_RECORDS_DIR, OutputCommitter, SUCCESS_MARKER, WEFT_MARKER, check_output,
    remove_abandoned_staging,
};
pub use error::{Error, Result};
pub use input::{
    InputFile, InputFormat, InputSplit, InvalidDelimiter, OnError, UnknownFormat, plan_splits,
    resolve_inputs,
};
pub use output::{OutputFormat, PartStats, PartWriter, attempt_part_name, part_file_name};
pub use paths::{check_apart, normalize, real_path};
pub use reader::{
    BadRecord, DEFAULT_BATCH_BYTES, DEFAULT_CHUNK_BYTES, ReadOptions, ReaderBuffers, SplitReader,
    line_number,
};
pub use roots::{Access, DataRoots};
pub use weft_batch::{format_size, parse_size};

/// A suffix no other temporary name from this or a concurrent process has: pid, wall-clock
/// nanoseconds, and a per-process counter for names made within one clock tick.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos}-{n}", std::process::id())
}
