//! Part files: names, byte-exact text and JSON Lines encodings, and no leftovers.

use std::fs;
use std::path::Path;

use weft_batch::Records;
use weft_io::{OutputFormat, PartStats, PartWriter};

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn text_parts_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = PartWriter::create(dir.path(), 7, OutputFormat::Text).unwrap();
    assert_eq!(writer.path(), dir.path().join("part-00007"));
    writer
        .write(&Records::from_pairs([
            ("k1", "v1"),
            ("", ""),
            ("k\u{e9}", "x y"),
        ]))
        .unwrap();
    writer.write(&Records::empty()).unwrap();
    writer
        .write(&Records::from_pairs([(&b"\xff"[..], &b"raw\x00"[..])]))
        .unwrap();
    let stats = writer.finish().unwrap();

    let want: &[u8] = b"k1\tv1\n\t\nk\xc3\xa9\tx y\n\xff\traw\x00\n";
    assert_eq!(fs::read(dir.path().join("part-00007")).unwrap(), want);
    assert_eq!(
        stats,
        PartStats {
            records: 4,
            bytes: want.len() as u64
        }
    );
    assert_eq!(
        dir_names(dir.path()),
        ["part-00007"],
        "no temporary file left"
    );
}

#[test]
fn jsonl_parts_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = PartWriter::create(dir.path(), 0, OutputFormat::Jsonl).unwrap();
    writer
        .write(&Records::from_pairs([
            (&b"word"[..], &b"42"[..]),
            (
                b"quote\" back\\slash",
                b"tab\tnl\nctl\x01 \xc3\xa9 \xe2\x9c\x93",
            ),
            (b"a\"b", b"\xff"),
            (b"\x80", b""),
        ]))
        .unwrap();
    let stats = writer.finish().unwrap();

    let want = concat!(
        "{\"key\":\"word\",\"value\":\"42\"}\n",
        "{\"key\":\"quote\\\" back\\\\slash\",\"value\":\"tab\\tnl\\nctl\\u0001 \u{e9} \u{2713}\"}\n",
        "{\"key\":\"a\\\"b\",\"value_b64\":\"/w==\"}\n",
        "{\"key_b64\":\"gA==\",\"value\":\"\"}\n",
    );
    let got = fs::read_to_string(dir.path().join("part-00000")).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        stats,
        PartStats {
            records: 4,
            bytes: want.len() as u64
        }
    );
    // Every line is a JSON object a generic parser reads back.
    for line in got.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value.is_object());
    }
}

#[test]
fn an_unfinished_part_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = PartWriter::create(dir.path(), 3, OutputFormat::Text).unwrap();
    writer.write(&Records::from_pairs([("k", "v")])).unwrap();
    assert_eq!(
        dir_names(dir.path()).len(),
        1,
        "a hidden temporary file while writing"
    );
    assert!(dir_names(dir.path())[0].starts_with(".part-00003."));
    drop(writer);
    assert!(dir_names(dir.path()).is_empty());
}

#[test]
fn a_rewritten_part_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = PartWriter::create(dir.path(), 1, OutputFormat::Text).unwrap();
    first.write(&Records::from_pairs([("old", "1")])).unwrap();
    first.finish().unwrap();
    let mut second = PartWriter::create(dir.path(), 1, OutputFormat::Text).unwrap();
    second.write(&Records::from_pairs([("new", "2")])).unwrap();
    second.finish().unwrap();
    assert_eq!(
        fs::read(dir.path().join("part-00001")).unwrap(),
        b"new\t2\n"
    );
    assert_eq!(dir_names(dir.path()), ["part-00001"]);
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = PartWriter::create(&missing, 0, OutputFormat::Text).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}
