//! CSV headers and JSON Lines: what each format keeps, skips and rejects, at every split size.

use weft_io::{Error, InputFormat, InputSplit, ReadOptions, SplitReader, plan_splits};

use crate::common::{
    Pair, assert_same_records, expected_records, input_file, read_all_splits, reference_lines,
};

const CSV: &[u8] = b"name,qty\r\napple,3\r\n\r\n\"pear, green\",5\n\xc3\xa9clair,2";

#[test]
fn csv_header_is_skipped_exactly_once_at_every_split_size() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "fruit.csv", CSV);
    let lines = reference_lines(CSV);
    assert_eq!(lines[0].1, b"name,qty");
    let with_header = expected_records(&file.path, &lines[1..]);
    let without_header = expected_records(&file.path, &lines);
    for split_size in 1..=CSV.len() as u64 {
        let options = ReadOptions {
            batch_bytes: 2,
            chunk_bytes: 5,
        };
        let got = read_all_splits(&file, split_size, InputFormat::CSV, options);
        assert_same_records(&got, &with_header, &format!("header, split {split_size}"));
        let got = read_all_splits(
            &file,
            split_size,
            InputFormat::Csv {
                header: false,
                delimiter: b',',
            },
            options,
        );
        assert_same_records(
            &got,
            &without_header,
            &format!("no header, split {split_size}"),
        );
    }
}

#[test]
fn a_csv_file_with_only_a_header_has_no_records() {
    let dir = tempfile::tempdir().unwrap();
    for content in [&b"a,b\n"[..], b"a,b", b"a,b\r\n"] {
        let file = input_file(dir.path(), "header-only.csv", content);
        for split_size in 1..=5 {
            let got = read_all_splits(&file, split_size, InputFormat::CSV, ReadOptions::default());
            assert!(got.is_empty(), "{content:?} split {split_size}: {got:?}");
        }
    }
}

/// The fruit file of [`CSV`], delimited by semicolons, with a field holding a comma and one holding
/// a semicolon.
const SEMICOLONS: &[u8] =
    b"name;qty\r\napple;3\r\n\r\n\"pear, green\";5\n\"fig;dried\";\"1\"\"\"\n\xc3\xa9clair;2";

#[test]
fn csv_of_another_delimiter_reaches_udfs_comma_separated_at_every_split_size() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "fruit.csv", SEMICOLONS);
    // The reference: the lines as a line reader sees them, each re-encoded by hand.
    let lines = reference_lines(SEMICOLONS);
    let recoded: Vec<(u64, Vec<u8>)> = lines[1..]
        .iter()
        .map(|(offset, line)| {
            let want: &[u8] = match line.as_slice() {
                b"apple;3" => b"apple,3",
                b"" => b"",
                b"\"pear, green\";5" => b"\"pear, green\",5",
                b"\"fig;dried\";\"1\"\"\"" => b"fig;dried,\"1\"\"\"",
                b"\xc3\xa9clair;2" => b"\xc3\xa9clair,2",
                other => panic!("unexpected line {:?}", String::from_utf8_lossy(other)),
            };
            (*offset, want.to_vec())
        })
        .collect();
    assert_eq!(recoded.len(), 5);
    let want = expected_records(&file.path, &recoded);
    let format = InputFormat::Csv {
        header: true,
        delimiter: b';',
    };
    for split_size in 1..=SEMICOLONS.len() as u64 {
        let options = ReadOptions {
            batch_bytes: 2,
            chunk_bytes: 5,
        };
        let got = read_all_splits(&file, split_size, format, options);
        assert_same_records(&got, &want, &format!("split {split_size}"));
    }
}

const JSONL: &[u8] =
    b"{\"a\":1}\n   \n\t\r\n[1, 2, 3]\r\n\"str\\u00e9\"\n\n{\"nested\":{\"x\":[true,null]}}";

#[test]
fn jsonl_keeps_raw_lines_and_skips_blank_ones_at_every_split_size() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "data.jsonl", JSONL);
    let path = file.path.display();
    let want: Vec<Pair> = [
        (0, "{\"a\":1}"),
        (15, "[1, 2, 3]"),
        (26, "\"str\\u00e9\""),
        (39, "{\"nested\":{\"x\":[true,null]}}"),
    ]
    .into_iter()
    .map(|(offset, v)| {
        (
            format!("{path}:{offset}").into_bytes(),
            v.as_bytes().to_vec(),
        )
    })
    .collect();
    for split_size in 1..=JSONL.len() as u64 + 1 {
        let got = read_all_splits(
            &file,
            split_size,
            InputFormat::Jsonl,
            ReadOptions::default(),
        );
        assert_same_records(&got, &want, &format!("split {split_size}"));
    }
}

/// Reads every split, collecting the records and the (offset) of every invalid-JSON error.
fn jsonl_errors(content: &[u8], split_size: u64) -> (Vec<Pair>, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "bad.jsonl", content);
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for split in plan_splits(std::slice::from_ref(&file), split_size).unwrap() {
        for batch in SplitReader::open(&split, InputFormat::Jsonl).unwrap() {
            match batch {
                Ok(batch) => records.extend(batch.to_pairs()),
                Err(Error::InvalidJson { path, offset, .. }) => {
                    assert_eq!(path, file.path);
                    errors.push(offset);
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    (records, errors)
}

#[test]
fn invalid_jsonl_names_path_and_offset() {
    let content = b"{\"a\":1}\n{\"b\":\n{\"c\":3}\n";
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "bad.jsonl", content);
    let mut reader = SplitReader::open(&InputSplit::whole(&file), InputFormat::Jsonl).unwrap();
    let err = reader.next_batch().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidJson { path, offset: 8, .. } if *path == file.path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&file.path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("byte 8"), "{message}");
    assert!(
        reader.next_batch().unwrap().is_none(),
        "fused after an error"
    );

    // Whatever the split size, exactly the split owning the bad line fails.
    for split_size in 1..=content.len() as u64 {
        let (_, errors) = jsonl_errors(content, split_size);
        assert_eq!(errors, [8], "split {split_size}");
    }
}

#[test]
fn jsonl_rejects_trailing_garbage_and_non_utf8() {
    let (records, errors) = jsonl_errors(b"{\"a\":1} x\n\"ok\"\n\"\xff\"\n", 1000);
    assert_eq!(errors, [0], "the first line fails and stops its split");
    assert!(records.is_empty());
    let (records, errors) = jsonl_errors(b"\"ok\"\n\"\xff\"\n", 5);
    assert_eq!(errors, [5]);
    assert_eq!(records.len(), 1);
}
