//! Shared helpers: the reference line splitter and a reader that runs every split of a file.

use std::path::Path;

use weft_io::{InputFile, InputFormat, ReadOptions, SplitReader, plan_splits};

/// A record as (key, value), owned.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The lines of `content` computed the simple way: split on `\n`, drop the empty piece after a
/// final `\n` (or the only piece of an empty file), strip one trailing `\r` from each line. Each
/// comes with the byte offset where it starts.
pub fn reference_lines(content: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut pieces: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    let mut offset = 0u64;
    let mut lines = Vec::new();
    for piece in pieces {
        let line = piece.strip_suffix(b"\r").unwrap_or(piece);
        lines.push((offset, line.to_vec()));
        offset += piece.len() as u64 + 1;
    }
    lines
}

/// The records the reader should produce for `lines` of the file at `path`.
pub fn expected_records(path: &Path, lines: &[(u64, Vec<u8>)]) -> Vec<Pair> {
    lines
        .iter()
        .map(|(offset, line)| {
            (
                format!("{}:{offset}", path.display()).into_bytes(),
                line.clone(),
            )
        })
        .collect()
}

/// Reads every split of `file` (cut at `split_size`) in order and concatenates their records.
pub fn read_all_splits(
    file: &InputFile,
    split_size: u64,
    format: InputFormat,
    options: ReadOptions,
) -> Vec<Pair> {
    let mut records = Vec::new();
    for split in plan_splits(std::slice::from_ref(file), split_size, format).unwrap() {
        let reader = SplitReader::open_with(&split, format, options).unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            assert!(!batch.is_empty(), "batches are never empty");
            records.extend(batch.to_pairs());
        }
    }
    records
}

/// Writes `content` to `dir/name` and describes it as an input file.
pub fn input_file(dir: &Path, name: &str, content: &[u8]) -> InputFile {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    InputFile {
        path,
        size: content.len() as u64,
    }
}

/// Readable diff for a mismatch: the first differing record rather than two huge vectors.
pub fn assert_same_records(got: &[Pair], want: &[Pair], context: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            panic!(
                "{context}: record {i} differs: got key {:?} value {:?}, want key {:?} value {:?}",
                String::from_utf8_lossy(&g.0),
                String::from_utf8_lossy(&g.1[..g.1.len().min(80)]),
                String::from_utf8_lossy(&w.0),
                String::from_utf8_lossy(&w.1[..w.1.len().min(80)]),
            );
        }
    }
    assert_eq!(got.len(), want.len(), "{context}: record count");
}

/// A small deterministic generator (xorshift64*), so generated files are the same every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
