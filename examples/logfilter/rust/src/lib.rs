//! Log filter over JSON lines: `errors` keeps the records whose top-level `"level"` is the string
//! `"error"`, and `service_msg` turns each into `(service, msg)`. The same module in C, Zig and
//! AssemblyScript sits beside this crate (`examples/README.md` has the exact rules).
//!
//! Build it with `weft udf build examples/logfilter/rust`; run the unit tests natively with
//! `cargo test -p weft-example-logfilter`.
//!
//! The host has already checked that every line is one JSON value, so the UDFs only walk the
//! top-level object far enough to find a member: no parse tree, no allocation, and strings are
//! returned as written between their quotes (escapes left as they are).

use weft_guest::{filter, map};

/// A member's value as far as these UDFs care: a string's bytes as written, or anything else.
#[derive(Debug, PartialEq, Eq)]
enum Member<'a> {
    String(&'a [u8]),
    Other,
}

/// Walks one JSON value that the host has validated.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string at the cursor: its bytes between the quotes, escapes as written.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return Some(&self.bytes[start..self.at - 1]);
                }
                _ => self.at += 1,
            }
        }
    }

    /// Skips any value: a string, an object or array (with everything nested in it), or a
    /// number, `true`, `false` or `null`.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_space();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                let start = self.at;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

/// The member `name` of the top-level object in `line`; `None` when the line is not an object or
/// has no such member (a member of a nested object does not count).
fn member<'a>(line: &'a [u8], name: &[u8]) -> Option<Member<'a>> {
    let mut scanner = Scanner { bytes: line, at: 0 };
    scanner.eat(b'{')?;
    scanner.skip_space();
    if scanner.peek()? == b'}' {
        return None;
    }
    loop {
        let key = scanner.string()?;
        scanner.eat(b':')?;
        scanner.skip_space();
        if key == name {
            return Some(match scanner.peek()? {
                b'"' => Member::String(scanner.string()?),
                _ => Member::Other,
            });
        }
        scanner.skip_value()?;
        scanner.skip_space();
        match scanner.peek()? {
            b',' => scanner.at += 1,
            _ => return None,
        }
    }
}

/// Keeps a record whose top-level `"level"` is the JSON string `"error"`.
#[filter]
pub fn errors(_key: (), line: &[u8]) -> bool {
    member(line, b"level") == Some(Member::String(b"error"))
}

/// `(service, msg)`: the top-level string members, as written between their quotes.
#[map]
pub fn service_msg(_key: (), line: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let string = |name: &str| match member(line, name.as_bytes()) {
        Some(Member::String(value)) => Ok(value),
        _ => Err(format!(
            "the record has no string member \"{name}\": {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )),
    };
    Ok((string("service")?, string("msg")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_members_only() {
        let line = br#"{"ctx": {"level":"error", "a":[1,{"level":"x"}]}, "n": -1.5e3, "ok": true,"level" : "error"}"#;
        assert_eq!(member(line, b"level"), Some(Member::String(b"error")));
        assert_eq!(member(line, b"n"), Some(Member::Other));
        assert_eq!(member(line, b"a"), None);
        assert_eq!(member(br#"{"ctx":{"level":"error"}}"#, b"level"), None);
        assert_eq!(member(b"{}", b"level"), None);
        assert_eq!(member(b"[1, 2]", b"level"), None);
        assert_eq!(member(b"\"level\"", b"level"), None);
    }

    #[test]
    fn strings_keep_their_escapes() {
        let line = br#"{"msg":"say \"hi\" \\ bye}","level":"error"}"#;
        assert_eq!(
            member(line, b"msg"),
            Some(Member::String(br#"say \"hi\" \\ bye}"#))
        );
        assert!(errors((), line));
    }

    #[test]
    fn only_the_exact_string_error_is_kept() {
        assert!(!errors((), br#"{"level":"ERROR"}"#));
        assert!(!errors((), br#"{"level":["error"]}"#));
        assert!(!errors((), br#"{"level":"error "}"#));
        assert!(errors((), br#"{ "level" : "error" }"#));
    }

    #[test]
    fn service_msg_names_a_missing_member() {
        let line = br#"{"service":"api","msg":"disk full"}"#;
        assert_eq!(service_msg((), line), Ok((&b"api"[..], &b"disk full"[..])));
        let error = service_msg((), br#"{"service":"api","msg":7}"#).unwrap_err();
        assert!(error.contains("no string member \"msg\""), "{error}");
    }
}
