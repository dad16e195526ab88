//! Reading one input split as batches of records: the map side's hot path.
//!
//! The reader keeps its own window over the file (read in chunks of megabytes, grown only for a
//! line longer than the window) and finds line ends with `memchr`. Each batch's keys and values are
//! appended straight into one data buffer and one offset vector per column, which become the Arrow
//! arrays without another copy, so there is no allocation per record.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::iter::FusedIterator;
use std::path::{Path, PathBuf};

use arrow_array::BinaryArray;
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use weft_abi::row::RowEncoder;
use weft_batch::Records;

use crate::csv::{Parsed, RecordParser};
use crate::error::{Error, Result};
use crate::input::{InputFormat, InputSplit, OnError};
use crate::roots::{Access, DataRoots};

/// Default value bytes per batch.
pub const DEFAULT_BATCH_BYTES: usize = 4 << 20;
/// Default size of one read from the file.
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;

/// Arrow `Binary` arrays address their data with `i32` offsets, so no batch column (and hence no
/// line) can hold more than this.
const MAX_COLUMN_BYTES: usize = i32::MAX as usize;
/// The most a CSV record's fields may hold: past this, an unbalanced quote has most likely
/// swallowed the rest of the file.
pub(crate) const MAX_RECORD_BYTES: usize = 1 << 30;
/// Batches close once they pass `batch_bytes`, so the cap keeps a full batch well below
/// [`MAX_COLUMN_BYTES`] and leaves room for the line that pushes it over.
const MAX_BATCH_BYTES: usize = 1 << 30;
const MAX_CHUNK_BYTES: usize = 256 << 20;
/// A split's window is sized for its length plus this much of the line it finishes past its end.
const WINDOW_SLACK: u64 = 4 << 10;

/// Tuning for a [`SplitReader`]; out-of-range values are clamped (batch: 1 byte..1 GiB; chunk:
/// 1 byte..256 MiB). Chunks under a few hundred KiB cost throughput; tiny ones exist for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// A batch is closed as soon as its values reach this many bytes, so it holds about this much
    /// value data, plus at most one line. It also closes when its keys reach this many bytes,
    /// which bounds batches of many empty or tiny lines, whose keys outweigh their values (without
    /// keys, when the offsets of both columns do).
    pub batch_bytes: usize,
    /// How much is read from the file at a time.
    pub chunk_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            batch_bytes: DEFAULT_BATCH_BYTES,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet: a split that starts mid-file must first skip the line it starts inside.
    Start,
    Reading,
    /// The split's lines are all out, or reading failed (the reader is fused after an error).
    Done,
}

/// Reads the records of one [`InputSplit`] as batches of [`Records`].
///
/// # Records
/// - A record is one line without its ending: `\n`, or `\r\n` (a single `\r` before the `\n` is
///   dropped, and so is a `\r` ending a last line). A last line without a newline is a record; a
///   file ending in `\n` has no empty record after it; an empty line inside a file is a record
///   with an empty value. Lines may be of any length up to 2 GiB.
/// - A line belongs to the split that holds its first byte (Hadoop's rule). A split starting
///   mid-file looks at the byte before its start: if it is `\n` the line at `start` is its first;
///   otherwise it skips to just after the next `\n`. The split reads past its end to finish its
///   last line. So the splits of a file, read one by one, give each line exactly once.
/// - The key is the file path (as given in the split, lossily converted to UTF-8) and the byte
///   offset of the line's first byte, as UTF-8 text: `"{path}:{offset}"`, e.g.
///   `data/a.txt:1042`. (Hadoop's `TextInputFormat` keys by offset alone; with the path too, keys
///   from different files of one job never collide.) Or empty, for a job that does not read it
///   ([`SplitReader::with_keys`]).
/// - The value is the line's raw bytes (no UTF-8 check for text and CSV).
/// - [`InputFormat::Csv`] with `header`: the line at offset 0 is the header and never a record;
///   only the split starting at 0 sees it. With a delimiter other than `,`, each row is re-encoded
///   comma-separated (RFC 4180 quoting) before it becomes a value, so UDFs read every dialect
///   alike; a comma-separated row is passed as it is.
/// - [`InputFormat::Jsonl`]: lines of only spaces, tabs and `\r` are skipped; any other line must
///   be one JSON value, else [`Error::InvalidJson`] names the path and the line's offset.
pub struct SplitReader {
    path: PathBuf,
    /// `"{path}:"`, the part of every key that does not change.
    key_prefix: Vec<u8>,
    /// Whether records get `PATH:OFFSET` keys; without, every key is empty (the first UDF reading
    /// the records states it never reads keys, and formatting them nearly doubles what a batch of
    /// short lines holds).
    keys: bool,
    format: InputFormat,
    /// For CSV: the record parser and what each row is encoded with.
    csv: Option<Box<CsvState>>,
    file: File,
    start: u64,
    end: u64,
    options: ReadOptions,
    /// The window over the file: `buf[pos..filled]` is read but not yet consumed.
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    buf_offset: u64,
    pos: usize,
    /// `buf[pos..scanned]` is known to hold no `\n`, so a long line is scanned once, not once
    /// per refill.
    scanned: usize,
    filled: usize,
    eof: bool,
    state: State,
    /// The buffers of the last batch (keys, then values), taken back for the next one once its
    /// consumer has dropped it: a batch is megabytes, and a fresh one costs page faults to map
    /// and zero every time (glibc maps blocks that large anew).
    recycle: Option<[Column; 2]>,
    on_error: OnError,
    /// Records dropped as malformed.
    skipped: u64,
    /// Malformed records kept for quarantine, until [`SplitReader::take_bad_records`].
    bad: Vec<BadRecord>,
    /// Line numbers of the file: a known `(offset, line)` and a handle to count newlines from it.
    lines: (u64, u64),
    line_file: Option<File>,
    /// The roots every file this reader opens must lie in, if restricted.
    roots: Option<DataRoots>,
}

/// Moves `file` (open on `path`) to `offset`.
fn seek(file: &mut File, path: &Path, offset: u64) -> Result<()> {
    file.seek(SeekFrom::Start(offset))
        .map(drop)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            offset,
            source,
        })
}

/// A malformed input record, as `on_error = "quarantine"` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub path: PathBuf,
    /// 1-based: the line the record starts on.
    pub line: u64,
    pub offset: u64,
    pub reason: String,
    /// The record's bytes (for CSV, its fields joined by the delimiter), at most
    /// [`BadRecord::MAX_KEPT`] of them.
    pub record: Vec<u8>,
}

impl BadRecord {
    /// How much of a bad record is kept.
    pub const MAX_KEPT: usize = 64 << 10;

    /// One JSON Lines line: `{"file":…,"line":…,"offset":…,"reason":…,"record":…}` (the record
    /// as text, invalid UTF-8 replaced), with its `\n`.
    pub fn to_json_line(&self) -> Vec<u8> {
        let mut line = serde_json::json!({
            "file": self.path.to_string_lossy(),
            "line": self.line,
            "offset": self.offset,
            "reason": self.reason,
            "record": String::from_utf8_lossy(&self.record),
        })
        .to_string()
        .into_bytes();
        line.push(b'\n');
        line
    }
}

/// The 1-based number of the line of the file at `path` holding byte `offset`.
pub fn line_number(path: &Path, offset: u64) -> Result<u64> {
    let mut file = File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    Ok(1 + count_newlines(&mut file, path, 0, offset)?)
}

/// The `\n`s in bytes `from..to` of `file` (at `path`, for errors); fewer if it ends first.
fn count_newlines(file: &mut File, path: &Path, from: u64, to: u64) -> Result<u64> {
    let read_error = |source, at| Error::Read {
        path: path.to_owned(),
        offset: at,
        source,
    };
    file.seek(SeekFrom::Start(from))
        .map_err(|e| read_error(e, from))?;
    let mut lines = 0;
    let mut left = to.saturating_sub(from);
    let mut chunk = vec![0; (left as usize).clamp(1, 1 << 20)];
    while left > 0 {
        let want = (left as usize).min(chunk.len());
        let n = match file.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e, to - left)),
        };
        lines += memchr::memchr_iter(b'\n', &chunk[..n]).count() as u64;
        left -= n as u64;
    }
    Ok(lines)
}

/// How much of a line an error message quotes: enough to find it, short enough to read.
const QUOTED_CHARS: usize = 48;

/// The start of `bytes`, quoted, for error messages.
fn quote_start(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(QUOTED_CHARS).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

/// A CSV reader's own state.
struct CsvState {
    parser: RecordParser,
    /// Encodes each record as a row, with the header's names when the file has a header.
    rows: RowEncoder,
    /// This split starts the file and its first record is the header: skip it.
    skip_header: bool,
    delimiter: u8,
    /// A record read but left for the next batch (the current one was full): its offset; its
    /// fields are still the parser's.
    pending: Option<u64>,
}

/// The buffers of a batch column handed out, kept to be reused.
struct Column {
    offsets: Buffer,
    data: Buffer,
}

/// What a finished [`SplitReader`] leaves for the next one: its window over the file and the
/// buffers of its last batch. A worker that reads split after split hands them on
/// ([`SplitReader::open_reusing`], [`SplitReader::into_buffers`]) so that each split does not map
/// and zero tens of fresh megabytes: fresh batch buffers were about 40 % of the page faults of a
/// 1 GB word count.
#[derive(Default)]
pub struct ReaderBuffers {
    window: Vec<u8>,
    columns: Option<[Column; 2]>,
}

impl fmt::Debug for ReaderBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderBuffers")
            .field("window", &self.window.capacity())
            .field("columns", &self.columns.is_some())
            .finish()
    }
}

impl fmt::Debug for SplitReader {
    // The buffer is megabytes of file data; show where the reader is instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("position", &(self.buf_offset + self.pos as u64))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SplitReader {
    /// Opens a split with the default [`ReadOptions`].
    pub fn open(split: &InputSplit, format: InputFormat) -> Result<SplitReader> {
        SplitReader::open_with(split, format, ReadOptions::default())
    }

    /// Opens a split with the given [`ReadOptions`].
    pub fn open_with(
        split: &InputSplit,
        format: InputFormat,
        options: ReadOptions,
    ) -> Result<SplitReader> {
        SplitReader::open_reusing(split, format, options, ReaderBuffers::default())
    }

    /// Opens a split, reading into the buffers an earlier reader left ([`into_buffers`]).
    ///
    /// [`into_buffers`]: SplitReader::into_buffers
    pub fn open_reusing(
        split: &InputSplit,
        format: InputFormat,
        options: ReadOptions,
        buffers: ReaderBuffers,
    ) -> Result<SplitReader> {
        SplitReader::open_within(split, format, options, buffers, None)
    }

    /// [`SplitReader::open_reusing`], refusing a file that is not really inside `roots` (what
    /// was opened is checked, not the path: see [`DataRoots::check_opened`]).
    pub fn open_within(
        split: &InputSplit,
        format: InputFormat,
        options: ReadOptions,
        buffers: ReaderBuffers,
        roots: Option<&DataRoots>,
    ) -> Result<SplitReader> {
        let options = ReadOptions {
            batch_bytes: options.batch_bytes.clamp(1, MAX_BATCH_BYTES),
            chunk_bytes: options.chunk_bytes.clamp(1, MAX_CHUNK_BYTES),
        };
        let path = split.path.clone();
        let mut file = File::open(&path).map_err(|source| Error::Open {
            path: path.clone(),
            source,
        })?;
        if let Some(roots) = roots {
            roots.check_opened(&file, &path, Access::Read)?;
        }
        // A split starting mid-file reads from the byte before its start, to tell whether that
        // start is also the start of a line (see `skip_partial_line`). A CSV split starts at a
        // record's first byte (see `csv.rs`).
        let read_from = match format {
            InputFormat::Csv { .. } => split.start,
            _ => split.start.saturating_sub(1),
        };
        if read_from > 0 {
            seek(&mut file, &path, read_from)?;
        }
        // A small split needs no multi-megabyte window; one that is too small grows on demand.
        let window = usize::try_from(split.length.saturating_add(WINDOW_SLACK))
            .unwrap_or(usize::MAX)
            .min(options.chunk_bytes);
        let mut key_prefix = path.to_string_lossy().into_owned().into_bytes();
        key_prefix.push(b':');
        let csv = match format {
            InputFormat::Csv { header, delimiter } => Some(Box::new(CsvState {
                parser: RecordParser::new(delimiter),
                rows: RowEncoder::new(
                    if header {
                        // From this very file, by position: the reader's own offset stays put.
                        Some(crate::csv::read_header_of(&file, &path, delimiter)?)
                    } else {
                        None
                    }
                    .as_deref(),
                ),
                skip_header: header && split.start == 0,
                delimiter,
                pending: None,
            })),
            _ => None,
        };
        Ok(SplitReader {
            path,
            key_prefix,
            keys: true,
            format,
            csv,
            file,
            start: split.start,
            end: split.end(),
            options,
            buf: {
                // Old bytes stay (only `buf[..filled]` is read): a reused window is not zeroed.
                let mut buf = buffers.window;
                buf.resize(window, 0);
                buf
            },
            buf_offset: read_from,
            pos: 0,
            scanned: 0,
            filled: 0,
            eof: false,
            state: State::Start,
            recycle: buffers.columns,
            on_error: OnError::Fail,
            skipped: 0,
            bad: Vec::new(),
            lines: (0, 1),
            line_file: None,
            roots: roots.cloned(),
        })
    }

    /// Sets what to do with malformed records (by default, fail).
    pub fn with_on_error(mut self, on_error: OnError) -> SplitReader {
        self.on_error = on_error;
        self
    }

    /// With `false`, every record's key is empty instead of `PATH:OFFSET` (by default, keys are
    /// built). For a job whose UDFs never read the keys.
    pub fn with_keys(mut self, keys: bool) -> SplitReader {
        self.keys = keys;
        self
    }

    /// How many bytes of the split have been read into records so far (at most its length).
    pub fn consumed(&self) -> u64 {
        self.cursor()
            .saturating_sub(self.start)
            .min(self.end - self.start)
    }

    /// How many malformed records were dropped so far (with `skip` or `quarantine`).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The malformed records kept since the last call (with `quarantine`).
    pub fn take_bad_records(&mut self) -> Vec<BadRecord> {
        std::mem::take(&mut self.bad)
    }

    /// The 1-based number of the line holding byte `offset`: newlines are counted from the last
    /// offset asked about (or the file's start), with a handle of its own, so this costs one read
    /// of the file up to the last bad record, and nothing for a file without one.
    fn line_at(&mut self, offset: u64) -> Result<u64> {
        if offset < self.lines.0 {
            self.lines = (0, 1);
        }
        let file = match &mut self.line_file {
            Some(file) => file,
            None => {
                let file = File::open(&self.path).map_err(|source| Error::Open {
                    path: self.path.clone(),
                    source,
                })?;
                if let Some(roots) = &self.roots {
                    roots.check_opened(&file, &self.path, Access::Read)?;
                }
                self.line_file.insert(file)
            }
        };
        let (from, line) = self.lines;
        let line = line + count_newlines(file, &self.path, from, offset)?;
        self.lines = (offset, line);
        Ok(line)
    }

    /// Deals with the malformed `record` at `offset` (on `line`) per `on_error`: `Err(fail)` to
    /// fail, else counts it (keeping it, with `reason`, for quarantine) and returns `Ok`.
    fn malformed(
        &mut self,
        (offset, line): (u64, u64),
        mut record: Vec<u8>,
        reason: String,
        fail: Error,
    ) -> Result<()> {
        match self.on_error {
            OnError::Fail => return Err(fail),
            OnError::Skip => {}
            OnError::Quarantine => {
                record.truncate(BadRecord::MAX_KEPT);
                self.bad.push(BadRecord {
                    path: self.path.clone(),
                    line,
                    offset,
                    reason,
                    record,
                });
            }
        }
        self.skipped += 1;
        Ok(())
    }

    /// The reader's buffers, for the next reader to use ([`open_reusing`]). Those of a batch still
    /// held elsewhere are not reused.
    ///
    /// [`open_reusing`]: SplitReader::open_reusing
    pub fn into_buffers(self) -> ReaderBuffers {
        ReaderBuffers {
            window: self.buf,
            columns: self.recycle,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next batch of records, or `None` once the split is exhausted. Batches are never empty.
    /// After an error the reader is exhausted.
    pub fn next_batch(&mut self) -> Result<Option<Records>> {
        let result = self.read_batch();
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn read_batch(&mut self) -> Result<Option<Records>> {
        match self.state {
            State::Done => return Ok(None),
            State::Start => {
                if self.start > 0 && self.csv.is_none() {
                    self.skip_partial_line()?;
                }
                self.state = State::Reading;
            }
            State::Reading => {}
        }

        let batch_bytes = self.options.batch_bytes;
        let remaining = self.end.saturating_sub(self.cursor());
        // The slack holds the line that takes a batch past `batch_bytes`, so a full batch does
        // not reallocate (and copy) its values at the last moment.
        let expected = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(batch_bytes)
            .saturating_add(64 << 10);
        let (mut keys, mut values) = match self.recycle.take() {
            Some([keys, values]) => (
                ColumnBuilder::reusing(keys, expected / 2),
                ColumnBuilder::reusing(values, expected),
            ),
            None => (
                ColumnBuilder::with_capacity(expected / 2),
                ColumnBuilder::with_capacity(expected),
            ),
        };

        if self.csv.is_some() {
            self.read_csv_records(&mut keys, &mut values)?;
        }
        while self.csv.is_none() {
            if self.cursor() >= self.end {
                self.state = State::Done;
                break;
            }
            let Some((content_end, next)) = self.next_line()? else {
                self.state = State::Done;
                break;
            };
            // Read after `next_line`, which may have moved the window.
            let offset = self.cursor();
            let mut line = &self.buf[self.pos..content_end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            match self.format {
                InputFormat::Jsonl => {
                    if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                        self.consume(next);
                        continue;
                    }
                    if let Err(source) = validate_json(line) {
                        let (start, record) = (quote_start(line), line.to_vec());
                        let line = self.line_at(offset)?;
                        let reason = format!("not valid JSON ({source})");
                        let fail = Error::InvalidJson {
                            path: self.path.clone(),
                            line,
                            offset,
                            start,
                            source,
                        };
                        self.malformed((offset, line), record, reason, fail)?;
                        self.consume(next);
                        continue;
                    }
                }
                InputFormat::Text | InputFormat::Csv { .. } => {}
            }
            if !values.fits(line.len()) {
                if values.len() > 0 {
                    // Leave the line unconsumed: it opens the next batch.
                    break;
                }
                return Err(Error::LineTooLong {
                    path: self.path.clone(),
                    offset,
                    limit: MAX_COLUMN_BYTES,
                });
            }
            values.push(line);
            if self.keys {
                keys.push_key(&self.key_prefix, offset);
            } else {
                keys.close_item();
            }
            self.consume(next);
            if values.data.len() >= batch_bytes || self.key_weight(&keys) >= batch_bytes {
                break;
            }
        }

        if values.len() == 0 {
            return Ok(None);
        }
        let offset = self.cursor();
        let batch_error = |message: String| Error::Batch {
            path: self.path.clone(),
            offset,
            message,
        };
        let keys = keys.finish().map_err(|e| batch_error(e.to_string()))?;
        let values = values.finish().map_err(|e| batch_error(e.to_string()))?;
        self.recycle = Some([Column::of(&keys), Column::of(&values)]);
        Records::new(keys, values)
            .map(Some)
            .map_err(|e| batch_error(e.to_string()))
    }

    /// Reads CSV records into the batch until it is full or the split is over.
    fn read_csv_records(
        &mut self,
        keys: &mut ColumnBuilder,
        values: &mut ColumnBuilder,
    ) -> Result<()> {
        let batch_bytes = self.options.batch_bytes;
        loop {
            let mut csv = self.csv.take().expect("a CSV reader");
            let offset = match csv.pending.take() {
                Some(offset) => offset,
                None => match self.next_csv_record(&mut csv) {
                    Ok(Some(offset)) => offset,
                    Ok(None) => {
                        self.csv = Some(csv);
                        self.state = State::Done;
                        return Ok(());
                    }
                    Err(e) => {
                        self.csv = Some(csv);
                        return Err(e);
                    }
                },
            };
            // Encoded straight into the batch's value column: no copy per record.
            let (data, ends) = csv.parser.record();
            if !values.fits(csv.rows.encoded_len(ends.len(), data.len())) {
                if values.len() > 0 {
                    csv.pending = Some(offset);
                    self.csv = Some(csv);
                    return Ok(());
                }
                self.csv = Some(csv);
                return Err(Error::LineTooLong {
                    path: self.path.clone(),
                    offset,
                    limit: MAX_COLUMN_BYTES,
                });
            }
            csv.rows.encode(&mut values.data, data, ends);
            values.close_item();
            if self.keys {
                keys.push_key(&self.key_prefix, offset);
            } else {
                keys.close_item();
            }
            self.csv = Some(csv);
            if values.data.len() >= batch_bytes || self.key_weight(keys) >= batch_bytes {
                return Ok(());
            }
        }
    }

    /// What a batch's keys count for against `batch_bytes`: their bytes or, when they are not
    /// built, the offsets of both columns (8 bytes a record), which still bound a batch of many
    /// empty lines.
    fn key_weight(&self, keys: &ColumnBuilder) -> usize {
        if self.keys {
            keys.data.len()
        } else {
            keys.offsets.len() * 8
        }
    }

    /// Parses the next record that starts in the split (its fields are then the parser's);
    /// returns its offset, or `None` when no more records start in the split.
    fn next_csv_record(&mut self, csv: &mut CsvState) -> Result<Option<u64>> {
        loop {
            // Line endings before a record (of the record before, or blank lines) are not part of
            // it: a record starts at its first byte, and belongs to the split holding that byte.
            // Planning cuts splits where a record starts or in the line endings just before it,
            // so both sides of a boundary agree.
            if !self.skip_line_endings()? || self.cursor() >= self.end {
                return Ok(None);
            }
            let offset = self.cursor();
            csv.parser.clear();
            let complete = loop {
                match csv.parser.feed(&self.buf[self.pos..self.filled]) {
                    Parsed::Record(n) => {
                        self.consume(self.pos + n);
                        break true;
                    }
                    Parsed::NeedInput => {
                        self.consume(self.filled);
                        if csv.parser.held() > MAX_RECORD_BYTES {
                            return Err(Error::LineTooLong {
                                path: self.path.clone(),
                                offset,
                                limit: MAX_RECORD_BYTES,
                            });
                        }
                        if !self.fill()? {
                            break csv.parser.finish();
                        }
                    }
                }
            };
            if !complete {
                return Ok(None);
            }
            if std::mem::take(&mut csv.skip_header) {
                continue;
            }
            if let Some(expected) = csv.rows.names()
                && csv.parser.fields().len() != expected
            {
                let fields = csv.parser.fields().len();
                let delimiter = [csv.delimiter];
                let record = csv.parser.fields().collect::<Vec<_>>().join(&delimiter[..]);
                let start = quote_start(&record);
                let line = self.line_at(offset)?;
                let fail = Error::BadCsvRecord {
                    path: self.path.clone(),
                    line,
                    offset,
                    fields,
                    expected,
                    start,
                };
                let reason = format!("{fields} fields where the header has {expected}");
                self.malformed((offset, line), record, reason, fail)?;
                continue;
            }
            return Ok(Some(offset));
        }
    }

    /// Consumes `\r` and `\n` bytes; `false` if the file ends first.
    fn skip_line_endings(&mut self) -> Result<bool> {
        loop {
            match self.buf[self.pos..self.filled]
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
            {
                Some(i) => {
                    self.consume(self.pos + i);
                    return Ok(true);
                }
                None => {
                    self.consume(self.filled);
                    if !self.fill()? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// The file offset of the first unconsumed byte.
    fn cursor(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    fn consume(&mut self, next: usize) {
        self.pos = next;
        self.scanned = next;
    }

    /// Finds the line starting at `pos`: `Some((content_end, next))` with the line's bytes (with a
    /// possible `\r`) in `buf[pos..content_end]` and the next line at `buf[next]`; `None` at the
    /// end of the file.
    fn next_line(&mut self) -> Result<Option<(usize, usize)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.filled]) {
                let newline = self.scanned + i;
                return Ok(Some((newline, newline + 1)));
            }
            self.scanned = self.filled;
            if !self.fill()? {
                return Ok((self.pos < self.filled).then_some((self.filled, self.filled)));
            }
        }
    }

    /// Consumes everything up to and including the next `\n`. The reader starts one byte before
    /// the split, so if that byte is `\n` only it is consumed and the split's first line starts at
    /// `start`; otherwise `start` is inside a line that belongs to the previous split.
    fn skip_partial_line(&mut self) -> Result<()> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..self.filled]) {
                self.consume(self.pos + i + 1);
                return Ok(());
            }
            // Drop what was scanned, so skipping a long line needs no long window.
            self.consume(self.filled);
            if !self.fill()? {
                return Ok(());
            }
        }
    }

    /// Reads more of the file after `buf[..filled]`, first making room by dropping consumed bytes
    /// or, when the window holds one unfinished line, by growing it. `false` at the end of file.
    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos == self.filled {
            self.buf_offset += self.pos as u64;
            self.pos = 0;
            self.scanned = 0;
            self.filled = 0;
        } else if self.filled == self.buf.len() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.filled, 0);
                self.buf_offset += self.pos as u64;
                self.filled -= self.pos;
                self.scanned -= self.pos;
                self.pos = 0;
            } else {
                // `buf` holds one unfinished line. Refuse to buffer more than a batch could hold
                // rather than take all memory on a file without newlines.
                if self.filled > MAX_COLUMN_BYTES {
                    return Err(Error::LineTooLong {
                        path: self.path.clone(),
                        offset: self.buf_offset,
                        limit: MAX_COLUMN_BYTES,
                    });
                }
                let grown = self
                    .buf
                    .len()
                    .saturating_mul(2)
                    .max(self.options.chunk_bytes);
                self.buf.resize(grown, 0);
            }
        }
        loop {
            match self.file.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        path: self.path.clone(),
                        offset: self.buf_offset + self.filled as u64,
                        source,
                    });
                }
            }
        }
    }
}

impl Iterator for SplitReader {
    type Item = Result<Records>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// Once exhausted or failed, the reader stays in its `Done` state.
impl FusedIterator for SplitReader {}

/// Checks that `line` is one JSON value. JSON text is UTF-8 (RFC 8259), and serde_json does not
/// check the bytes of strings it only skips, so UTF-8 is checked first.
fn validate_json(line: &[u8]) -> std::result::Result<(), serde_json::Error> {
    let text = std::str::from_utf8(line).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!(
            "invalid UTF-8 at column {}",
            e.valid_up_to() + 1
        ))
    })?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ())
}

/// One binary column of a batch under construction, in Arrow's layout.
struct ColumnBuilder {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl ColumnBuilder {
    fn with_capacity(bytes: usize) -> ColumnBuilder {
        let mut offsets = Vec::with_capacity(bytes / 32 + 1);
        offsets.push(0);
        ColumnBuilder {
            offsets,
            data: Vec::with_capacity(bytes),
        }
    }

    /// A builder on the buffers of an earlier batch if its consumer is done with them (they are no
    /// longer shared), else on new ones.
    fn reusing(column: Column, bytes: usize) -> ColumnBuilder {
        match (
            column.offsets.into_vec::<i32>(),
            column.data.into_vec::<u8>(),
        ) {
            (Ok(mut offsets), Ok(mut data)) => {
                offsets.clear();
                offsets.push(0);
                data.clear();
                data.reserve(bytes);
                ColumnBuilder { offsets, data }
            }
            _ => ColumnBuilder::with_capacity(bytes),
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn fits(&self, extra: usize) -> bool {
        extra <= MAX_COLUMN_BYTES - self.data.len()
    }

    /// Callers check [`fits`](Self::fits) first; batches close far below the `i32` limit.
    fn push(&mut self, item: &[u8]) {
        self.data.extend_from_slice(item);
        self.close_item();
    }

    /// Appends `{prefix}{offset}` as one item, formatting the offset without going through
    /// `fmt` (this runs once per record).
    fn push_key(&mut self, prefix: &[u8], offset: u64) {
        self.data.extend_from_slice(prefix);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = offset;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.data.extend_from_slice(&digits[i..]);
        self.close_item();
    }

    fn close_item(&mut self) {
        // Lossless: every batch column stays below `MAX_COLUMN_BYTES` (see `fits` and the batch
        // cap), which is `i32::MAX`.
        self.offsets.push(self.data.len() as i32);
    }

    fn finish(self) -> std::result::Result<BinaryArray, arrow_schema::ArrowError> {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        BinaryArray::try_new(offsets, Buffer::from_vec(self.data), None)
    }
}

impl Column {
    /// Handles on an array's buffers (cheap clones of the same memory).
    fn of(array: &BinaryArray) -> Column {
        Column {
            offsets: array.offsets().inner().inner().clone(),
            data: array.values().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputFile;

    /// Batches of about 4 KiB, read 1 KiB at a time: many batches from a small file.
    const SMALL: ReadOptions = ReadOptions {
        batch_bytes: 4 << 10,
        chunk_bytes: 1 << 10,
    };

    /// A file of 3000 short lines in `dir`, and its content.
    fn lines_file(dir: &Path) -> (InputFile, Vec<u8>) {
        let path = dir.join("lines.txt");
        let content: Vec<u8> = (0..3000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        std::fs::write(&path, &content).unwrap();
        let size = content.len() as u64;
        (InputFile { path, size }, content)
    }

    /// A batch its consumer has dropped lends its buffers to the next one; a batch still held
    /// keeps its own, unchanged.
    #[test]
    fn a_dropped_batch_lends_its_buffers_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (file, content) = lines_file(dir.path());
        let options = SMALL;
        let mut reader =
            SplitReader::open_with(&InputSplit::whole(&file), InputFormat::Text, options).unwrap();
        let data = |r: &Records| r.values().values().as_ptr();
        let lent = |r: &SplitReader| r.recycle.as_ref().map(|[_, values]| values.data.as_ptr());

        let first = reader.next_batch().unwrap().unwrap();
        assert_eq!(lent(&reader), Some(data(&first)));
        drop(first);
        let before = lent(&reader);
        let second = reader.next_batch().unwrap().unwrap();
        assert_eq!(
            Some(data(&second)),
            before,
            "the dropped batch's buffer is reused"
        );

        let kept = second.to_pairs();
        let third = reader.next_batch().unwrap().unwrap();
        assert_ne!(
            data(&third),
            data(&second),
            "a held batch is not written over"
        );
        assert_eq!(second.to_pairs(), kept);
        let text = String::from_utf8(
            kept.iter()
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
                .join(&b"\n"[..]),
        )
        .unwrap();
        assert!(content.windows(text.len()).any(|w| w == text.as_bytes()));
    }

    /// A reader opened on the buffers another left reads into them, and reads exactly what a
    /// fresh reader reads.
    #[test]
    fn a_reader_reuses_the_buffers_a_finished_one_left() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = lines_file(dir.path());
        let size = file.size;
        let options = SMALL;
        let half = |start: u64, end: u64| InputSplit {
            path: file.path.clone(),
            start,
            length: end - start,
        };
        let records = |reader: SplitReader| -> Vec<(Vec<u8>, Vec<u8>)> {
            reader.flat_map(|batch| batch.unwrap().to_pairs()).collect()
        };

        let mut first =
            SplitReader::open_with(&half(0, size / 2), InputFormat::Text, options).unwrap();
        while first.next_batch().unwrap().is_some() {}
        let buffers = first.into_buffers();
        let window = buffers.window.as_ptr();
        let values = buffers.columns.as_ref().map(|[_, v]| v.data.as_ptr());
        assert!(values.is_some());

        let second = half(size / 2, size);
        let mut reused =
            SplitReader::open_reusing(&second, InputFormat::Text, options, buffers).unwrap();
        assert_eq!(reused.buf.as_ptr(), window, "the window is reused");
        let batch = reused.next_batch().unwrap().unwrap();
        assert_eq!(
            Some(batch.values().values().as_ptr()),
            values,
            "the last batch's buffers are reused"
        );
        drop(batch);
        let reused =
            SplitReader::open_reusing(&second, InputFormat::Text, options, reused.into_buffers())
                .unwrap();
        let fresh = SplitReader::open_with(&second, InputFormat::Text, options).unwrap();
        let got = records(reused);
        assert!(!got.is_empty());
        assert_eq!(got, records(fresh));
    }
}
