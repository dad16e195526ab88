//! Inverted index: `terms` turns each `DOCID<TAB>TEXT` line into `(term, DOCID)` records, and
//! `postings` gathers each term's documents, sorted and deduplicated. The same module in C, Zig and
//! AssemblyScript sits beside this crate (`examples/README.md` has the exact rules).
//!
//! Build it with `weft udf build examples/invindex/rust`; run the unit tests natively with
//! `cargo test -p weft-example-invindex`.

use weft_guest::{Emitter, Values, flat_map, group_reduce};

/// Emits `(term, DOCID)` for every term of the line's text, duplicates included: a term is a
/// maximal run of ASCII letters and digits, lower-cased. A line without a TAB is an error.
#[flat_map]
pub fn terms(_key: (), line: &[u8], out: &mut Emitter) -> Result<(), String> {
    let tab = line.iter().position(|&b| b == b'\t').ok_or_else(|| {
        format!(
            "the line {:?} has no TAB between a document id and its text",
            String::from_utf8_lossy(&line[..line.len().min(80)])
        )
    })?;
    let (doc, text) = (&line[..tab], &line[tab + 1..]);
    let mut term = Vec::new();
    for run in text
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|run| !run.is_empty())
    {
        term.clear();
        term.extend(run.iter().map(u8::to_ascii_lowercase));
        out.emit(&term[..], doc);
    }
    Ok(())
}

/// One record per term: its document ids, deduplicated, sorted bytewise and joined with `,`.
#[group_reduce]
pub fn postings(term: &[u8], docs: Values<'_, &[u8]>, out: &mut Emitter) {
    let mut docs: Vec<&[u8]> = docs.collect();
    docs.sort_unstable();
    docs.dedup();
    out.emit(term, docs.join(&b","[..]));
}

#[cfg(test)]
mod tests {
    use super::*;

    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    fn terms_of(line: &[u8]) -> Result<Records, String> {
        let mut out = Emitter::new();
        terms((), line, &mut out)?;
        Ok(out.to_records())
    }

    #[test]
    fn terms_are_lower_cased_ascii_alphanumeric_runs() {
        let records = terms_of("d1\tThe café, e.g. THE 2026".as_bytes()).unwrap();
        let terms: Vec<&[u8]> = records.iter().map(|(t, _)| &t[..]).collect();
        assert_eq!(terms, [&b"the"[..], b"caf", b"e", b"g", b"the", b"2026"]);
        assert!(records.iter().all(|(_, doc)| doc == b"d1"));
        assert_eq!(terms_of(b"d2\t").unwrap(), []);
    }

    #[test]
    fn a_line_without_a_tab_is_an_error() {
        let error = terms_of(b"no tab here").unwrap_err();
        assert!(error.contains("has no TAB"), "{error}");
    }

    #[test]
    fn postings_are_sorted_and_distinct() {
        let mut out = Emitter::new();
        postings(
            b"fox",
            Values::from_strs(&["d2", "d10", "d2", "d1"]),
            &mut out,
        );
        assert_eq!(out.to_records(), [(b"fox".to_vec(), b"d1,d10,d2".to_vec())]);
    }
}
