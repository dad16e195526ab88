//! CSV headers and JSON Lines: what each format keeps, skips and rejects, at every split size.

use weft_io::{Error, InputFormat, InputSplit, OnError, ReadOptions, SplitReader, plan_splits};

use crate::common::{Pair, assert_same_records, input_file, read_all_splits};

/// A CSV file with what trips a line reader: a header, a quoted newline, `""` escapes, CRLF and
/// CR line endings, a blank line, a quoted delimiter, a last record without a line ending.
const CSV: &[u8] =
    b"name,qty\r\napple,3\r\n\r\n\"MULTI\nLINE, pear\",5\r\"say \"\"hi\"\"\",\n\xc3\xa9clair,2";

/// The records of [`CSV`] after its header, written out by hand: the first byte of each, and its
/// fields.
fn csv_records() -> Vec<(u64, Vec<&'static [u8]>)> {
    vec![
        (10, vec![b"apple", b"3"]),
        (21, vec![b"MULTI\nLINE, pear", b"5"]),
        (42, vec![b"say \"hi\"", b""]),
        (56, vec![b"\xc3\xa9clair", b"2"]),
    ]
}

/// `(key, fields, names)` of every record read, the value decoded from the row encoding.
type Row = (Vec<u8>, Vec<Vec<u8>>, Option<Vec<Vec<u8>>>);

fn rows(records: &[Pair]) -> Vec<Row> {
    records
        .iter()
        .map(|(key, value)| {
            let row = weft_abi::row::RowRef::parse(value).expect("a row");
            let names = row.has_names().then(|| {
                (0..row.len())
                    .map(|i| row.name(i).unwrap().to_vec())
                    .collect()
            });
            (
                key.clone(),
                row.fields().map(<[u8]>::to_vec).collect(),
                names,
            )
        })
        .collect()
}

fn want_rows(
    path: &std::path::Path,
    names: Option<&[&[u8]]>,
    records: &[(u64, Vec<&[u8]>)],
) -> Vec<Row> {
    records
        .iter()
        .map(|(offset, fields)| {
            (
                format!("{}:{offset}", path.display()).into_bytes(),
                fields.iter().map(|f| f.to_vec()).collect(),
                names.map(|n| n.iter().map(|f| f.to_vec()).collect()),
            )
        })
        .collect()
}

#[test]
fn csv_records_are_read_whole_and_once_at_every_split_size() {
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "fruit.csv", CSV);
    let names: [&[u8]; 2] = [b"name", b"qty"];
    let with_header = want_rows(&file.path, Some(&names), &csv_records());
    let mut all = vec![(0, names.to_vec())];
    all.extend(csv_records());
    let without_header = want_rows(&file.path, None, &all);
    for split_size in 1..=CSV.len() as u64 {
        for options in [
            ReadOptions {
                batch_bytes: 2,
                chunk_bytes: 5,
            },
            ReadOptions::default(),
        ] {
            let got = read_all_splits(&file, split_size, InputFormat::CSV, options);
            assert_eq!(rows(&got), with_header, "header, split {split_size}");
            let format = InputFormat::Csv {
                header: false,
                delimiter: b',',
            };
            let got = read_all_splits(&file, split_size, format, options);
            assert_eq!(rows(&got), without_header, "no header, split {split_size}");
        }
    }
}

#[test]
fn csv_of_any_delimiter_is_read_alike() {
    let dir = tempfile::tempdir().unwrap();
    let names: [&[u8]; 2] = [b"name", b"qty"];
    for delimiter in [b';', b'\t', b'|'] {
        // The same file with another delimiter: commas in it are now data.
        let content: Vec<u8> = CSV
            .iter()
            .map(|&b| if b == b',' { delimiter } else { b })
            .collect();
        let file = input_file(dir.path(), "fruit.csv", &content);
        let want = want_rows(&file.path, Some(&names), &csv_records());
        let want: Vec<Row> = want
            .into_iter()
            .map(|(k, fields, n)| {
                let fields = fields
                    .into_iter()
                    .map(|f| {
                        f.iter()
                            .map(|&b| if b == b',' { delimiter } else { b })
                            .collect()
                    })
                    .collect();
                (k, fields, n)
            })
            .collect();
        let format = InputFormat::Csv {
            header: true,
            delimiter,
        };
        for split_size in 1..=content.len() as u64 {
            let got = read_all_splits(&file, split_size, format, ReadOptions::default());
            assert_eq!(
                rows(&got),
                want,
                "{:?}, split {split_size}",
                char::from(delimiter)
            );
        }
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
    for split in plan_splits(std::slice::from_ref(&file), split_size, InputFormat::Jsonl).unwrap() {
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
        message.starts_with(&format!("{}:2: not valid JSON (", file.path.display())),
        "{message}"
    );
    assert!(message.ends_with(r#"): "{\"b\":""#), "{message}");
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

/// JSON Lines with malformed lines at known lines (3, 6 and 9: not JSON, truncated, a bare word),
/// blank lines among them, read in every mode at every split size.
#[test]
fn malformed_records_fail_skip_or_quarantine_with_their_line_numbers() {
    let content = b"{\"a\":1}\n\n{oops\n[1]\n\n{\"b\":\n2\n\"s\"\nword\n{}";
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "bad.jsonl", content);
    let good = 5;
    for split_size in 1..=content.len() as u64 {
        let (mut records, mut skipped, mut bad, mut failures) = (0, 0, Vec::new(), Vec::new());
        for on_error in [OnError::Fail, OnError::Skip, OnError::Quarantine] {
            for split in
                plan_splits(std::slice::from_ref(&file), split_size, InputFormat::Jsonl).unwrap()
            {
                let mut reader = SplitReader::open(&split, InputFormat::Jsonl)
                    .unwrap()
                    .with_on_error(on_error);
                loop {
                    match reader.next_batch() {
                        Ok(Some(batch)) => records += batch.len(),
                        Ok(None) => break,
                        Err(Error::InvalidJson { line, .. }) => {
                            failures.push(line);
                            break;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                skipped += reader.skipped();
                bad.extend(reader.take_bad_records());
            }
        }
        // fail: each split owning a bad line stops at its first one (so the first of the file
        // always fails); the other two modes read every good record and drop the three bad ones.
        assert_eq!(failures.first(), Some(&3), "split {split_size}");
        assert!(
            failures.windows(2).all(|w| w[0] < w[1])
                && failures.iter().all(|l| [3, 6, 9].contains(l)),
            "split {split_size}: {failures:?}"
        );
        assert_eq!(skipped, 6, "split {split_size}");
        assert!(records >= 2 * good, "split {split_size}");
        let lines: Vec<(u64, &[u8])> = bad.iter().map(|b| (b.line, b.record.as_slice())).collect();
        assert_eq!(
            lines,
            [(3, &b"{oops"[..]), (6, b"{\"b\":"), (9, b"word")],
            "split {split_size}"
        );
        assert!(
            bad.iter()
                .all(|b| b.path == file.path && b.reason.starts_with("not valid JSON"))
        );
    }
    // A quarantined record is one JSON line naming where it was.
    let line: serde_json::Value = serde_json::from_slice(
        &weft_io::BadRecord {
            path: "in.jsonl".into(),
            line: 3,
            offset: 10,
            reason: "r".into(),
            record: b"{oops".to_vec(),
        }
        .to_json_line(),
    )
    .unwrap();
    assert_eq!(
        line,
        serde_json::json!({"file": "in.jsonl", "line": 3, "offset": 10, "reason": "r", "record": "{oops"})
    );
}

#[test]
fn csv_records_of_the_wrong_width_are_malformed() {
    let content = b"a,b\n1,2\n3\n\"x\ny\",4\n5,6,7\n8,9\n";
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "w.csv", content);
    let split = InputSplit::whole(&file);
    let err = SplitReader::open(&split, InputFormat::CSV)
        .unwrap()
        .next_batch()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: the record has 1 field, the header 2: \"3\"",
            file.path.display()
        )
    );
    for split_size in 1..=content.len() as u64 {
        let mut bad = Vec::new();
        let mut rows = 0;
        for split in plan_splits(std::slice::from_ref(&file), split_size, InputFormat::CSV).unwrap()
        {
            let mut reader = SplitReader::open(&split, InputFormat::CSV)
                .unwrap()
                .with_on_error(OnError::Quarantine);
            while let Some(batch) = reader.next_batch().unwrap() {
                rows += batch.len();
            }
            bad.extend(reader.take_bad_records());
        }
        assert_eq!(rows, 3, "split {split_size}");
        let lines: Vec<(u64, &[u8])> = bad.iter().map(|b| (b.line, b.record.as_slice())).collect();
        // The record after the quoted newline starts on line 6.
        assert_eq!(lines, [(3, &b"3"[..]), (6, b"5,6,7")], "split {split_size}");
    }
}

/// A CSV file without a quote is split after any line ending (planning skips the parse): CRLF,
/// lone CR and blank lines too, at every split size.
#[test]
fn csv_without_quotes_is_split_at_line_ends_at_every_split_size() {
    let content = b"h1,h2\r\na,1\r\rb,2\n\nc,3\r\nd,4";
    let dir = tempfile::tempdir().unwrap();
    let file = input_file(dir.path(), "plain.csv", content);
    let text = std::str::from_utf8(content).unwrap();
    let names: [&[u8]; 2] = [b"h1", b"h2"];
    let records: Vec<(u64, Vec<&[u8]>)> = ["a,1", "b,2", "c,3", "d,4"]
        .iter()
        .map(|r| {
            let (field, value) = r.split_once(',').unwrap();
            (
                text.find(r).unwrap() as u64,
                vec![field.as_bytes(), value.as_bytes()],
            )
        })
        .collect();
    let want = want_rows(&file.path, Some(&names), &records);
    for split_size in 1..=content.len() as u64 {
        let got = read_all_splits(&file, split_size, InputFormat::CSV, ReadOptions::default());
        assert_eq!(rows(&got), want, "split {split_size}");
    }
}
