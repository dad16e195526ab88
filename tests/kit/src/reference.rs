//! Answers computed the plain way, independently of Weft, for its answers to be checked against.

use std::collections::HashMap;

/// The bytes that separate words in the word-count examples (every guest, in every language):
/// the six ASCII whitespace bytes of C's `isspace`, `\v` and `\f` included.
pub fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The words of `text`, in order.
pub fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| is_separator(b)).filter(|w| !w.is_empty())
}

/// The reference word count: split on the separators, count.
pub fn word_counts(text: &[u8]) -> HashMap<Vec<u8>, u64> {
    let mut counts = HashMap::new();
    for word in words(text) {
        *counts.entry(word.to_vec()).or_insert(0) += 1;
    }
    counts
}

/// The stocks example's answer: the largest volume (7th field) of each symbol (1st field) of a CSV
/// whose first line is a header and whose fields are separated by `delimiter` (no field is
/// quoted, as `weft_datagen::stocks_csv` writes none).
pub fn max_volumes(csv: &[u8], delimiter: u8) -> HashMap<Vec<u8>, u64> {
    let mut want: HashMap<Vec<u8>, u64> = HashMap::new();
    let text = std::str::from_utf8(csv).expect("a stocks CSV is UTF-8");
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(char::from(delimiter)).collect();
        let volume: u64 = fields[6].parse().expect("a volume");
        let max = want.entry(fields[0].as_bytes().to_vec()).or_insert(0);
        *max = (*max).max(volume);
    }
    want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_every_ascii_space() {
        let counts = word_counts(b"a b\tb\x0bc\x0cc\r\nc  ");
        let want: HashMap<Vec<u8>, u64> = [("a", 1), ("b", 2), ("c", 3)]
            .map(|(w, n)| (w.as_bytes().to_vec(), n))
            .into();
        assert_eq!(counts, want);
    }

    #[test]
    fn volumes_are_read_in_the_file_dialect() {
        let csv = b"symbol;date;o;h;l;c;volume\nA;d;1;1;1;1;5\nA;d;1;1;1;1;7\nB;d;1;1;1;1;2\n";
        let want: HashMap<Vec<u8>, u64> = [(b"A".to_vec(), 7), (b"B".to_vec(), 2)].into();
        assert_eq!(max_volumes(csv, b';'), want);
    }
}
