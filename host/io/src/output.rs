//! Writing a reduce (or map-only) task's records into one `part-NNNNN` file of a job's output.
//!
//! A part is an [`AtomicFile`]: written under a hidden temporary name and renamed to `part-NNNNN`
//! only when [`PartWriter::finish`] has flushed and fsynced it, so a crashed or abandoned attempt
//! never leaves a truncated part under the real name.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use weft_batch::Records;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::input::UnknownFormat;
use crate::roots::{Access, DataRoots};

const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// How records are laid out in a part file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// One line per record: the key's bytes, a TAB, the value's bytes, `\n`, all raw. (A key or
    /// value containing TAB or `\n` makes the line ambiguous; use `Jsonl` for such data.)
    Text,
    /// One JSON object per line, `{"key":K,"value":V}` without spaces. A key or value that is
    /// valid UTF-8 is written as a JSON string (`"key"`, `"value"`); one that is not is written as
    /// standard padded base64 under `"key_b64"` / `"value_b64"` instead, so every byte survives
    /// and a reader can tell the two apart by the field name.
    Jsonl,
    /// One CSV record per record: two fields, the key and the value, comma-separated, each quoted
    /// (RFC 4180, `""` for a quote) when it holds a comma, a quote, CR or LF; lines end in `\n`.
    /// Bytes are written as they are (no UTF-8 check).
    Csv,
}

impl OutputFormat {
    /// The name a job file uses for the format: `text`, `jsonl` or `csv`.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Csv => "csv",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    /// A format by its [`name`](OutputFormat::name).
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        [OutputFormat::Text, OutputFormat::Jsonl, OutputFormat::Csv]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// The file name of a partition's output: `part-00000`, `part-00001`, … (5 digits, more only past
/// 99999), so names sort in partition order.
pub fn part_file_name(partition: u32) -> String {
    format!("part-{partition:05}")
}

/// The file name a task attempt writes its partition's part under, in an
/// [`OutputCommitter::attempts_dir`](crate::OutputCommitter::attempts_dir): `part-00003.attempt-2`.
/// Two attempts of one partition (a retry beside a straggler, a zombie on a worker taken for lost)
/// never write the same file; the commit keeps one per partition.
pub fn attempt_part_name(partition: u32, attempt: u32) -> String {
    format!("{}.attempt-{attempt}", part_file_name(partition))
}

/// What one finished part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartStats {
    pub records: u64,
    /// Bytes in the file.
    pub bytes: u64,
}

/// Writes one partition's records to `part-NNNNN` in a directory (normally an
/// [`OutputCommitter`](crate::OutputCommitter)'s staging directory).
///
/// Until [`finish`](Self::finish) the data is in a hidden temporary file next to the part; dropping
/// the writer unfinished deletes it. A finished part replaces an existing one of the same name, so
/// a retried task simply rewrites its part.
pub struct PartWriter {
    format: OutputFormat,
    out: BufWriter<AtomicFile>,
    stats: PartStats,
}

impl fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartWriter")
            .field("path", &self.path())
            .field("format", &self.format)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PartWriter {
    /// Starts `dir/part-NNNNN` for `partition`. `dir` must exist.
    pub fn create(dir: &Path, partition: u32, format: OutputFormat) -> Result<PartWriter> {
        PartWriter::create_within(dir, &part_file_name(partition), format, None)
    }

    /// Starts `dir/NAME` (a [`part_file_name`] or an [`attempt_part_name`]), refusing a directory
    /// that is not really inside `roots`' write roots (the file created is checked, not the path:
    /// see [`DataRoots::check_opened`]).
    pub fn create_within(
        dir: &Path,
        name: &str,
        format: OutputFormat,
        roots: Option<&DataRoots>,
    ) -> Result<PartWriter> {
        if let Some(roots) = roots {
            roots.check(dir, Access::Write)?;
        }
        // A unique temporary name keeps two writers of one file from writing into one inode.
        let file = AtomicFile::create(&dir.join(name))?;
        if let Some(roots) = roots {
            roots.check_opened(file.as_file(), file.path(), Access::Write)?;
        }
        Ok(PartWriter {
            format,
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            stats: PartStats::default(),
        })
    }

    /// Where the part will be once finished.
    pub fn path(&self) -> &Path {
        self.out.get_ref().path()
    }

    /// Appends a batch.
    pub fn write(&mut self, records: &Records) -> Result<()> {
        let written = match self.format {
            OutputFormat::Text => write_text(&mut self.out, records),
            OutputFormat::Jsonl => write_jsonl(&mut self.out, records),
            OutputFormat::Csv => write_csv(&mut self.out, records),
        };
        match written {
            Ok(bytes) => {
                self.stats.records += records.len() as u64;
                self.stats.bytes += bytes;
                Ok(())
            }
            Err(source) => Err(Error::Write {
                path: self.path().to_owned(),
                source,
            }),
        }
    }

    /// Flushes and fsyncs the data, then renames it to `part-NNNNN`. A writer dropped unfinished
    /// deletes its temporary file.
    pub fn finish(self) -> Result<PartStats> {
        let path = self.path().to_owned();
        let file = self.out.into_inner().map_err(|e| Error::Write {
            path,
            source: e.into_error(),
        })?;
        file.commit()?;
        Ok(self.stats)
    }
}

/// Returns the number of bytes written.
fn write_text(out: &mut impl Write, records: &Records) -> io::Result<u64> {
    let mut bytes = 0u64;
    for (key, value) in records.iter() {
        out.write_all(key)?;
        out.write_all(b"\t")?;
        out.write_all(value)?;
        out.write_all(b"\n")?;
        bytes += (key.len() + value.len() + 2) as u64;
    }
    Ok(bytes)
}

/// Returns the number of bytes written.
fn write_jsonl(out: &mut impl Write, records: &Records) -> io::Result<u64> {
    let mut out = CountingWriter {
        inner: out,
        bytes: 0,
    };
    for (key, value) in records.iter() {
        out.write_all(b"{")?;
        write_json_field(&mut out, "key", key)?;
        out.write_all(b",")?;
        write_json_field(&mut out, "value", value)?;
        out.write_all(b"}\n")?;
    }
    Ok(out.bytes)
}

/// Returns the number of bytes written.
fn write_csv(out: &mut impl Write, records: &Records) -> io::Result<u64> {
    let mut bytes = 0u64;
    for (key, value) in records.iter() {
        bytes += write_csv_field(out, key)?;
        out.write_all(b",")?;
        bytes += write_csv_field(out, value)?;
        out.write_all(b"\n")?;
        bytes += 2;
    }
    Ok(bytes)
}

/// One field, quoted if it must be (RFC 4180); returns the bytes written.
fn write_csv_field(out: &mut impl Write, field: &[u8]) -> io::Result<u64> {
    if !field
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.write_all(field)?;
        return Ok(field.len() as u64);
    }
    let mut bytes = 2;
    out.write_all(b"\"")?;
    for part in field.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        bytes += part.len() as u64;
        if part.ends_with(b"\"") {
            out.write_all(b"\"")?;
            bytes += 1;
        }
    }
    out.write_all(b"\"")?;
    Ok(bytes)
}

/// Writes `"name":"text"` for UTF-8 bytes, else `"name_b64":"base64"`.
fn write_json_field(out: &mut impl Write, name: &str, bytes: &[u8]) -> io::Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            write!(out, "\"{name}\":")?;
            serde_json::to_writer(&mut *out, text).map_err(io::Error::from)
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            write!(out, "\"{name}_b64\":\"{encoded}\"")
        }
    }
}

/// Counts what passes through, for [`PartStats::bytes`] when the encoding's size is not known
/// up front.
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_zero_padded() {
        assert_eq!(part_file_name(0), "part-00000");
        assert_eq!(part_file_name(42), "part-00042");
        assert_eq!(part_file_name(123_456), "part-123456");
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let mut out = Vec::new();
        let records = Records::from_pairs([("plain", "a,b"), ("say \"hi\"", "two\nlines")]);
        let bytes = write_csv(&mut out, &records).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "plain,\"a,b\"\n\"say \"\"hi\"\"\",\"two\nlines\"\n"
        );
        assert_eq!(bytes, out.len() as u64);
    }

    #[test]
    fn jsonl_fields() {
        let mut out = Vec::new();
        write_json_field(&mut out, "key", b"a\"b\n").unwrap();
        out.push(b' ');
        write_json_field(&mut out, "value", &[0xff, 0x00, b'a']).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""key":"a\"b\n" "value_b64":"/wBh""#
        );
    }
}
