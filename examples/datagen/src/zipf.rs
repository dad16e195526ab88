//! The benchmark corpus: plain text shaped like the Spark peer's `gen.py words`, so Weft, Spark and
//! a native program can count the same file and must agree to the byte.
//!
//! Unlike [`crate::wordcount_corpus`], which is built to trip up a reader, this one is what a
//! benchmark wants: lowercase ASCII words of 2–10 letters from a vocabulary of 100 000, drawn with
//! Zipf frequencies (rank `r` with weight `1/r`), 5–15 words per line (10 on average) separated by
//! one space, every line ending in `\n`. With single spaces and no empty words, splitting on `" "`
//! (Spark's `split(value, " ")`) and splitting on ASCII whitespace give the same words.

use std::io::{self, Write};

use crate::Rng;

/// Distinct words, as in `gen.py`.
pub const ZIPF_VOCABULARY: usize = 100_000;

/// Weights are `SCALE / rank`, summed in integers so the corpus depends on nothing but the seed.
const SCALE: u64 = 1 << 40;

/// Writes about `bytes` bytes of the benchmark corpus to `out` and returns how many it wrote: the
/// output stops at the first line end at or past `bytes` (like `gen.py`), so it is whole lines.
pub fn zipf_words(bytes: u64, seed: u64, out: &mut impl Write) -> io::Result<u64> {
    let mut rng = Rng::new(seed);
    let vocabulary = vocabulary(&mut rng);
    let mut cumulative = Vec::with_capacity(ZIPF_VOCABULARY);
    let mut total = 0u64;
    for rank in 1..=ZIPF_VOCABULARY as u64 {
        total += SCALE / rank;
        cumulative.push(total);
    }
    let mut written = 0u64;
    let mut chunk = Vec::with_capacity(1 << 20);
    while written < bytes {
        chunk.clear();
        while chunk.len() < (1 << 20) - 256 && written + (chunk.len() as u64) < bytes {
            let words = rng.between(5, 15);
            for i in 0..words {
                let x = rng.below(total);
                let rank = cumulative.partition_point(|&c| c <= x);
                chunk.extend_from_slice(&vocabulary[rank]);
                chunk.push(if i + 1 == words { b'\n' } else { b' ' });
            }
        }
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    Ok(written)
}

/// 100 000 distinct lowercase words of 2–10 letters, in rank order.
fn vocabulary(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::with_capacity(ZIPF_VOCABULARY);
    let mut words = Vec::with_capacity(ZIPF_VOCABULARY);
    while words.len() < ZIPF_VOCABULARY {
        let len = rng.between(2, 10) as usize;
        let word: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(bytes: u64, seed: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let n = zipf_words(bytes, seed, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    #[test]
    fn deterministic_whole_lines_of_plain_words() {
        let a = corpus(200_000, 42);
        assert_eq!(a, corpus(200_000, 42));
        assert_ne!(a, corpus(200_000, 43));
        assert!(a.len() >= 200_000 && a.len() < 200_000 + 200);
        assert_eq!(a.last(), Some(&b'\n'));
        for line in a.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let words: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            assert!((5..=15).contains(&words.len()), "{words:?}");
            assert!(
                words
                    .iter()
                    .all(|w| (2..=10).contains(&w.len()) && w.iter().all(u8::is_ascii_lowercase))
            );
        }
    }

    #[test]
    fn frequencies_follow_zipf() {
        let text = corpus(2_000_000, 1);
        let mut counts = std::collections::HashMap::new();
        for word in text
            .split(|&b| b == b' ' || b == b'\n')
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word).or_insert(0u64) += 1;
        }
        let mut freq: Vec<u64> = counts.into_values().collect();
        freq.sort_unstable_by(|a, b| b.cmp(a));
        // Rank 1 is about twice rank 2 and ten times rank 10 (weights 1/r), within sampling noise.
        let ratio = |a: usize, b: usize| freq[a] as f64 / freq[b] as f64;
        assert!((1.7..2.3).contains(&ratio(0, 1)), "{}", ratio(0, 1));
        assert!((8.0..12.5).contains(&ratio(0, 9)), "{}", ratio(0, 9));
    }
}
