//! The best word count we can write by hand, without a framework: the machine's real limit for the
//! job, spread over every core.
//!
//! Each thread takes a byte range of the file (moved forward to the next line start, Hadoop's rule,
//! so no line is split or counted twice), reads it with `pread` in 8 MiB chunks, splits on the six
//! ASCII whitespace bytes with a byte loop and counts borrowed words in a foldhash map; a chunk's
//! unfinished last word is carried into the next chunk. The threads' maps are merged and written as
//! `word<TAB>count` lines, like Weft's and Spark's output.
//!
//! It is also the benchmark's reference: every contender's output must equal its counts.

use std::collections::HashMap as StdHashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use foldhash::{HashMap, HashMapExt};

/// Word counts, the reference every output is compared with.
pub type Counts = StdHashMap<Vec<u8>, u64>;

const CHUNK: usize = 8 << 20;

fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Counts the words of `path` on `threads` threads and writes them to `out`.
pub fn word_count(path: &Path, out: &Path, threads: usize) -> Result<Counts> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    let threads = threads.max(1) as u64;
    let maps: Vec<HashMap<Box<[u8]>, u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let file = &file;
                let (start, end) = (len * t / threads, len * (t + 1) / threads);
                scope.spawn(move || count_range(file, start, end, len))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a counting thread panicked"))
            .collect::<std::io::Result<_>>()
    })?;
    let mut maps = maps.into_iter();
    let mut total = maps.next().unwrap_or_default();
    for map in maps {
        for (word, n) in map {
            *total.entry(word).or_insert(0) += n;
        }
    }
    let mut writer = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut counts = Counts::with_capacity(total.len());
    for (word, n) in total {
        writer.write_all(&word)?;
        writeln!(writer, "\t{n}")?;
        counts.insert(word.into_vec(), n);
    }
    writer.flush()?;
    Ok(counts)
}

/// Counts the words of the lines that start in `start..end` (a line starts at 0 or after `\n`).
fn count_range(
    file: &File,
    start: u64,
    end: u64,
    len: u64,
) -> std::io::Result<HashMap<Box<[u8]>, u64>> {
    let mut counts: HashMap<Box<[u8]>, u64> = HashMap::with_capacity(1 << 17);
    let mut buf = vec![0u8; CHUNK];
    let mut pos = start;
    // Skip the partial line that belongs to the previous range.
    if start > 0 {
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, start - 1)?;
        if byte[0] != b'\n' {
            loop {
                let n = file.read_at(&mut buf[..CHUNK.min(64 << 10)], pos)?;
                if n == 0 {
                    return Ok(counts);
                }
                match buf[..n].iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        pos += i as u64 + 1;
                        break;
                    }
                    None => pos += n as u64,
                }
            }
        }
    }
    if pos >= end {
        return Ok(counts); // the range lies inside one line that started earlier
    }
    // Bytes of an unfinished word at the front of `buf`; they precede file offset `pos`.
    let mut carry = 0usize;
    while pos < len {
        let n = file.read_at(&mut buf[carry..], pos)?;
        if n == 0 {
            break;
        }
        let filled = carry + n;
        let data = &buf[..filled];
        let mut word_start = 0usize;
        for i in carry..filled {
            let b = data[i];
            if is_separator(b) {
                if i > word_start {
                    add(&mut counts, &data[word_start..i]);
                }
                word_start = i + 1;
                // The line after this newline starts at `end` or later: it is the next range's.
                if b == b'\n' && pos + (i - carry) as u64 + 1 >= end {
                    return Ok(counts);
                }
            }
        }
        pos += n as u64;
        buf.copy_within(word_start..filled, 0);
        carry = filled - word_start;
        if carry == buf.len() {
            buf.resize(buf.len() * 2, 0); // a word longer than the buffer
        }
    }
    if carry > 0 {
        add(&mut counts, &buf[..carry]);
    }
    Ok(counts)
}

#[inline]
fn add(counts: &mut HashMap<Box<[u8]>, u64>, word: &[u8]) {
    match counts.get_mut(word) {
        Some(n) => *n += 1,
        None => {
            counts.insert(word.into(), 1);
        }
    }
}

/// Reads `word<TAB>count` lines from a file or from every `part-*` file of a directory (Weft's and
/// Spark's output), refusing a word seen twice or a malformed line.
pub fn read_counts(path: &Path) -> Result<Counts> {
    let files: Vec<_> = if path.is_dir() {
        let mut parts: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-"))
            })
            .collect();
        parts.sort();
        parts
    } else {
        vec![path.to_owned()]
    };
    let mut counts = Counts::new();
    for file in files {
        let text =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line
                .iter()
                .rposition(|&b| b == b'\t')
                .with_context(|| format!("{}: a line without a tab", file.display()))?;
            let n: u64 = std::str::from_utf8(&line[tab + 1..])
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .with_context(|| format!("{}: a count that is not a number", file.display()))?;
            if counts.insert(line[..tab].to_vec(), n).is_some() {
                anyhow::bail!(
                    "{}: the word {:?} appears twice",
                    file.display(),
                    String::from_utf8_lossy(&line[..tab])
                );
            }
        }
    }
    Ok(counts)
}

/// Fails unless `actual` equals `expected`, naming a few differences.
pub fn check_counts(who: &str, actual: &Counts, expected: &Counts) -> Result<()> {
    check_table(who, "word counts", actual, expected)
}

/// Fails unless `actual` equals `expected` (`key<TAB>number` tables: word counts, the stocks job's
/// volumes), naming a few differences and what the numbers are.
pub fn check_table(who: &str, what: &str, actual: &Counts, expected: &Counts) -> Result<()> {
    if actual == expected {
        return Ok(());
    }
    let mut diffs = Vec::new();
    for (word, n) in expected {
        if actual.get(word) != Some(n) {
            diffs.push(format!(
                "{:?}: expected {n}, got {:?}",
                String::from_utf8_lossy(word),
                actual.get(word)
            ));
        }
    }
    for word in actual.keys().filter(|w| !expected.contains_key(*w)) {
        diffs.push(format!("{:?}: not expected", String::from_utf8_lossy(word)));
    }
    diffs.truncate(5);
    anyhow::bail!(
        "{who}: wrong {what} ({} keys, expected {}): {}",
        actual.len(),
        expected.len(),
        diffs.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts of a straightforward split, to hold the fast one to.
    fn simple(text: &[u8]) -> Counts {
        let mut counts = Counts::new();
        for w in text.split(|&b| is_separator(b)).filter(|w| !w.is_empty()) {
            *counts.entry(w.to_vec()).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn ranges_and_chunks_count_every_word_once() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        let mut text = Vec::new();
        weft_datagen::zipf_words(300_000, 3, &mut text).unwrap();
        // Awkward edges: a long word across chunk ends, a line with no final newline, tabs.
        text.extend_from_slice(b"tail\tword\x0bhere ");
        text.extend(std::iter::repeat_n(b'x', 100));
        std::fs::write(&input, &text).unwrap();
        for threads in [1, 2, 3, 7] {
            let counts = word_count(&input, &dir.path().join("out.tsv"), threads).unwrap();
            assert_eq!(counts, simple(&text), "{threads} threads");
            let read = read_counts(&dir.path().join("out.tsv")).unwrap();
            assert_eq!(read, counts);
        }
    }
}
