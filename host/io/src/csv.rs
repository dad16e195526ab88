//! CSV records, parsed with `csv-core` (the engine of the `csv` crate): quotes, `""` escapes,
//! quoted newlines and any one-byte delimiter; `\n`, `\r\n` and `\r` end a record, and blank lines
//! are not records. The reader hands each record to UDFs as one value in the row encoding
//! (`weft_abi::row`), with the header's names when the file has a header.
//!
//! # Where a CSV file is split
//! A quoted field may hold newlines, so a byte offset alone cannot tell where a record starts: a
//! reader dropped into the middle of a file cannot know whether it is inside quotes. Weft's rule:
//! **a split boundary is always the start of a record, found by parsing the file from its first
//! byte.** Planning reads every CSV file that spans more than one split once, with the same
//! parser the reader uses, and moves each nominal boundary (every `split_size` bytes) forward to
//! the first record that starts at or after it. A split then reads the records that start inside
//! it, each exactly once, whatever the quoting. The price is one sequential read of a large CSV
//! file when the job is planned (Spark's `multiLine` mode does not split such a file at all).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use crate::error::{Error, Result};

/// A streaming parser of CSV records that keeps the fields of the record being read.
pub(crate) struct RecordParser {
    reader: Reader,
    /// The unescaped bytes of the record's fields, one after another: `fields[..out]`.
    fields: Vec<u8>,
    out: usize,
    /// Where each field ends in `fields`: `ends[..count]`.
    ends: Vec<usize>,
    count: usize,
}

/// What feeding input to a [`RecordParser`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// All of the input was used; the record goes on in the bytes after it (or, at the end of
    /// the file, call [`RecordParser::finish`]).
    NeedInput,
    /// A record is complete after `n` bytes of the input.
    Record(usize),
}

impl RecordParser {
    pub(crate) fn new(delimiter: u8) -> RecordParser {
        RecordParser {
            reader: ReaderBuilder::new().delimiter(delimiter).build(),
            fields: vec![0; 4096],
            out: 0,
            ends: vec![0; 64],
            count: 0,
        }
    }

    /// Feeds `input` (the bytes after those fed before) to the record being read.
    pub(crate) fn feed(&mut self, mut input: &[u8]) -> Parsed {
        let mut used = 0;
        loop {
            let (result, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.fields[self.out..],
                &mut self.ends[self.count..],
            );
            input = &input[nin..];
            used += nin;
            self.out += nout;
            self.count += nend;
            match result {
                ReadRecordResult::InputEmpty => return Parsed::NeedInput,
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                    self.grow(result)
                }
                ReadRecordResult::Record => return Parsed::Record(used),
                // Only returned for an empty input after the end; `feed` never gets one.
                ReadRecordResult::End => return Parsed::NeedInput,
            }
        }
    }

    /// At the end of the input: whether a last record (one without a line ending) is complete.
    pub(crate) fn finish(&mut self) -> bool {
        loop {
            let (result, _, nout, nend) = self.reader.read_record(
                &[],
                &mut self.fields[self.out..],
                &mut self.ends[self.count..],
            );
            self.out += nout;
            self.count += nend;
            match result {
                ReadRecordResult::Record => return true,
                ReadRecordResult::End | ReadRecordResult::InputEmpty => return false,
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                    self.grow(result)
                }
            }
        }
    }

    /// Doubles the buffer the parser ran out of.
    fn grow(&mut self, full: ReadRecordResult) {
        if full == ReadRecordResult::OutputFull {
            let len = self.fields.len();
            self.fields.resize(len * 2, 0);
        } else {
            let len = self.ends.len();
            self.ends.resize(len * 2, 0);
        }
    }

    /// The fields of the record just completed.
    pub(crate) fn fields(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone {
        let ends = &self.ends[..self.count];
        (0..ends.len()).map(move |i| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &self.fields[start..ends[i]]
        })
    }

    /// The record just completed as its fields' bytes, one after another, and where each field
    /// ends in them (what [`weft_abi::row::RowEncoder::encode`] takes).
    pub(crate) fn record(&self) -> (&[u8], &[usize]) {
        let ends = &self.ends[..self.count];
        (&self.fields[..ends.last().copied().unwrap_or(0)], ends)
    }

    /// The unescaped bytes held for the record so far (to bound a runaway record).
    pub(crate) fn held(&self) -> usize {
        self.out
    }

    /// Forgets the completed record's fields, to read the next one.
    pub(crate) fn clear(&mut self) {
        self.out = 0;
        self.count = 0;
    }
}

/// How much of a file the planner reads at a time.
const SCAN_CHUNK: usize = 1 << 20;
/// The most threads [`holds_a_quote`] scans a file with.
const SCAN_THREADS: usize = 4;

/// The start of the first record at or after each of `boundaries` (ascending offsets inside the
/// file), or the file's size where no record starts after one: where the CSV file at `path` may
/// be split (see the module's documentation).
pub(crate) fn record_starts(path: &Path, delimiter: u8, boundaries: &[u64]) -> Result<Vec<u64>> {
    if !holds_a_quote(path)? {
        return line_starts(path, boundaries);
    }
    let file = open(path)?;
    let mut parser = RecordParser::new(delimiter);
    let mut starts = Vec::with_capacity(boundaries.len());
    let mut chunk = vec![0; SCAN_CHUNK];
    // The offset of the next unread byte, and of the start of the record being read.
    let (mut offset, mut record_start) = (0u64, 0u64);
    let mut next = boundaries.iter().peekable();
    loop {
        let n = read_some(&file, path, offset, &mut chunk)?;
        if n == 0 {
            break;
        }
        let mut input = &chunk[..n];
        while !input.is_empty() {
            // Record starts are only needed at boundaries: the fields themselves are dropped.
            match parser.feed(input) {
                Parsed::NeedInput => {
                    offset += input.len() as u64;
                    input = &[];
                }
                Parsed::Record(used) => {
                    offset += used as u64;
                    input = &input[used..];
                    record_start = offset;
                    while next.next_if(|&&b| b <= record_start).is_some() {
                        starts.push(record_start);
                    }
                    if next.peek().is_none() {
                        return Ok(starts);
                    }
                }
            }
            parser.clear();
        }
    }
    // A record start at offset 0 only matters for a boundary at 0, which is not one.
    let _ = record_start;
    starts.resize(boundaries.len(), offset);
    Ok(starts)
}

/// Whether the file holds a `"` anywhere. Without one no field is quoted, so every line ending
/// ends a record and a split may start after any of them: a scan for a byte is some twenty times
/// faster than parsing. The file is scanned in parts, one per core (up to [`SCAN_THREADS`]), each
/// stopping once any part has found a quote: a job waits for this scan before its first task.
fn holds_a_quote(path: &Path) -> Result<bool> {
    let size = open(path)?
        .metadata()
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            offset: 0,
            source,
        })?
        .len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = (cores.min(SCAN_THREADS) as u64)
        .min(size.div_ceil(SCAN_CHUNK as u64))
        .max(1);
    let part = size.div_ceil(parts);
    let found = AtomicBool::new(false);
    let scan = |index: u64| {
        // The last part reads on to the end, should the file have grown since its size was read.
        let end = if index + 1 == parts {
            u64::MAX
        } else {
            (index + 1) * part
        };
        scan_for_quote(path, index * part, end, &found)
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..parts).map(|i| scope.spawn(move || scan(i))).collect();
        let mut result = scan(0);
        for other in others {
            let theirs = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            result = result.and(theirs);
        }
        result
    })?;
    Ok(found.load(Ordering::Relaxed))
}

/// Scans `[start, end)` of the file for a `"`, until one is found here or by another part.
fn scan_for_quote(path: &Path, start: u64, end: u64, found: &AtomicBool) -> Result<()> {
    let file = open(path)?;
    let mut chunk = vec![0; SCAN_CHUNK];
    let mut offset = start;
    while offset < end && !found.load(Ordering::Relaxed) {
        let want = usize::try_from(end - offset).map_or(SCAN_CHUNK, |left| left.min(SCAN_CHUNK));
        let n = read_some(&file, path, offset, &mut chunk[..want])?;
        if n == 0 {
            break;
        }
        if memchr::memchr(b'"', &chunk[..n]).is_some() {
            found.store(true, Ordering::Relaxed);
        }
        offset += n as u64;
    }
    Ok(())
}

/// For a file without quotes: after the first `\n` or `\r` at or after the byte before each
/// boundary (or the file's end): where a record starts, or inside the line endings just before
/// one. A boundary that starts a line stays where it is.
fn line_starts(path: &Path, boundaries: &[u64]) -> Result<Vec<u64>> {
    let file = open(path)?;
    let size = file
        .metadata()
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            offset: 0,
            source,
        })?
        .len();
    let mut starts = Vec::with_capacity(boundaries.len());
    let mut chunk = vec![0; 64 << 10];
    for &boundary in boundaries {
        // A boundary inside the line found for the one before gives the same start.
        if let Some(&last) = starts.last()
            && boundary <= last
        {
            starts.push(last);
            continue;
        }
        // From the byte before the boundary: if it ends a line, the boundary starts one.
        let mut offset = boundary - 1;
        let start = loop {
            let n = read_some(&file, path, offset, &mut chunk)?;
            if n == 0 {
                break size;
            }
            if let Some(i) = memchr::memchr2(b'\n', b'\r', &chunk[..n]) {
                break offset + i as u64 + 1;
            }
            offset += n as u64;
        };
        starts.push(start);
    }
    Ok(starts)
}

#[cfg(test)]
fn read_header(path: &Path, delimiter: u8) -> Result<Vec<Vec<u8>>> {
    read_header_of(&open(path)?, path, delimiter)
}

/// The first record of the CSV file `file`, open on `path`, read from its start (the handle's own
/// position is neither used nor moved): its header, when it has one. An empty file has an empty
/// header.
pub(crate) fn read_header_of(file: &File, path: &Path, delimiter: u8) -> Result<Vec<Vec<u8>>> {
    let mut parser = RecordParser::new(delimiter);
    let mut chunk = vec![0; 64 << 10];
    let mut offset = 0u64;
    loop {
        let n = read_some(file, path, offset, &mut chunk)?;
        offset += n as u64;
        let complete = if n == 0 {
            parser.finish()
        } else {
            matches!(parser.feed(&chunk[..n]), Parsed::Record(_))
        };
        if complete {
            return Ok(parser.fields().map(<[u8]>::to_vec).collect());
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        if parser.held() > crate::reader::MAX_RECORD_BYTES {
            return Err(Error::LineTooLong {
                path: path.to_owned(),
                offset: 0,
                limit: crate::reader::MAX_RECORD_BYTES,
            });
        }
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })
}

/// One read into `buf` from `offset` of the file (0 at its end), whatever the handle's own
/// position: a handle shared with a reader, or scanned by several threads, is never moved.
fn read_some(file: &File, path: &Path, offset: u64, buf: &mut [u8]) -> Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => {
                return other.map_err(|source| Error::Read {
                    path: path.to_owned(),
                    offset,
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(delimiter: u8, text: &[u8]) -> Vec<Vec<String>> {
        let mut parser = RecordParser::new(delimiter);
        let mut out = Vec::new();
        let mut input = text;
        loop {
            match parser.feed(input) {
                Parsed::Record(n) => {
                    out.push(
                        parser
                            .fields()
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect(),
                    );
                    parser.clear();
                    input = &input[n..];
                }
                Parsed::NeedInput => {
                    if parser.finish() {
                        out.push(
                            parser
                                .fields()
                                .map(|f| String::from_utf8_lossy(f).into_owned())
                                .collect(),
                        );
                    }
                    return out;
                }
            }
        }
    }

    #[test]
    fn quotes_escapes_newlines_and_delimiters() {
        assert_eq!(
            records(
                b';',
                b"\"MULTI\nLINE\";2024-01-02;30\r\nb;\"say \"\"hi\"\"\";\n\nlast"
            ),
            [
                vec!["MULTI\nLINE", "2024-01-02", "30"],
                vec!["b", "say \"hi\"", ""],
                vec!["last"],
            ]
        );
        assert_eq!(records(b'\t', b"a\tb,c\n"), [vec!["a", "b,c"]]);
    }

    #[test]
    fn without_quotes_boundaries_move_past_the_next_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.csv");
        // Lines start at 0, 4 and 9; "\r\n" ends the second. A boundary that starts a line stays;
        // 8, inside "\r\n" before the record at 9, is as good a place to cut as 9.
        std::fs::write(&path, b"a,b\nc,d\r\ne,f").unwrap();
        assert_eq!(
            record_starts(&path, b',', &[1, 3, 4, 6, 8, 9, 10]).unwrap(),
            [4, 4, 4, 8, 8, 9, 12]
        );
    }

    #[test]
    fn boundaries_move_to_the_next_record_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        // Records start at 0, 8 and 16; the first two hold a quoted newline, at bytes 2 and 12.
        std::fs::write(&path, b"\"a\nb\",c\nd,\"e\nf\"\ng\n").unwrap();
        assert_eq!(
            record_starts(&path, b',', &[3, 8, 9, 17]).unwrap(),
            [8, 8, 16, 18]
        );
    }

    #[test]
    fn the_header_is_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.csv");
        std::fs::write(&path, b"\"sym\nbol\";vol\n1;2\n").unwrap();
        assert_eq!(
            read_header(&path, b';').unwrap(),
            [b"sym\nbol".to_vec(), b"vol".to_vec()]
        );
        std::fs::write(&path, b"").unwrap();
        assert!(read_header(&path, b';').unwrap().is_empty());
    }

    /// The scan for a quote, in parts on several threads, finds one wherever it lies: in the
    /// first or last byte, on either side of where the parts meet, in a file that grew.
    #[test]
    fn a_quote_is_found_anywhere_in_a_file_scanned_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let size = 5 * SCAN_CHUNK + 123;
        let plain: Vec<u8> = b"ab,cd\n".iter().copied().cycle().take(size).collect();
        std::fs::write(&path, &plain).unwrap();
        assert!(!holds_a_quote(&path).unwrap());
        let mut places = vec![0, 1, size / 2 - 1, size / 2, size / 2 + 1, size - 1];
        for parts in 2..=SCAN_THREADS {
            let part = size.div_ceil(parts);
            places.extend([part - 1, part, part + 1, (parts - 1) * part]);
        }
        for at in places {
            let mut quoted = plain.clone();
            quoted[at] = b'"';
            std::fs::write(&path, &quoted).unwrap();
            assert!(holds_a_quote(&path).unwrap(), "a quote at {at} of {size}");
        }
        std::fs::write(&path, b"").unwrap();
        assert!(!holds_a_quote(&path).unwrap());
        std::fs::write(&path, b"\"").unwrap();
        assert!(holds_a_quote(&path).unwrap());
        let missing = dir.path().join("missing.csv");
        assert!(
            holds_a_quote(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.csv")
        );
    }
}
