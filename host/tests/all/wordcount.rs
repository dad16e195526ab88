//! The word-count guests (the Rust, C, Zig and AssemblyScript SDKs, and hand-written WAT) through
//! the ABI: every implementation must give exactly the reference answer, on awkward input included.

use std::collections::BTreeMap;

use arrow_array::Array;
use weft_host::{CallError, Groups, Records};
use weft_testkit::reference::words;

use crate::{instantiate, read};

/// A deterministic pseudo-random text generator (xorshift), with multi-byte UTF-8 and every kind of
/// whitespace, so the tests need no data files.
pub(crate) fn corpus(lines: usize, seed: u64) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "the",
        "The",
        "THE",
        "weft",
        "warp",
        "naïve",
        "日本語",
        "😀",
        "x",
        "a-b",
        "don't",
        "Ωmega",
        "\u{a0}nbsp",
        "tab\u{2003}em",
        "zürich",
        "1234",
    ];
    const SPACES: &[&str] = &[" ", "  ", "\t", "\x0b", "\x0c", "\r", " \t "];
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..lines)
        .map(|_| {
            let mut line = Vec::new();
            let n = next() % 12;
            for i in 0..n {
                if i > 0 || next() % 3 == 0 {
                    line.extend_from_slice(
                        SPACES[(next() % SPACES.len() as u64) as usize].as_bytes(),
                    );
                }
                // Zipf-like: low indexes far more often.
                let r = next() % 1000;
                let idx = ((r * r) / (1000 * 1000 / WORDS.len() as u64)) as usize % WORDS.len();
                line.extend_from_slice(WORDS[idx].as_bytes());
            }
            if next() % 4 == 0 {
                line.extend_from_slice(b"\r");
            }
            line
        })
        .collect()
}

fn split(path: &str, values: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut guest = instantiate(&read(path));
    let input = Records::from_pairs(values.iter().enumerate().map(|(i, v)| (i.to_string(), v)));
    guest
        .flat_map("split_words", &input)
        .expect("split_words")
        .to_pairs()
}

fn check_split(path: &str) {
    let values: Vec<Vec<u8>> = vec![
        b"hello world".to_vec(),
        b"".to_vec(),
        b" \t\x0b\x0c\r\n".to_vec(),
        "naïve café 日本語 😀".as_bytes().to_vec(),
        b"line one\r\n".to_vec(),
        b"\x0bvt\x0cff\rcr\ttab\nnl".to_vec(),
        b"Case case CASE".to_vec(),
        vec![0xff, 0xfe, b' ', 0x80],
    ];
    let got = split(path, &values);
    let expected: Vec<(Vec<u8>, Vec<u8>)> = values
        .iter()
        .flat_map(|v| words(v))
        .map(|w| (w.to_vec(), b"1".to_vec()))
        .collect();
    assert_eq!(got, expected);
}

fn check_empty_batch(path: &str) {
    let mut guest = instantiate(&read(path));
    let out = guest.flat_map("split_words", &Records::empty()).unwrap();
    assert!(out.is_empty());
    let out = guest
        .reduce(
            "sum",
            &Groups::from_groups(Vec::<(&[u8], Vec<&[u8]>)>::new()),
        )
        .unwrap();
    assert_eq!(out.len(), 0);
}

fn check_large_values(path: &str) {
    // A 2 MiB value of many words, a 1.5 MiB single word, and an empty key.
    let mut many = Vec::new();
    let mut i = 0u32;
    while many.len() < 2 << 20 {
        many.extend_from_slice(format!("w{} ", i % 5000).as_bytes());
        i += 1;
    }
    let huge_word = vec![b'z'; 3 << 19];
    let mut guest = instantiate(&read(path));
    let input = Records::from_pairs([
        (b"".to_vec(), many.clone()),
        (b"k".to_vec(), huge_word.clone()),
    ]);
    let out = guest.flat_map("split_words", &input).unwrap();
    let mut expected: Vec<&[u8]> = words(&many).collect();
    expected.push(&huge_word);
    assert_eq!(out.len(), expected.len());
    for (i, (k, v)) in out.iter().enumerate() {
        assert_eq!(k, expected[i], "word {i}");
        assert_eq!(v, b"1");
    }
}

fn check_sum(path: &str) {
    let mut guest = instantiate(&read(path));
    let groups = Groups::from_groups([
        (b"one".to_vec(), vec![b"7".to_vec()]),
        (
            b"".to_vec(),
            vec![b"1".to_vec(), b"1".to_vec(), b"1".to_vec()],
        ),
        (
            "日本".as_bytes().to_vec(),
            vec![b"18446744073709551000".to_vec(), b"615".to_vec()],
        ),
        (b"zeros".to_vec(), vec![b"0".to_vec(), b"0".to_vec()]),
    ]);
    let out = guest.reduce("sum", &groups).unwrap();
    let got: Vec<&[u8]> = out.iter().map(|v| v.unwrap_or_default()).collect();
    assert_eq!(got, [&b"7"[..], b"3", b"18446744073709551615", b"0"]);

    // Not a decimal: the guest's own message reaches the caller, and the instance stays usable.
    let bad = Groups::from_groups([(b"w".to_vec(), vec![b"1".to_vec(), b"abc".to_vec()])]);
    match guest.reduce("sum", &bad) {
        Err(CallError::Guest { udf, message }) => {
            assert_eq!(udf, "sum");
            assert!(
                message.contains("abc"),
                "message should quote the bad value: {message}"
            );
        }
        other => panic!("expected a guest error, got {other:?}"),
    }
    let overflow = Groups::from_groups([(
        b"w".to_vec(),
        vec![b"18446744073709551615".to_vec(), b"1".to_vec()],
    )]);
    assert!(matches!(
        guest.reduce("sum", &overflow),
        Err(CallError::Guest { .. })
    ));
    let out = guest.reduce("sum", &groups).unwrap();
    assert_eq!(out.value(1), b"3");
}

/// The whole word count through the ABI over several batches, combining partial sums as a shuffle
/// would, against the reference counted with a BTreeMap.
fn check_corpus(path: &str) {
    let lines = corpus(5000, 0x5eed);
    let mut reference: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for line in &lines {
        for w in words(line) {
            *reference.entry(w.to_vec()).or_default() += 1;
        }
    }

    let mut guest = instantiate(&read(path));
    let mut partials: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for chunk in lines.chunks(700) {
        let words = guest
            .flat_map(
                "split_words",
                &Records::from_pairs(chunk.iter().map(|l| (b"", l))),
            )
            .unwrap();
        // Map-side combine of this batch, then keep the partial sums.
        let mut grouped: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
        for (k, v) in words.iter() {
            grouped.entry(k).or_default().push(v);
        }
        let keys: Vec<Vec<u8>> = grouped.keys().map(|k| k.to_vec()).collect();
        let sums = guest.reduce("sum", &Groups::from_groups(grouped)).unwrap();
        for (k, s) in keys.into_iter().zip(sums.iter()) {
            partials.entry(k).or_default().push(s.unwrap().to_vec());
        }
    }
    let keys: Vec<Vec<u8>> = partials.keys().cloned().collect();
    let totals = guest.reduce("sum", &Groups::from_groups(partials)).unwrap();
    let got: BTreeMap<Vec<u8>, u64> = keys
        .into_iter()
        .zip(totals.iter())
        .map(|(k, v)| (k, std::str::from_utf8(v.unwrap()).unwrap().parse().unwrap()))
        .collect();
    assert_eq!(got, reference);
}

macro_rules! wordcount_tests {
    ($name:ident, $path:expr) => {
        mod $name {
            #[test]
            fn split_words_matches_reference() {
                super::check_split($path);
            }
            #[test]
            fn empty_batches() {
                super::check_empty_batch($path);
            }
            #[test]
            fn values_over_one_mib() {
                super::check_large_values($path);
            }
            #[test]
            fn sum_folds_groups_and_reports_bad_values() {
                super::check_sum($path);
            }
            #[test]
            fn corpus_counts_are_exact() {
                super::check_corpus($path);
            }
        }
    };
}

weft_examples::foreach_wordcount!(wordcount_tests);
