//! Writing a reduce (or map-only) task's records into one `part-NNNNN` file of a job's output.
//!
//! A part is written under a hidden temporary name and renamed to `part-NNNNN` only when
//! [`PartWriter::finish`] has flushed and fsynced it, so a crashed or abandoned attempt never
//! leaves a truncated part under the real name.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use weft_host::Records;

use crate::error::{Error, Result};
use crate::input::UnknownFormat;

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
}

impl OutputFormat {
    /// The names [`FromStr`] accepts, for CLI help.
    pub const NAMES: &'static [&'static str] = &["text", "jsonl"];
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputFormat::Text => "text",
            OutputFormat::Jsonl => "jsonl",
        })
    }
}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        match s {
            "text" => Ok(OutputFormat::Text),
            "jsonl" => Ok(OutputFormat::Jsonl),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// The file name of a partition's output: `part-00000`, `part-00001`, … (5 digits, more only past
/// 99999), so names sort in partition order.
pub fn part_file_name(partition: u32) -> String {
    format!("part-{partition:05}")
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
    path: PathBuf,
    temp_path: PathBuf,
    /// `None` once finished (or after `finish` failed), which tells `Drop` there is nothing to do
    /// or only the temporary file to remove.
    out: Option<BufWriter<File>>,
    stats: PartStats,
}

impl fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartWriter")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PartWriter {
    /// Starts `dir/part-NNNNN` for `partition`. `dir` must exist.
    pub fn create(dir: &Path, partition: u32, format: OutputFormat) -> Result<PartWriter> {
        let name = part_file_name(partition);
        let path = dir.join(&name);
        // The unique suffix keeps two attempts at the same partition (a retry racing a slow
        // original) from writing into one temporary file.
        let temp_path = dir.join(format!(".{name}.{}.tmp", crate::unique_suffix()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|source| Error::Write {
                path: temp_path.clone(),
                source,
            })?;
        Ok(PartWriter {
            format,
            path,
            temp_path,
            out: Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
            stats: PartStats::default(),
        })
    }

    /// Where the part will be once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a batch.
    pub fn write(&mut self, records: &Records) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            // Unreachable (`out` is only taken by `finish`, which consumes the writer), but an
            // error is cheaper to reason about than a panic.
            return Err(Error::Write {
                path: self.temp_path.clone(),
                source: io::Error::other("part writer already finished"),
            });
        };
        let written = match self.format {
            OutputFormat::Text => write_text(out, records),
            OutputFormat::Jsonl => write_jsonl(out, records),
        };
        match written {
            Ok(bytes) => {
                self.stats.records += records.len() as u64;
                self.stats.bytes += bytes;
                Ok(())
            }
            Err(source) => Err(Error::Write {
                path: self.temp_path.clone(),
                source,
            }),
        }
    }

    /// Flushes and fsyncs the data, then renames it to `part-NNNNN`.
    pub fn finish(mut self) -> Result<PartStats> {
        let write_error = |path: &Path, source| Error::Write {
            path: path.to_owned(),
            source,
        };
        let Some(out) = self.out.take() else {
            return Err(write_error(
                &self.temp_path,
                io::Error::other("part writer already finished"),
            ));
        };
        let file = out
            .into_inner()
            .map_err(|e| write_error(&self.temp_path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| write_error(&self.temp_path, e))?;
        drop(file);
        fs::rename(&self.temp_path, &self.path).map_err(|source| Error::Rename {
            from: self.temp_path.clone(),
            to: self.path.clone(),
            source,
        })?;
        // Renamed: nothing left for `Drop` to clean up.
        self.temp_path = PathBuf::new();
        Ok(self.stats)
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if !self.temp_path.as_os_str().is_empty() {
            // Unfinished or failed: the temporary file is garbage. Errors are ignored because the
            // staging directory it lives in is removed on abort anyway.
            drop(self.out.take());
            let _ = fs::remove_file(&self.temp_path);
        }
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
