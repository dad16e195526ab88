//! Splitting and line framing: whatever the split size, chunk size and batch size, the splits of a
//! file together give exactly the file's lines, once each, keyed by path and offset.

use weft_batch::Records;
use weft_io::{InputFormat, InputSplit, ReadOptions, SplitReader};

use crate::common::{
    Rng, assert_same_records, expected_records, input_file, read_all_splits, reference_lines,
};

/// CRLF and LF endings, empty lines (both kinds), multi-byte UTF-8, a byte that is not UTF-8, a
/// lone `\r` inside a line, and no trailing newline.
const SMALL: &[u8] = b"first line\r\nsecond\n\n\r\nh\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\nraw \xff byte\r\ninner\rcr\n\nlast without newline";

fn option_sets() -> [ReadOptions; 4] {
    [
        ReadOptions::default(),
        ReadOptions {
            batch_bytes: 1,
            ..ReadOptions::default()
        },
        ReadOptions {
            batch_bytes: 1,
            chunk_bytes: 1,
        },
        ReadOptions {
            batch_bytes: 7,
            chunk_bytes: 3,
        },
    ]
}

fn check_every_split_size(content: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "small.txt", content);
    let want = expected_records(&file.path, &reference_lines(content));
    let max = (content.len() as u64 + 1).max(60);
    for split_size in 1..=max {
        for options in option_sets() {
            let got = read_all_splits(&file, split_size, InputFormat::Text, options);
            assert_same_records(
                &got,
                &want,
                &format!("content {content:?}, split size {split_size}, {options:?}"),
            );
        }
    }
}

#[test]
fn small_file_at_every_split_size() {
    assert_eq!(reference_lines(SMALL).len(), 9, "the fixture has 9 lines");
    check_every_split_size(SMALL);
}

#[test]
fn small_file_variants_at_every_split_size() {
    let mut with_lf = SMALL.to_vec();
    with_lf.push(b'\n');
    let mut with_crlf = SMALL.to_vec();
    with_crlf.extend_from_slice(b"\r\n");
    let variants: [&[u8]; 10] = [
        &with_lf,
        &with_crlf,
        b"",
        b"\n",
        b"\n\n\n",
        b"\r\n\r\n",
        b"x",
        b"\nleading empty line\n",
        b"a\nb\nc",
        b"last line ends in cr\r",
    ];
    for content in variants {
        check_every_split_size(content);
    }
}

#[test]
fn an_empty_file_has_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "empty", b"");
    // No splits are planned for it, and reading it whole gives nothing either.
    assert!(
        weft_io::plan_splits(std::slice::from_ref(&file), 10, InputFormat::Text)
            .unwrap()
            .is_empty()
    );
    let mut reader = SplitReader::open(&InputSplit::whole(&file), InputFormat::Text).unwrap();
    assert!(reader.next_batch().unwrap().is_none());
}

#[test]
fn keys_are_path_colon_offset() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "a.txt", b"ab\r\ncd\n\nef");
    let mut reader = SplitReader::open(&InputSplit::whole(&file), InputFormat::Text).unwrap();
    let batch = reader.next_batch().unwrap().unwrap();
    let path = file.path.display();
    let want: Vec<(Vec<u8>, Vec<u8>)> = [
        (format!("{path}:0"), "ab"),
        (format!("{path}:4"), "cd"),
        (format!("{path}:7"), ""),
        (format!("{path}:8"), "ef"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into_bytes(), v.as_bytes().to_vec()))
    .collect();
    assert_eq!(batch.to_pairs(), want);
    assert!(reader.next_batch().unwrap().is_none());
    assert!(reader.next().is_none(), "stays exhausted");
}

/// Told that no UDF reads the keys, the reader leaves them empty (all-zero offsets) in every
/// format and reads the very same records; batches are then closed by their values (fewer), and
/// empty lines still make bounded batches.
#[test]
fn keys_are_empty_when_the_job_does_not_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..500)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let file = input_file(dir.path(), "records", &content);
    let options = ReadOptions {
        batch_bytes: 1000,
        chunk_bytes: 300,
    };
    for format in [InputFormat::Text, InputFormat::Jsonl, InputFormat::CSV] {
        let read = |keys: bool| {
            let reader = SplitReader::open_with(&InputSplit::whole(&file), format, options)
                .unwrap()
                .with_keys(keys);
            reader.map(Result::unwrap).collect::<Vec<_>>()
        };
        let (with, without) = (read(true), read(false));
        let values = |batches: &[Records]| -> Vec<Vec<u8>> {
            batches
                .iter()
                .flat_map(|b| b.values().iter().map(|v| v.unwrap().to_vec()))
                .collect()
        };
        assert_eq!(values(&with), values(&without), "{format:?}");
        let path = file.path.to_str().unwrap().as_bytes();
        assert!(with.iter().all(|b| b.keys().value(0).starts_with(path)));
        for batch in &without {
            assert_eq!(batch.keys().offsets().len(), batch.values().offsets().len());
            assert!(batch.keys().offsets().iter().all(|&o| o == 0), "{format:?}");
        }
    }
    let empty_lines = input_file(dir.path(), "empty-lines", &[b'\n'; 5000]);
    let batches =
        SplitReader::open_with(&InputSplit::whole(&empty_lines), InputFormat::Text, options)
            .unwrap()
            .with_keys(false)
            .map(|b| b.unwrap().len())
            .collect::<Vec<_>>();
    assert_eq!(batches.iter().sum::<usize>(), 5000);
    assert!(batches.len() >= 40, "{batches:?}");
}

#[test]
fn batches_close_once_their_values_reach_batch_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..100)
        .flat_map(|i| format!("{i:0200}\n").into_bytes())
        .collect();
    let file = input_file(dir.path(), "lines", &content);
    assert!(
        file.path.as_os_str().len() < 100,
        "keys stay smaller than values"
    );
    let options = ReadOptions {
        batch_bytes: 500,
        chunk_bytes: 64,
    };
    let reader =
        SplitReader::open_with(&InputSplit::whole(&file), InputFormat::Text, options).unwrap();
    let sizes: Vec<usize> = reader.map(|b| b.unwrap().len()).collect();
    // Each value is 200 bytes, so a batch closes after the third (600 >= 500); 100 = 33 * 3 + 1.
    let mut want = vec![3; 33];
    want.push(1);
    assert_eq!(sizes, want);
}

#[test]
fn batches_of_empty_lines_are_bounded_by_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "empty-lines", &[b'\n'; 1000]);
    let options = ReadOptions {
        batch_bytes: 100,
        ..ReadOptions::default()
    };
    let reader =
        SplitReader::open_with(&InputSplit::whole(&file), InputFormat::Text, options).unwrap();
    let mut records = 0;
    let max_key = format!("{}:999", file.path.display()).len();
    for batch in reader {
        let batch = batch.unwrap();
        records += batch.len();
        assert!(batch.keys().value_data().len() < 100 + max_key);
    }
    assert_eq!(records, 1000);
}

#[test]
fn a_split_past_the_end_of_its_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "short", b"abc\n");
    let split = InputSplit {
        path: file.path.clone(),
        start: 100,
        length: 10,
    };
    let mut reader = SplitReader::open(&split, InputFormat::Text).unwrap();
    assert!(reader.next_batch().unwrap().is_none());
}

#[test]
fn opening_a_missing_file_names_it() {
    let split = InputSplit {
        path: "/nonexistent/weft-io-test".into(),
        start: 0,
        length: 1,
    };
    let err = SplitReader::open(&split, InputFormat::Text).unwrap_err();
    assert!(matches!(err, weft_io::Error::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/weft-io-test"),
        "{err}"
    );
}

/// A file with every kind of line plus one of 5 MB (multi-byte characters included), at split
/// sizes that put split boundaries inside the long line and elsewhere.
#[test]
fn big_file_at_several_split_sizes() {
    let mut content = Vec::new();
    for i in 0..20_000 {
        let ending: &[u8] = if i % 3 == 0 { b"\r\n" } else { b"\n" };
        if i % 7 == 0 {
            content.extend_from_slice(ending); // an empty line
        } else {
            content.extend_from_slice(format!("record {i} \u{e9}t\u{e9} \u{1f600}").as_bytes());
            content.extend_from_slice(ending);
        }
        if i == 10_000 {
            // 14 bytes a repetition, 5 MB in all.
            let long: String = "long \u{2713} line ".repeat(5_000_000 / 14 + 1);
            content.extend_from_slice(long.as_bytes());
            content.extend_from_slice(b"\r\n");
        }
    }
    content.extend_from_slice("no newline at the end \u{65e5}".as_bytes());
    assert!(content.len() > 5_400_000);

    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "big.txt", &content);
    let want = expected_records(&file.path, &reference_lines(&content));
    let size = content.len() as u64;
    let small_chunks = ReadOptions {
        batch_bytes: 1000,
        chunk_bytes: 64 << 10,
    };
    for split_size in [100_000, 1 << 20, (4 << 20) - 1, 5_000_001, size - 1, size] {
        for options in [ReadOptions::default(), small_chunks] {
            let got = read_all_splits(&file, split_size, InputFormat::Text, options);
            assert_same_records(
                &got,
                &want,
                &format!("split size {split_size}, {options:?}"),
            );
        }
    }
}

#[test]
fn a_line_of_tens_of_megabytes() {
    let mut content = b"head\n".to_vec();
    content.extend(std::iter::repeat_n(b'x', 30 << 20));
    content.extend_from_slice(b"\r\ntail\n");
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "long.txt", &content);
    let got = read_all_splits(&file, 8 << 20, InputFormat::Text, ReadOptions::default());
    let path = file.path.display();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (format!("{path}:0").into_bytes(), b"head".to_vec()));
    assert_eq!(got[1].0, format!("{path}:5").into_bytes());
    assert!(got[1].1.len() == 30 << 20 && got[1].1.iter().all(|&b| b == b'x'));
    assert_eq!(
        got[2],
        (
            format!("{path}:{}", 5 + (30 << 20) + 2).into_bytes(),
            b"tail".to_vec()
        )
    );
}

/// Many random files with random line lengths (some much longer than the chunk), random endings,
/// and random split, chunk and batch sizes.
#[test]
fn random_files_and_sizes() {
    let mut rng = Rng::new(0x5eed);
    let dir = tempfile::tempdir().unwrap();
    for round in 0..40 {
        let mut content = Vec::new();
        let lines = rng.below(400);
        for _ in 0..lines {
            let len = match rng.below(10) {
                0 => 0,
                1 => 1000 + rng.below(5000),
                _ => rng.below(80),
            };
            content.extend((0..len).map(|_| b"abc \r\xff\xc3"[rng.below(7) as usize]));
            if rng.below(4) == 0 {
                content.push(b'\r');
            }
            content.push(b'\n');
        }
        if rng.below(2) == 0 {
            content.truncate(content.len().saturating_sub(rng.below(3) as usize));
        }
        let file = input_file(dir.path(), &format!("random-{round}"), &content);
        let want = expected_records(&file.path, &reference_lines(&content));
        for _ in 0..5 {
            let split_size = 1 + rng.below(4000);
            let options = ReadOptions {
                batch_bytes: 1 + rng.below(3000) as usize,
                chunk_bytes: 1 + rng.below(3000) as usize,
            };
            let got = read_all_splits(&file, split_size, InputFormat::Text, options);
            assert_same_records(
                &got,
                &want,
                &format!("round {round}, split size {split_size}, {options:?}"),
            );
        }
    }
}
