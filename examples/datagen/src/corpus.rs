//! The word-count corpus: text that is easy to count with a reference implementation and hard to
//! count by accident — every way a line can end, every whitespace byte a word can be separated by,
//! words that are not ASCII, and lines far longer than a reader's buffer.

use std::collections::HashSet;

use crate::Rng;

/// Distinct words before case variants and punctuation.
const VOCABULARY_SIZE: usize = 4000;

/// The most frequent English words, in about their real order: the head of the Zipf curve.
/// Separated by whitespace.
const COMMON: &str = "\
    the of and to a in is you that it he was for on are as with his they I at be this have from or \
    one had by word but not what all were we when your can said there use an each which she do how \
    their if will up other about out many then them these so some her would make like him into \
    time has look two more write go see number no way could people my than first water been call \
    who oil its now find long down day did get come made may part because together sometimes \
    everything river mountain weaving loom thread shuttle pattern";

/// Words with multi-byte UTF-8 (two-, three- and four-byte sequences), spread through the
/// vocabulary's ranks so some are frequent and some rare.
const MULTIBYTE: &[&str] = &[
    "é",
    "café",
    "naïve",
    "über",
    "straße",
    "déjà-vu",
    "日本語",
    "東京",
    "こんにちは",
    "中文",
    "한국어",
    "привет",
    "мир",
    "Ελληνικά",
    "λόγος",
    "שלום",
    "مرحبا",
    "🚀",
    "😀",
    "🧵weft",
    "naïveté",
    "façade",
    "smörgåsbord",
    "crème-brûlée",
];

/// Syllables of the made-up words that fill the long tail, separated by whitespace.
const SYLLABLES: &str = "\
    ka lo ri ven ta mor sel qui dra po ne zu bar fin go hal im jo kel lu ma nor ost pra rem sil \
    tor ul vix wen yor zen ch th ae io";

/// Attached to the end of a word now and then, so `end.` and `end` are different words.
const PUNCTUATION: &[&str] = &[",", ".", ";", ":", "!", "?", ")", "\""];

/// Whitespace between words, by weight: mostly one space, then each other ASCII whitespace byte
/// and a few runs. A bare `\r` inside a line is whitespace too (only `\r\n` ends a line).
const SEPARATORS: &[(&str, u64)] = &[
    (" ", 850),
    ("  ", 40),
    ("\t", 40),
    ("\x0B", 20),
    ("\x0C", 20),
    (" \t ", 15),
    ("\x0B\x0C", 10),
    ("\r", 5),
];

/// Bytes of whitespace-only lines.
const BLANKS: &[u8] = b" \t\x0B\x0C\r";

/// A very long line is at least this long, so it spans several reads and splits of a test.
const LONG_LINE_MIN: usize = 100 << 10;
/// ... and at most this much longer.
const LONG_LINE_EXTRA: u64 = 200 << 10;
/// One very long line per this many bytes of corpus; the first comes at a third of the corpus or
/// after 1 MiB, whichever is sooner, so a corpus of a few hundred KiB has one too.
const LONG_LINE_EVERY: usize = 4 << 20;

/// The final line is filled word by word to end exactly at the requested size; it is started once
/// less than this much room is left.
const FINAL_LINE_RESERVE: usize = 64;

/// Generates a word-count corpus of exactly `bytes` bytes (unless `bytes` is 0), the same for the
/// same `bytes` and `seed`.
///
/// - Words come from a vocabulary of 4000, drawn with Zipf-like frequencies (rank `r` with weight
///   `1/r`), including multi-byte UTF-8 words (`é`, `日本語`, `🚀`, …); about 5% are capitalised or
///   upper-cased and 3% carry punctuation.
/// - Words are separated by space, `\t`, `\v`, `\f` and `\r`, alone or in runs; some lines start or
///   end with whitespace.
/// - About 4% of lines are empty and 3% hold only whitespace; 10% end in `\r\n`, the rest in `\n`.
/// - One line of 100–300 KiB every 4 MiB (the first at a third of the corpus or 1 MiB, whichever
///   comes first), for corpora that have room for one.
/// - The last line is a line of words without a line ending: the corpus ends with a word.
///
/// The corpus is valid UTF-8.
pub fn wordcount_corpus(bytes: usize, seed: u64) -> Vec<u8> {
    let vocabulary = Vocabulary::new();
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(bytes);
    let mut next_long = (bytes / 3).min(1 << 20);
    let mut line = Vec::new();
    loop {
        line.clear();
        if out.len() >= next_long {
            next_long += LONG_LINE_EVERY;
            let target = LONG_LINE_MIN + rng.below(LONG_LINE_EXTRA) as usize;
            while line.len() < target {
                vocabulary.word(&mut rng, &mut line);
                line.extend_from_slice(separator(&mut rng));
            }
        } else {
            match rng.below(1000) {
                0..40 => {}
                40..70 => {
                    for _ in 0..rng.between(1, 6) {
                        line.push(*rng.pick(BLANKS));
                    }
                }
                _ => vocabulary.line(&mut rng, &mut line),
            }
        }
        line.extend_from_slice(if rng.chance(100) { b"\r\n" } else { b"\n" });
        if out.len() + line.len() + FINAL_LINE_RESERVE > bytes {
            break;
        }
        out.extend_from_slice(&line);
    }
    vocabulary.final_line(&mut rng, bytes - out.len(), &mut out);
    debug_assert_eq!(out.len(), bytes);
    out
}

fn separator(rng: &mut Rng) -> &'static [u8] {
    let total: u64 = SEPARATORS.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for (sep, weight) in SEPARATORS {
        if x < *weight {
            return sep.as_bytes();
        }
        x -= weight;
    }
    b" "
}

/// The words, most frequent first, with the cumulative weights to draw them by.
struct Vocabulary {
    words: Vec<String>,
    /// `cumulative[r]` is the sum of the weights of ranks `0..=r`; rank `r`'s weight is
    /// `2^40 / (r + 1)`, in integers so that drawing is exact.
    cumulative: Vec<u64>,
    /// ASCII words by length, for ending the corpus at an exact size: `by_length[n]` holds the
    /// words of `n` bytes, for `n` in `1..=FILL_WORD_MAX`.
    by_length: Vec<Vec<usize>>,
}

/// The final line ends with a word of exactly the remaining length, so every length up to this one
/// needs a word.
const FILL_WORD_MAX: usize = 8;

impl Vocabulary {
    /// The same vocabulary whatever the seed: only which words are drawn depends on it.
    fn new() -> Vocabulary {
        let mut words: Vec<String> = COMMON.split_whitespace().map(str::to_owned).collect();
        let mut seen: HashSet<String> = words.iter().cloned().collect();
        seen.extend(MULTIBYTE.iter().map(|w| (*w).to_owned()));
        let syllables: Vec<&str> = SYLLABLES.split_whitespace().collect();
        let mut rng = Rng::new(0x5EED);
        while words.len() + MULTIBYTE.len() < VOCABULARY_SIZE {
            let mut word = String::new();
            for _ in 0..rng.between(1, 4) {
                word.push_str(rng.pick::<&str>(&syllables));
            }
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        // Multi-byte words at ranks 6, 19, 45, 84, … 3594: some among the most frequent words,
        // some in the long tail.
        for (i, word) in MULTIBYTE.iter().enumerate() {
            let rank = (6 + 13 * i * (i + 1) / 2).min(words.len());
            words.insert(rank, (*word).to_owned());
        }
        let mut cumulative = Vec::with_capacity(words.len());
        let mut total = 0u64;
        for rank in 0..words.len() as u64 {
            total += (1u64 << 40) / (rank + 1);
            cumulative.push(total);
        }
        let mut by_length = vec![Vec::new(); FILL_WORD_MAX + 1];
        for (index, word) in words.iter().enumerate() {
            if word.is_ascii() && word.len() <= FILL_WORD_MAX {
                by_length[word.len()].push(index);
            }
        }
        assert!(
            by_length[1..].iter().all(|words| !words.is_empty()),
            "the vocabulary needs an ASCII word of every length from 1 to {FILL_WORD_MAX}"
        );
        Vocabulary {
            words,
            cumulative,
            by_length,
        }
    }

    fn draw(&self, rng: &mut Rng) -> &str {
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = rng.below(total);
        let rank = self.cumulative.partition_point(|&c| c <= x);
        &self.words[rank.min(self.words.len() - 1)]
    }

    /// Appends one word, sometimes capitalised, upper-cased or with punctuation.
    fn word(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        let word = self.draw(rng);
        match rng.below(1000) {
            0..40 => {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.extend(first.to_uppercase().to_string().bytes());
                    out.extend_from_slice(chars.as_str().as_bytes());
                }
            }
            40..50 => out.extend(word.to_uppercase().bytes()),
            _ => out.extend_from_slice(word.as_bytes()),
        }
        if rng.chance(30) {
            out.extend_from_slice(rng.pick(PUNCTUATION).as_bytes());
        }
    }

    /// Appends an ordinary line's content: 1 to 20 words, sometimes with whitespace around them.
    fn line(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        if rng.chance(50) {
            out.extend_from_slice(separator(rng));
        }
        let words = rng.between(1, 20);
        for i in 0..words {
            if i > 0 {
                out.extend_from_slice(separator(rng));
            }
            self.word(rng, out);
        }
        if rng.chance(50) {
            out.extend_from_slice(separator(rng));
        }
    }

    /// Appends a line of exactly `room` bytes of ASCII words separated by single spaces, ending
    /// with a word (nothing if `room` is 0).
    fn final_line(&self, rng: &mut Rng, mut room: usize, out: &mut Vec<u8>) {
        while room > FILL_WORD_MAX {
            let word = self.draw(rng);
            // Leave room for the space and at least one more byte of word.
            if word.is_ascii() && word.len() + 2 <= room {
                out.extend_from_slice(word.as_bytes());
                out.push(b' ');
                room -= word.len() + 1;
            }
        }
        if room > 0 {
            let index = *rng.pick(&self.by_length[room]);
            out.extend_from_slice(self.words[index].as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_space(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
    }

    fn lines(corpus: &[u8]) -> Vec<&[u8]> {
        corpus
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = wordcount_corpus(300_000, 1);
        assert_eq!(a, wordcount_corpus(300_000, 1));
        assert_ne!(a, wordcount_corpus(300_000, 2));
    }

    #[test]
    fn sizes_are_exact_and_the_end_is_a_word() {
        for size in [0, 1, 2, 7, 8, 9, 63, 64, 65, 100, 1000, 4321, 1 << 20] {
            let corpus = wordcount_corpus(size, 3);
            assert_eq!(corpus.len(), size);
            if let Some(&last) = corpus.last() {
                assert!(!is_space(last), "size {size} ends with {last:#x}");
            }
            assert!(std::str::from_utf8(&corpus).is_ok(), "size {size}");
        }
    }

    #[test]
    fn every_feature_is_present() {
        let corpus = wordcount_corpus(2 << 20, 1);
        let text = std::str::from_utf8(&corpus).expect("UTF-8");
        let lines = lines(&corpus);
        let has = |needle: &[u8]| corpus.windows(needle.len()).any(|w| w == needle);

        assert!(has(b"\r\n"), "CRLF line endings");
        assert!(
            lines.iter().filter(|l| l.is_empty()).count() > 100,
            "empty lines"
        );
        assert!(
            lines
                .iter()
                .filter(|l| !l.is_empty() && l.iter().all(|&b| is_space(b)))
                .count()
                > 100,
            "whitespace-only lines"
        );
        for byte in [b' ', b'\t', 0x0B, 0x0C] {
            // Between two words: inside a line once its leading and trailing whitespace is cut.
            assert!(
                lines.iter().any(|l| {
                    let start = l.iter().position(|&b| !is_space(b));
                    let end = l.iter().rposition(|&b| !is_space(b));
                    matches!((start, end), (Some(s), Some(e)) if l[s..e].contains(&byte))
                }),
                "{byte:#x} between words"
            );
        }
        assert!(
            lines.iter().any(|l| l.len() >= LONG_LINE_MIN),
            "a line of at least 100 KiB"
        );
        assert!(!corpus.ends_with(b"\n"), "no newline at the end");

        let words: HashSet<&str> = text
            .split(|c: char| c.is_ascii_whitespace() || c == '\x0B')
            .filter(|w| !w.is_empty())
            .collect();
        for word in ["é", "日本語", "🚀", "the", "The", "THE"] {
            assert!(words.contains(word), "the word {word:?}");
        }
        // Zipf-like: the most frequent word is far more frequent than a mid-ranked one.
        let count = |w: &str| text.split_ascii_whitespace().filter(|x| *x == w).count();
        assert!(count("the") > 20 * count("river").max(1));
        assert!(words.len() > 2000, "{} distinct words", words.len());
    }

    #[test]
    fn small_corpora_have_a_long_line_too() {
        let corpus = wordcount_corpus(400_000, 9);
        assert!(lines(&corpus).iter().any(|l| l.len() >= LONG_LINE_MIN));
    }
}
