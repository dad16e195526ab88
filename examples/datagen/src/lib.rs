//! Deterministic data for Weft's example jobs and tests: the same size and seed always give the
//! same bytes, on every machine, so a test can regenerate its input instead of committing it.
//!
//! # Brief overview
//! - [`wordcount_corpus`] — text for `examples/wordcount`, made to stress a word count and the
//!   text reader: a Zipf-like vocabulary with multi-byte UTF-8 words, mixed case, empty and
//!   whitespace-only lines, `\r\n` endings, every ASCII whitespace byte between words, very long
//!   lines, and no newline at the end.
//! - [`stocks_csv`] — daily quotes for `examples/stocks`: a header, then
//!   `symbol,date,open,high,low,close,volume` rows for about 500 symbols; [`write_stocks_csv`] writes
//!   the same rows as a stream.
//! - [`zipf_words`] — the benchmark corpus: plain lowercase words with Zipf frequencies over a
//!   100 000-word vocabulary, one space apart, shaped like the Spark peer's `gen.py words`, so every
//!   word count (Weft, Spark, native) agrees on it; written as a stream, so it can be gigabytes.
//! - [`parse_size`] — the `20MB` / `64MiB` sizes the `weft-datagen` command line takes.
//!
//! Randomness comes from a seeded xorshift generator and all arithmetic on it is in integers (no
//! floating point, whose `ln` and `exp` differ in the last bits between C libraries), so the output
//! depends on nothing but the arguments.
//!
//! Run the generator with `cargo run --release -p weft-datagen -- wordcount --bytes 20MB OUT` (see
//! `--help`); the unit tests (`cargo test -p weft-datagen`) check determinism and that every
//! feature listed above is present.

mod corpus;
mod stocks;
mod zipf;

pub use corpus::wordcount_corpus;
pub use stocks::{SYMBOLS, stocks_csv, write_stocks_csv};
pub use zipf::{ZIPF_VOCABULARY, zipf_words};

/// The size parser every Weft flag and job-file key uses (`20MB`, `64MiB`).
pub use weft_io::parse_size;

/// xorshift64* (Vigna), seeded through splitmix64 so that nearby seeds give unrelated streams.
/// Not for cryptography; fast, and its output is fixed by the seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // xorshift's state must never be zero.
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-32 for our `n`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_seed_dependent() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        // Seed 0 must not give the all-zero stream xorshift falls into from a zero state.
        assert!(draw(0).iter().all(|&x| x != 0));
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = rng.below(5);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert!((0..1000).all(|_| (3..=4).contains(&rng.between(3, 4))));
    }
}
