//! The optional `weft.udfs` custom section: facts a module states about its UDFs (ABI.md §3b).
//!
//! A fact lets the host skip work a UDF does not need; today the only one is `key=unused` (the
//! UDF never reads its input records' keys, so the host may leave them empty). The section is a
//! custom section, which old hosts and old guests cannot notice, so it needs no ABI version.
//!
//! # Format
//! UTF-8 text of lines, each ending with `\n`. A line is its format version, the UDF's name and
//! its facts, separated by single spaces: `1 split_words key=unused\n`. A linker concatenates
//! same-named custom sections, so each UDF can contribute its own line from its own object file;
//! the lines of several sections of this name in one module count as one text.
//!
//! - A line of a version other than `1` is skipped whole: a later format, which a host that does
//!   not know it reads as "no facts".
//! - A fact is `name=value` (each `[a-z0-9_]+`). An unknown name, or an unknown value of a known
//!   name, is skipped: a newer SDK's fact. A UDF named on several lines has the facts of all.
//! - Anything else (not UTF-8, a last line without `\n`, an empty field, a malformed fact or name,
//!   more than [`MAX_SECTION_BYTES`]) is refused, as is a line naming a function the module does
//!   not export as a UDF (the host checks that; [`parse`] does not know the exports).
//!
//! ```
//! use weft_abi::facts;
//!
//! let mut unused = Vec::new();
//! facts::parse(b"1 split_words key=unused\n2 later format\n1 sum colour=blue\n", |entry| {
//!     if entry.key_unused {
//!         unused.push(entry.name);
//!     }
//! })
//! .unwrap();
//! assert_eq!(unused, ["split_words"]);
//! assert!(facts::parse(b"1 split_words key=unused", |_| {}).is_err());
//! ```

use core::fmt;

/// The custom section's name.
pub const SECTION: &str = "weft.udfs";

/// The version that starts each line this crate reads.
pub const LINE_VERSION: &str = "1";

/// The most bytes the sections of one module may hold together: ample for thousands of UDFs, and
/// a bound on what a hostile module makes the host parse.
pub const MAX_SECTION_BYTES: usize = 64 << 10;

/// The fact `key=unused`.
pub const KEY_UNUSED: &str = "key=unused";

/// One line of the current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The 1-based line number, for messages.
    pub line: usize,
    /// The UDF's name (its export without `weft_<kind>_`).
    pub name: &'a str,
    /// `key=unused`: the UDF never reads the keys of its input records.
    pub key_unused: bool,
}

/// Why a section was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactsError {
    /// The 1-based line at fault, or 0 for the section as a whole.
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for FactsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "custom section `{SECTION}`: {}", self.reason)
        } else {
            write!(
                f,
                "custom section `{SECTION}`, line {}: {}",
                self.line, self.reason
            )
        }
    }
}

impl core::error::Error for FactsError {}

/// Parses the section's bytes (all sections of the name, concatenated), calling `each` for every
/// line of the current version in order. Nothing is allocated.
pub fn parse<'a>(section: &'a [u8], mut each: impl FnMut(Entry<'a>)) -> Result<(), FactsError> {
    let whole = |reason| FactsError { line: 0, reason };
    if section.len() > MAX_SECTION_BYTES {
        return Err(whole("is over 64 KiB"));
    }
    let text = core::str::from_utf8(section).map_err(|_| whole("is not UTF-8"))?;
    if text.is_empty() {
        return Ok(());
    }
    let Some(body) = text.strip_suffix('\n') else {
        return Err(whole("does not end with a newline"));
    };
    for (content, line) in body.split('\n').zip(1..) {
        let at = |reason| FactsError { line, reason };
        let mut fields = content.split(' ');
        let version = fields.next().unwrap_or_default();
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(at("does not start with a version number and a space"));
        }
        if version != LINE_VERSION {
            continue;
        }
        let name = fields.next().unwrap_or_default();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(at(
                "the second field is not a UDF name (ASCII letters, digits and `_`)",
            ));
        }
        let mut entry = Entry {
            line,
            name,
            key_unused: false,
        };
        for fact in fields {
            let word = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            };
            match fact.split_once('=') {
                Some((name, value)) if word(name) && word(value) => {
                    if fact == KEY_UNUSED {
                        entry.key_unused = true;
                    }
                }
                _ => {
                    return Err(at(
                        "a fact is not `name=value` (lower-case letters, digits and `_`, \
                         separated by single spaces)",
                    ));
                }
            }
        }
        each(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn entries(section: &[u8]) -> Result<Vec<(usize, &str, bool)>, FactsError> {
        let mut out = Vec::new();
        parse(section, |e| out.push((e.line, e.name, e.key_unused)))?;
        Ok(out)
    }

    #[test]
    fn good_sections_list_their_entries() {
        assert_eq!(entries(b""), Ok(Vec::new()));
        assert_eq!(
            entries(b"1 split_words key=unused\n1 sum\n1 Up2 key=unused\n"),
            Ok(alloc::vec![
                (1, "split_words", true),
                (2, "sum", false),
                (3, "Up2", true)
            ])
        );
    }

    #[test]
    fn unknown_versions_and_facts_are_skipped() {
        assert_eq!(
            entries(b"2 anything at all = goes\n1 a key=used colour=blue\n17 x\n1 b key=unused\n"),
            Ok(alloc::vec![(2, "a", false), (4, "b", true)])
        );
    }

    #[test]
    fn malformed_sections_are_refused_at_their_line() {
        for (section, line, reason) in [
            (&b"1 a key=unused"[..], 0, "newline"),
            (b"\xff\n", 0, "UTF-8"),
            (b"\n", 1, "version"),
            (b"1 a\n\n", 2, "version"),
            (b"v1 a\n", 1, "version"),
            (b" 1 a\n", 1, "version"),
            (b"1\n", 1, "UDF name"),
            (b"1  a\n", 1, "UDF name"),
            (b"1 a-b\n", 1, "UDF name"),
            (b"1 a key=unused \n", 1, "fact"),
            (b"1 a key\n", 1, "fact"),
            (b"1 a =unused\n", 1, "fact"),
            (b"1 a key=Unused\n", 1, "fact"),
            (b"1 a key=unused\r\n", 1, "fact"),
        ] {
            let error = entries(section).expect_err(core::str::from_utf8(section).unwrap_or("?"));
            assert_eq!(error.line, line, "{section:?}");
            assert!(error.reason.contains(reason), "{section:?}: {error}");
        }
        let huge = alloc::vec![b'\n'; MAX_SECTION_BYTES + 1];
        assert_eq!(entries(&huge).unwrap_err().line, 0);
    }
}
