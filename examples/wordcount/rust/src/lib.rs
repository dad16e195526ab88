//! Word count, the classic first job: `split_words` turns lines into `(word, 1)` records and `sum`
//! adds the counts of each word; `long_words` keeps the words of 5 bytes or more (the mixed-language
//! job of `examples/mixed` uses it). The same module in C, Zig and AssemblyScript sits beside this
//! crate (`examples/README.md`).
//!
//! Build the module with `weft udf build examples/wordcount/rust`, or
//! `cargo build --profile guest --target wasm32-wasip1 -p weft-example-wordcount`; it is
//! `target/wasm32-wasip1/guest/weft_example_wordcount.wasm` and exports
//! `weft_flat_map_split_words`, `weft_filter_long_words` and `weft_reduce_sum` (with its combiner).
//! Run the unit tests natively with `cargo test -p weft-example-wordcount`.
//!
//! Words are bytes, not text: input need not be UTF-8, and a word is whatever lies between ASCII
//! whitespace, case kept (`The` and `the` are two words).

use weft_guest::{Decimal, Emitter, filter, flat_map, reduce};

/// The ASCII whitespace bytes that separate words: space, `\t`, `\n`, `\v` (0x0B), `\f`, `\r`.
///
/// Not `u8::is_ascii_whitespace`, which leaves out `\v`: word count's separators are the six bytes
/// of C's `isspace` in the C locale, so every implementation of the job agrees on what a word is.
fn is_separator(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Emits `(word, "1")` for each occurrence of a word in the value; the key is ignored.
///
/// A word is a maximal run of bytes that are not ASCII whitespace: space, `\t`, `\n`, `\v` (0x0B),
/// `\f` or `\r`.
#[flat_map]
pub fn split_words(_key: (), line: &[u8], out: &mut Emitter) {
    for word in line
        .split(|&b| is_separator(b))
        .filter(|word| !word.is_empty())
    {
        out.emit(word, b"1");
    }
}

/// Keeps the records whose key (a word) is at least 5 bytes long.
#[filter]
pub fn long_words(word: &[u8], _count: &[u8]) -> bool {
    word.len() >= 5
}

/// Adds two decimal counts; a sum past `u64::MAX` is an error rather than a wrap-around.
#[reduce]
pub fn sum(a: Decimal<u64>, b: Decimal<u64>) -> Result<Decimal<u64>, String> {
    a.0.checked_add(b.0)
        .map(Decimal)
        .ok_or_else(|| format!("the count {} + {} overflows a u64", a.0, b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Emitter::new();
        split_words((), line, &mut out);
        out.iter()
            .map(|(word, one)| {
                assert_eq!(one, b"1");
                word.to_vec()
            })
            .collect()
    }

    #[test]
    fn splits_on_every_ascii_whitespace_byte() {
        assert_eq!(
            words(b" to\tbe\nor\x0Bnot\x0Cto\rbe  "),
            [&b"to"[..], b"be", b"or", b"not", b"to", b"be"]
        );
    }

    #[test]
    fn keeps_case_punctuation_and_non_utf8_bytes() {
        assert_eq!(
            words(b"The the, \xff\xfe x"),
            [&b"The"[..], b"the,", b"\xff\xfe", b"x"]
        );
    }

    #[test]
    fn blank_lines_emit_nothing() {
        assert!(words(b"").is_empty());
        assert!(words(b" \t\r\n").is_empty());
    }

    #[test]
    fn long_words_are_five_bytes_or_more() {
        assert!(long_words(b"hello", b"1"));
        assert!(long_words("Zürich".as_bytes(), b"1"));
        assert!(!long_words(b"four", b"1"));
        assert!(!long_words(b"", b"1"));
    }

    #[test]
    fn sum_adds_and_refuses_to_overflow() {
        assert_eq!(sum(Decimal(2), Decimal(40)), Ok(Decimal(42)));
        assert_eq!(sum(Decimal(u64::MAX), Decimal(0)), Ok(Decimal(u64::MAX)));
        let error = sum(Decimal(u64::MAX), Decimal(1)).unwrap_err();
        assert!(error.contains("overflows"), "{error}");
    }
}
