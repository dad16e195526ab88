//! A job's committed output read back, and maps compared with a readable account of the
//! difference.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;

/// Every `key<TAB>value` line of every part file of a committed text output. Panics if the
/// directory has no `_SUCCESS` (it was not committed) or if a key appears twice (two partitions
/// must never hold the same key).
pub fn read_output(dir: &Path) -> HashMap<Vec<u8>, Vec<u8>> {
    assert!(
        dir.join("_SUCCESS").is_file(),
        "{} has no _SUCCESS",
        dir.display()
    );
    let mut records = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let tab = line
                .iter()
                .position(|&b| b == b'\t')
                .unwrap_or_else(|| panic!("no TAB in {:?}", String::from_utf8_lossy(line)));
            let (key, value) = (line[..tab].to_vec(), line[tab + 1..].to_vec());
            let shown = String::from_utf8_lossy(&key).into_owned();
            assert!(records.insert(key, value).is_none(), "key {shown:?} twice");
        }
    }
    records
}

/// An output of decimal numbers, as numbers.
pub fn counts_of(output: HashMap<Vec<u8>, Vec<u8>>) -> HashMap<Vec<u8>, u64> {
    output
        .into_iter()
        .map(|(k, v)| {
            let n = std::str::from_utf8(&v)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{:?} is not a count", String::from_utf8_lossy(&v)));
            (k, n)
        })
        .collect()
}

/// The `part-NNNNN` files of an output directory, sorted.
pub fn part_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("part-"))
        .collect();
    names.sort();
    names
}

/// Panics unless `got` equals `want`, naming `what` and the first few differences (sorted, long
/// values shortened) rather than printing two maps of thousands of entries.
pub fn assert_same_map<V: PartialEq + Debug>(
    got: &HashMap<Vec<u8>, V>,
    want: &HashMap<Vec<u8>, V>,
    what: &str,
) {
    if got == want {
        return;
    }
    let key = |k: &[u8]| format!("{:?}", String::from_utf8_lossy(k));
    let mut diffs: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{}: want {}, got {}",
                key(k),
                shorten(format!("{v:?}")),
                shorten(format!("{:?}", got.get(k)))
            )
        })
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{}: not wanted", key(k))),
        )
        .collect();
    diffs.sort();
    diffs.truncate(10);
    panic!(
        "{what}: {} keys wanted, {} got; first differences:\n{}",
        want.len(),
        got.len(),
        diffs.join("\n")
    );
}

/// At most 120 characters of `text`: some values (an inverted index's) run to megabytes.
fn shorten(text: String) -> String {
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
        None => text,
    }
}
